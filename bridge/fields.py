"""What every description type shares: the registry of types by name (the JSON codec's), values frozen to
tuples so that descriptions compare and round-trip by value, and the checks of names, counts, arrays and
rates that their fields use."""
import numpy as np

from bridge.errors import DescriptionError
from bridge.quantities import parse_quantity

REGISTRY = {}


def register(cls):
    REGISTRY[cls.__name__] = cls
    return cls


def frozen(value):
    """Lists and arrays become (nested) tuples so descriptions compare and round-trip by value."""
    if isinstance(value, np.ndarray):
        return _tuples(value.tolist())
    if isinstance(value, (list, tuple, range)):
        return tuple(frozen(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _tuples(value):
    """An array's tolist() (Python numbers in lists nested to one depth) as nested tuples, a row at a time."""
    if not isinstance(value, list):
        return value
    return tuple(map(_tuples, value)) if value and isinstance(value[0], list) else tuple(value)


def set_field(obj, name, value):
    object.__setattr__(obj, name, value)


def finite_array(values, field_name):
    try:
        array = np.asarray(values, dtype=float)
    except (ValueError, TypeError):
        raise DescriptionError(field_name, "rows of different lengths, or entries that are not numbers; give a "
                                           "rectangular array of numbers") from None
    if not np.all(np.isfinite(array)):
        raise DescriptionError(field_name, "contains NaN or infinite values; all values must be finite")
    return array


def probability(rate, dt, where):
    """rate*dt, the chance of a spike per step; the rate must be >= 0*Hz and rate*dt <= 1."""
    quantity = parse_quantity(rate, where)
    if quantity.dim != parse_quantity("1*Hz", "").dim or float(np.asarray(quantity)) < 0:
        raise DescriptionError(where, f"{rate!r} must be a rate >= 0*Hz")
    p = float(np.asarray(quantity)) * dt
    if p > 1:
        raise DescriptionError(where, f"rate*dt = {p} > 1; lower the rate or dt")
    return p


def check_name(name, where):
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise DescriptionError(where, f"{name!r} must be a Python identifier not starting with '_'")


def check_integer(value, where, least):
    """A whole number (not a bool) >= least: counts (least 1), seeds (least 0)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise DescriptionError(where, f"{value!r} must be an integer >= {least}")


def neuron_range(start, stop, n, where):
    """(start, stop) of the neurons start..stop-1 of a population of n (stop None: to the last), as a Brian2
    subgroup group[start:stop] takes them."""
    stop = n if stop is None else stop
    if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start < stop <= n):
        raise DescriptionError(where, f"neurons {start}..{stop} out of range; need 0 <= start < stop <= n = {n}")
    return start, stop
