"""A user's function as a description type: an expression of its arguments (Brian2's Function of a script).

A script's Function, or a Python function with check_units, whose numpy implementation is arithmetic and numpy's
elementwise functions is traced at import (`UserFunction.from_brian2`): called once with stand-ins of its
arguments, it writes the operations it performs, in its order and fully parenthesised, as an expression in
Brian2's code syntax, with the numbers it uses as their SI values written exactly. Both backends evaluate that
expression: Brian2 as a Function whose numpy implementation evaluates it with numpy on SI values
(`brian2_function`, the helper an exported script defines), torch with its function table (the same operations in
the same order, so the same numbers, and gradients through it). A function that branches on its arguments
(`if x > 0:`), keeps state, or calls what numpy's elementwise functions do not cover is refused, naming why.
"""
import ast
import math
from dataclasses import dataclass

import numpy as np
from brian2 import Function
from brian2.units.fundamentalunits import DIMENSIONLESS, get_dimensions, get_unit

from bridge.errors import DescriptionError
from bridge.fields import check_name, frozen, register, set_field
from bridge.quantities import parse_quantity, unit_text

# Brian2's functions an expression may call; numpy and the torch backend's table have each under this name
FUNCTIONS = ("exp", "log", "log10", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh", "arcsin", "arccos",
             "arctan", "abs", "floor", "ceil", "sign", "clip")
# numpy's ufunc: (Python operator, its special method's name)
_OPERATORS = {"add": ("+", "add"), "subtract": ("-", "sub"), "multiply": ("*", "mul"), "divide": ("/", "truediv"),
              "power": ("**", "pow"), "greater": (">", "gt"), "less": ("<", "lt"), "greater_equal": (">=", "ge"),
              "less_equal": ("<=", "le"), "equal": ("==", "eq"), "not_equal": ("!=", "ne")}
_REFLECTED = ("add", "sub", "mul", "truediv", "pow")  # x.__radd__ etc.: a number on the left
_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call, ast.Name, ast.Load, ast.Constant,
            ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd, ast.cmpop)


@register
@dataclass(frozen=True)
class UserFunction:
    """A function of `arguments` (names) that computes `expression`: Brian2 code syntax with numbers, its
    arguments, + - * / **, comparisons and the functions of FUNCTIONS, on values in SI units. `argument_units`
    (one per argument) and `unit` (its result's) as equations write units ("1": dimensionless); Brian2 checks
    them where code calls the function. A model parameter: code calls it by the parameter's name."""
    arguments: tuple
    expression: str
    argument_units: tuple
    unit: str = "1"

    def __post_init__(self):
        set_field(self, "arguments", frozen(self.arguments))
        set_field(self, "argument_units", frozen(self.argument_units))
        for argument in self.arguments:
            check_name(argument, "UserFunction.arguments")
        if len(self.argument_units) != len(self.arguments):
            raise DescriptionError("UserFunction.argument_units", f"{len(self.argument_units)} units for "
                                                                  f"{len(self.arguments)} arguments; give one each")
        for unit in (*self.argument_units, self.unit):
            parse_quantity(unit, "UserFunction units")
        _check_expression(self.expression, set(self.arguments))

    @classmethod
    def from_brian2(cls, function):
        """The UserFunction of a Brian2 Function (or a function with check_units), traced; a ValueError says why
        a function cannot be."""
        function = function if isinstance(function, Function) else _brian2_function(function)
        if not function.stateless or function.auto_vectorise or function._return_type != "float" or \
                any(kind not in ("float", "any") for kind in function._arg_types):
            raise ValueError("a function with state, of integers or booleans, or vectorised over neurons")
        registered = function.implementations._implementations.get("numpy")
        code = registered.get_code(None) if registered else getattr(function.pyfunc, "_orig_func", function.pyfunc)
        arguments = tuple(f"x{k}" for k in range(len(function._arg_units)))
        result = _trace(code, arguments)
        return cls(arguments, result, tuple(unit_text(get_dimensions(unit)) for unit in function._arg_units),
                   unit_text(get_dimensions(function._return_unit)))

    def brian2_text(self, name):
        """The script's call of brian2_function that defines this function as `name`."""
        units = ", ".join(f"({unit})" for unit in self.argument_units)
        return f"brian2_function({name!r}, {self.arguments!r}, {self.expression!r}, [{units}], ({self.unit}))"

    def brian2(self, name):
        """Brian2's Function of this one, named `name`."""
        units = [get_unit(parse_quantity(unit, "UserFunction units").dim) for unit in (*self.argument_units, self.unit)]
        return brian2_function(name, self.arguments, self.expression, units[:-1], units[-1])


def brian2_function(name, arguments, expression, argument_units, unit):
    """Brian2's Function `name` computing `expression` (Python syntax, numpy's functions) of `arguments` on values
    in SI units: its numpy implementation discards units; Brian2 checks `argument_units` and `unit` in code."""
    code, numpy_names = compile(expression, name, "eval"), {**vars(np), "__builtins__": {}}

    def evaluate(*values):
        return eval(code, numpy_names, dict(zip(arguments, values)))  # a checked UserFunction expression

    evaluate.__name__ = name
    function = Function(evaluate, arg_units=list(argument_units), return_unit=unit,
                        arg_types=["float"] * len(arguments), return_type="float")
    function.implementations.add_numpy_implementation(evaluate, discard_units=True)
    return function


def _brian2_function(function):
    try:
        return Function(function)
    except (ValueError, TypeError) as error:
        raise ValueError(f"a Python function Brian2 cannot use as it is ({error})") from None


def _check_expression(expression, arguments):
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise DescriptionError("UserFunction.expression", f"cannot read {expression!r}") from None
    for node in ast.walk(tree):
        allowed = isinstance(node, _ALLOWED) and not (isinstance(node, ast.Constant) and (
            isinstance(node.value, bool) or not isinstance(node.value, (int, float))))
        if isinstance(node, ast.Call):
            allowed = isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS and not node.keywords
        elif isinstance(node, ast.Name):
            allowed = node.id in arguments or node.id in FUNCTIONS
        if not allowed:
            raise DescriptionError("UserFunction.expression", f"{ast.unparse(node)!r} in {expression!r}; allowed: "
                                                              f"numbers, the arguments, + - * / **, comparisons and "
                                                              f"the functions {', '.join(FUNCTIONS)}")


def _trace(code, arguments):
    """The expression `code` (a Python callable) computes from `arguments`, written by calling it once with
    stand-ins."""
    try:
        result = code(*(_Traced(argument) for argument in arguments))
    except _NotTraceable as error:
        raise ValueError(str(error)) from None
    except Exception as error:  # what the function does to a stand-in that a number would allow
        raise ValueError(f"{type(error).__name__} on its stand-in arguments ({error})") from None
    if isinstance(result, np.ndarray) and result.dtype == object and result.size == 1:
        result = result.item()
    return _operand(result)


class _NotTraceable(TypeError):
    pass


class _Traced:
    """A stand-in for an argument: the operations on it, written as Brian2 code. Brian2's unit-safe functions
    take it as dimensionless (the numbers it meets are SI values)."""
    dim = DIMENSIONLESS

    def __init__(self, text):
        self.text = text

    def __bool__(self):
        raise _NotTraceable("it branches on its arguments (if, and/or, min/max of values)")

    def __float__(self):
        raise _NotTraceable("it converts its arguments to Python numbers (math module functions, float())")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        name = ufunc.__name__
        if method != "__call__" or kwargs:
            raise _NotTraceable(f"numpy's {name}.{method} with {sorted(kwargs)}")
        if name in _OPERATORS and len(inputs) == 2:
            return _binary(inputs[0], _OPERATORS[name][0], inputs[1])
        if name in ("negative", "positive"):
            return _Traced(f"({'-' if name == 'negative' else '+'}{_operand(inputs[0])})")
        return _call("abs" if name == "absolute" else name, *inputs)

    def __array_function__(self, func, types, args, kwargs):
        if func is np.clip and not kwargs:
            return _call("clip", *args)
        raise _NotTraceable(f"numpy's {func.__name__}")

    def clip(self, low, high):
        return _call("clip", self, low, high)

    def __neg__(self):
        return _Traced(f"(-{self.text})")

    def __pos__(self):
        return self

    def __abs__(self):
        return _call("abs", self)


def _binary(left, operator, right):
    return _Traced(f"({_operand(left)} {operator} {_operand(right)})")


def _call(name, *arguments):
    if name not in FUNCTIONS:
        raise _NotTraceable(f"numpy's {name}, which Brian2's code has no function for")
    return _Traced(f"{name}({', '.join(map(_operand, arguments))})")


def _operand(value):
    """An operand as code: a stand-in's text, a number (a quantity's SI value) written exactly."""
    if isinstance(value, _Traced):
        return value.text
    if isinstance(value, (bool, np.bool_)) or np.ndim(value) != 0 or not np.isreal(value):
        raise _NotTraceable(f"the value {value!r}, not a number")
    number = value if isinstance(value, int) else float(np.asarray(value))
    if not math.isfinite(number):
        raise _NotTraceable(f"the value {number!r}, not finite")
    return repr(number) if number >= 0 else f"({number!r})"


for _name in FUNCTIONS:  # numpy calls these methods of the objects in an object array (Brian2's unit-safe functions)
    if not hasattr(_Traced, _name):
        setattr(_Traced, _name, lambda self, *more, _name=_name: _call(_name, self, *more))
for _operator, _method in _OPERATORS.values():
    setattr(_Traced, f"__{_method}__", lambda self, other, _operator=_operator: _binary(self, _operator, other))
    if _method in _REFLECTED:
        setattr(_Traced, f"__r{_method}__", lambda self, other, _operator=_operator: _binary(other, _operator, self))
