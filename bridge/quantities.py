"""Quantities written as text ("10*ms", "-70*mV", "0.5") parsed without eval, using Brian2's unit table."""
import ast
import math
import operator

import numpy as np
from brian2 import Quantity, second
from brian2.core.namespace import DEFAULT_UNITS
from brian2.units.fundamentalunits import get_unit

from bridge.errors import DescriptionError

SI_BASE = ("metre", "kilogram", "second", "amp", "kelvin", "mole", "candle")
BASE_UNITS = {"amp", "coulomb", "farad", "henry", "hertz", "joule", "kelvin", "kilogram", "metre", "mole", "newton",
              "ohm", "pascal", "radian", "second", "siemens", "tesla", "volt", "watt", "weber", "candle"}
_BINARY = {ast.Mult: operator.mul, ast.Div: operator.truediv, ast.Pow: operator.pow,
           ast.Add: operator.add, ast.Sub: operator.sub}


def parse_quantity(text, field):
    """Parse `text` into a Brian2 Quantity; errors name `field`."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = Quantity(float(text))
    elif isinstance(text, str):
        try:
            value = Quantity(_evaluate(ast.parse(text.strip(), mode="eval").body))
        except (SyntaxError, ValueError, TypeError, KeyError) as err:
            raise DescriptionError(field, f"cannot read quantity {text!r}: {err}") from None
        except Exception as err:  # unit mismatch inside the expression, e.g. "1*ms + 1*mV"
            raise DescriptionError(field, f"inconsistent units in {text!r}: {err}") from None
    else:
        raise DescriptionError(field, f"expected a number or a quantity string like '10*ms', got {text!r}")
    if not np.all(np.isfinite(np.asarray(value))):
        raise DescriptionError(field, f"{text!r} is not finite (NaN or infinite); give a finite value")
    return value


def _evaluate(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id in ("nan", "NaN"):
            return math.nan
        if node.id not in DEFAULT_UNITS:
            raise KeyError(f"unknown unit {node.id!r}")
        return DEFAULT_UNITS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError(f"only numbers, unit names and + - * / ** are allowed, not {ast.dump(node)[:40]}")


def si_value(text, field):
    """The SI value of a quantity string, as a float."""
    return float(np.asarray(parse_quantity(text, field)))


def time_value(text, field, positive=False):
    """The SI value (seconds) of a time quantity; other units are refused (a delay in mV is not read as seconds),
    and with `positive` values <= 0."""
    quantity = parse_quantity(text, field)
    seconds = float(np.asarray(quantity))
    if quantity.dim != second.dim:
        raise DescriptionError(field, f"{text!r} is not a time; give a quantity like '1.5*ms'")
    if positive and seconds <= 0:
        raise DescriptionError(field, f"{text!r} must be a positive time")
    return seconds


def steps_of(seconds, dt):
    """A duration as its whole number of steps of dt (within 1e-9 relative), None when it is not one."""
    ratio = seconds / dt
    return int(round(ratio)) if abs(ratio - round(ratio)) <= 1e-9 * ratio else None


def whole_steps(text, dt, field):
    """A positive period (a time quantity string) as its whole number of steps of dt (seconds)."""
    steps = steps_of(time_value(text, field, positive=True), dt)
    if not steps:
        raise DescriptionError(field, f"{text} is not a whole number of steps of dt = {dt} s")
    return steps


def quantity_text(value, dim, where):
    """A scalar as a quantity string in SI units that reads back to the same float."""
    value = float(np.asarray(value))
    text = repr(value) if dim.is_dimensionless else f"{value!r}*{get_unit(dim)!r}"
    if float(np.asarray(parse_quantity(text, where))) != value:
        raise DescriptionError(where, f"{value} in units {dim} has no exact quantity string")
    return text


def unit_text(dim):
    """A dimension as Brian2 accepts it in equations: a named base unit, else a product of SI base units."""
    name = repr(get_unit(dim))
    if dim.is_dimensionless:
        return "1"
    if name.isidentifier() and name in BASE_UNITS:
        return name
    return " * ".join(f"{unit} ** {power:g}" for unit, power in zip(SI_BASE, dim._dims) if power)
