"""Brian2's TimedArray as a description type, with Brian2's rule for which row a group reads at a time (shared by
both backends and the constructs that take one)."""
from dataclasses import dataclass

import brian2
import numpy as np

from bridge.errors import DescriptionError
from bridge.fields import finite_array, frozen, register, set_field
from bridge.quantities import parse_quantity, quantity_text, si_value, time_value, unit_text


@register
@dataclass(frozen=True)
class TimedArray:
    """Brian2's TimedArray, a model parameter that is a function of time: `values` (SI floats) are one row per
    `dt` of time, each a scalar (`name(t)` in code) or one value per neuron (`name(t, i)`); `unit` gives
    their units (e.g. "amp", "1"). Past the last row the last row holds."""
    values: tuple
    dt: str
    unit: str = "1"

    def __post_init__(self):
        set_field(self, "values", frozen(self.values))
        values = finite_array(self.values, "TimedArray.values")
        if values.ndim not in (1, 2) or not len(values):
            raise DescriptionError("TimedArray.values", f"shape {values.shape}; give rows of values: (steps,) or "
                                                        "(steps, n)")
        time_value(self.dt, "TimedArray.dt", positive=True)
        parse_quantity(self.unit, "TimedArray.unit")

    @classmethod
    def from_brian2(cls, array):
        """A Brian2 TimedArray as the description's."""
        dt = quantity_text(array.dt, brian2.second.dim, "dt")
        return cls(np.asarray(array.values, dtype=float), dt, unit_text(array.dim))

    def rows(self, t, group_dt):
        """The row read at times t (seconds) by a group of step group_dt: Brian2's rule, row =
        clip(int(round(t/epsilon)/K), 0, rows - 1), K = max(2**ceil(log2(8*dt/group_dt)), 1), epsilon = dt/K."""
        upsampling, epsilon = lookup_grid(si_value(self.dt, "TimedArray.dt"), group_dt)
        return np.clip(np.int_(np.round(np.asarray(t) / epsilon) / upsampling), 0, len(self.values) - 1)


def lookup_grid(array_dt, group_dt):
    """(K, epsilon) of Brian2's TimedArray lookup (TimedArray.rows)."""
    upsampling = max(int(2 ** np.ceil(np.log2(8 / group_dt * array_dt))), 1)
    return upsampling, array_dt / upsampling
