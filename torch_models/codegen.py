"""Brian2 abstract code (the statements bridge/abstract_code.py extracts into the plan) compiled for torch.

Each statement `target op expression` becomes a compiled Python expression that is evaluated with tensors
(batch, neurons) or Python floats; only arithmetic, comparisons and a fixed table of functions are allowed,
so no user text is ever executed as arbitrary Python.
"""
import ast
import logging
import math
import numbers
import operator
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from bridge.timed_array import lookup_grid
from bridge.user_function import UserFunction
from bridge.errors import DescriptionError

_OPS = {ast.Add: "+=", ast.Sub: "-=", ast.Mult: "*=", ast.Div: "/="}
_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call, ast.Name, ast.Load, ast.Constant,
            ast.operator, ast.unaryop, ast.cmpop, ast.IfExp)


@dataclass
class Statement:
    target: str
    op: str          # '=', '+=', '-=', '*=', '/='
    evaluate: object  # function of a scope dict (names -> tensors or floats) -> the expression's value
    names: frozenset  # identifiers the expression reads
    text: str


class _TensorLogic(ast.NodeTransformer):
    """`a and b`, `a or b`, `not a` on boolean tensors become `a & b`, `a | b`, `~a`."""

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        op = ast.BitAnd() if isinstance(node.op, ast.And) else ast.BitOr()
        result = node.values[0]
        for value in node.values[1:]:
            result = ast.BinOp(left=result, op=op, right=value)
        return result

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return ast.UnaryOp(op=ast.Invert(), operand=node.operand)
        return node


class _NumpyArithmetic(ast.NodeTransformer):
    """`a / b` and `a ** b` become `__divide(a, b)` and `__power(a, b)`: computed as numpy computes them."""

    def visit_BinOp(self, node):
        self.generic_visit(node)
        function = {ast.Div: "__divide", ast.Pow: "__power"}.get(type(node.op))
        return ast.Call(ast.Name(function, ast.Load()), [node.left, node.right], []) if function else node


class _StepsSince(ast.NodeTransformer):
    """`timestep(x, dt) >= k` (Brian2's refractoriness test) becomes `__timestep_at_least(x, dt, k)`: the same
    truth, without the truncation where k is a whole number (_timestep_at_least)."""

    def visit_Compare(self, node):
        self.generic_visit(node)
        left = node.left
        if (len(node.ops) == 1 and isinstance(node.ops[0], ast.GtE) and isinstance(left, ast.Call)
                and isinstance(left.func, ast.Name) and left.func.id == "timestep" and len(left.args) == 2):
            return ast.Call(ast.Name("__timestep_at_least", ast.Load()), [*left.args, node.comparators[0]], [])
        return node


class _SharedSubexpressions(ast.NodeTransformer):
    """Computes once what an expression computes more than once (Brian2's exact integration repeats e.g.
    `exp(_lio_7 * int(not_refractory))`): each repeated operation becomes an assignment to a temporary, in the
    order Python would first evaluate it. The same operations on the same values, so the same numbers. Only
    operations outside conditional expressions count (a branch is evaluated only when taken)."""

    def __init__(self, tree):
        self.counts, self.names, self.assignments = {}, {}, []
        for node in _unconditional(tree):
            key = ast.dump(node)
            self.counts[key] = self.counts.get(key, 0) + 1

    def visit(self, node):
        key = ast.dump(node)
        node = self.generic_visit(node)
        if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Call, ast.Compare)) and self.counts.get(key, 0) > 1:
            if key not in self.names:
                self.names[key] = f"_shared_{len(self.names)}"
                self.assignments.append(ast.Assign([ast.Name(self.names[key], ast.Store())], node))
            return ast.Name(self.names[key], ast.Load())
        return node


class _Awake(ast.NodeTransformer):
    """In a statement whose target is held while refractory (Program keeps the old value there), its value
    matters only where the neuron is not refractory: `_where(not_refractory, a, b)` (Brian2's numpy form of an
    expression simplified for each value of not_refractory, bridge/abstract_code.py) becomes `a`, and
    `int(not_refractory)` becomes 1 (Brian2's exact integration of `(unless refractory)` equations multiplies by
    it throughout; a product with it is then its other factor: x * 1 is x exactly, no operation)."""

    def visit_Call(self, node):
        self.generic_visit(node)
        if not (isinstance(node.func, ast.Name) and node.args and isinstance(node.args[0], ast.Name)
                and node.args[0].id == "not_refractory"):
            return node
        if node.func.id == "int" and len(node.args) == 1:
            return _AWAKE
        return node.args[1] if node.func.id == "_where" else node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Mult) and _AWAKE in (node.left, node.right):
            return node.left if node.right is _AWAKE else node.right
        return node


_AWAKE = ast.Constant(1)  # int(not_refractory) where the neuron is awake


def _unconditional(node):
    """The nodes of a tree outside conditional expressions."""
    if isinstance(node, ast.IfExp):
        return
    yield node
    for child in ast.iter_child_nodes(node):
        yield from _unconditional(child)


class Expression:
    """A compiled expression: `function(*arguments)`; called with a scope dict, it reads its arguments there."""

    def __init__(self, function, arguments):
        self.function, self.arguments = function, arguments

    def __call__(self, scope):
        return self.function(*[scope[name] for name in self.arguments])


def compile_expression(text, where, function_table, awake=False):
    """(Expression, the names it reads) for an expression text. Its function is built once, as a Python
    function of those names that computes repeated operations once (no eval per call, so torch.compile can
    trace it). `awake`: for a neuron that is not refractory (_Awake)."""
    tree = ast.fix_missing_locations(_TensorLogic().visit(ast.parse(text.strip(), mode="eval")))
    if awake:
        tree = ast.fix_missing_locations(_Awake().visit(tree))
    known = {name for name in function_table if not name.startswith("__")}
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ValueError(f"{where}: {type(node).__name__} is not allowed in {text!r}")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in known):
            raise ValueError(f"{where}: unknown function in {text!r}; known: {sorted(known)}")
        if isinstance(node, ast.Name) and (node.id.startswith("_shared_") or
                                           node.id.startswith("__") and node.id.endswith("__")):
            raise ValueError(f"{where}: name {node.id!r} is not allowed in {text!r}")
        if isinstance(node, ast.Name) and node.id not in known:
            names.add(node.id)
    ordered = sorted(names)
    tree = ast.fix_missing_locations(_NumpyArithmetic().visit(_StepsSince().visit(tree)))
    shared = _SharedSubexpressions(tree.body)
    result = shared.visit(tree.body)
    arguments = ast.arguments(posonlyargs=[], args=[ast.arg(name) for name in ordered], kwonlyargs=[],
                              kw_defaults=[], defaults=[])
    definition = ast.FunctionDef("expression", arguments, [*shared.assignments, ast.Return(result)], [])
    module = ast.fix_missing_locations(ast.Module([definition], type_ignores=[]))
    namespace = dict(function_table)
    exec(compile(module, where, "exec"), namespace)  # validated text; defines the function once
    return Expression(namespace["expression"], tuple(ordered)), frozenset(names)


def compile_block(code, where, function_table, held=frozenset()):
    """Brian2 abstract code (statements on lines, or separated by ';') as a list of Statements; those whose
    value only a variable in `held` receives (kept while refractory, by Program) computed for a neuron that is
    not refractory (_Awake): a held target, or a temporary read once, by `v = _v` with v held (Brian2's state
    updaters write `_v = ...; v = _v`)."""
    statements = []
    body = ast.parse("\n".join(line.split("#")[0].strip() for line in code.splitlines())).body
    reads = [node.id for node in ast.walk(ast.Module(body, [])) if isinstance(node, ast.Name)
             and isinstance(node.ctx, ast.Load)]
    awake = set(held) | {node.value.id for node in body if isinstance(node, ast.Assign)
                         and isinstance(node.value, ast.Name) and reads.count(node.value.id) == 1
                         and any(isinstance(t, ast.Name) and t.id in held for t in node.targets)}
    for node in body:
        line = ast.unparse(node)
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, op, value = node.targets[0].id, "=", node.value
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and type(node.op) in _OPS:
            target, op, value = node.target.id, _OPS[type(node.op)], node.value
        else:
            raise ValueError(f"{where}: cannot execute {line!r}; statements are 'x = ...', 'x += ...', etc.")
        evaluate, names = compile_expression(ast.unparse(value), where, function_table, awake=target in awake)
        statements.append(Statement(target, op, evaluate, names, line))
    return statements


def check_resolved(statements, provided, where):
    """Refuse statements that read a name neither in `provided` nor assigned by an earlier statement: Brian2
    resolved it from something the plan carries no value of, and torch would read it as missing."""
    known = set(provided)
    for statement in statements:
        missing = sorted(statement.names - known)
        if missing:
            raise DescriptionError(where, f"{statement.text!r} reads {missing}, which the torch backend has no value "
                                          "for (parameters, units, Brian2's constants and variables are known)")
        known.add(statement.target)


class Program:
    """Statements run in order on a scope dict by one generated Python function, `run(scope)` -> {target: its
    value after them}: the statements' own operations and no Python work per statement around them. A target the
    scope holds as a tensor keeps that tensor's shape and type; a target in `held` keeps its old value where
    `not_refractory` is False (Brian2's (unless refractory)).

    The temporaries computed from `invariant` names alone (Brian2's loop invariants `_lio_*`, from parameters
    and dt) are remembered per value of those names when they are numbers, not computed again every step; where
    one is a tensor (a parameter's variants, which may learn) they are computed every time."""

    MEMORY = 16  # sets of invariant values remembered; past it, forgotten all at once

    def __init__(self, statements, held, where, invariant=frozenset()):
        self.statements = statements
        targets = dict.fromkeys(s.target for s in statements)
        holds = ["not_refractory"] if held & set(targets) else []
        names = sorted(set().union(*[s.evaluate.arguments for s in statements], targets, holds))
        hoisted, reads = _invariant_temporaries(statements, invariant)
        lines = [f"{name} = __scope.get({name!r})" for name in names]
        namespace = {"__where": torch.where, "__assign": _assign, "__memory": {}, "__numbers": _numbers,
                     "__limit": self.MEMORY}
        hoisted_lines, body = [], []
        for k, statement in enumerate(statements):
            namespace[f"__f{k}"] = statement.evaluate.function
            target, value = statement.target, f"__f{k}({', '.join(statement.evaluate.arguments)})"
            value = f"__assign({target}, {value if statement.op == '=' else f'{target} {statement.op[0]} {value}'})"
            line = f"{target} = " + (f"__where(not_refractory, {value}, {target})" if target in held else value)
            (hoisted_lines if target in hoisted else body).append(line)
        if hoisted:
            key, values = ", ".join(reads) + ",", ", ".join(hoisted) + ","
            lines += [f"__key = ({key})", "__values = __memory.get(__key) if __numbers(__key) else None",
                      "if __values is None:", *(f"    {line}" for line in hoisted_lines),
                      f"    __values = ({values})", "    if __numbers(__key):",
                      "        if len(__memory) >= __limit:", "            __memory.clear()",
                      "        __memory[__key] = __values", f"({values}) = __values"]
        lines += body
        lines.append("return {" + ", ".join(f"{target!r}: {target}" for target in targets) + "}")
        source = "def program(__scope):\n" + "\n".join(f"    {line}" for line in lines)
        exec(compile(source, where, "exec"), namespace)  # names and operators from validated statements
        self.run = namespace["program"]

    def __iter__(self):
        return iter(self.statements)

    def __len__(self):
        return len(self.statements)


def _invariant_temporaries(statements, invariant):
    """(the temporaries (`_name = ...`, assigned once) computed from `invariant` names and such temporaries alone,
    in order; the invariant names they read, sorted)."""
    assigned = [s.target for s in statements]
    invariant = set(invariant) - set(assigned)
    targets, reads, read_before = [], set(), set()
    for statement in statements:
        arguments = statement.evaluate.arguments
        if (statement.op == "=" and statement.target.startswith("_") and assigned.count(statement.target) == 1
                and statement.target not in read_before
                and all(name in invariant or name in targets for name in arguments)):
            targets.append(statement.target)
            reads.update(name for name in arguments if name not in targets)
        read_before.update(arguments)
    return targets, sorted(reads)


def _numbers(values):
    """Whether every value is a number (not a tensor, whose values may change in place or learn), outside
    torch.compile (whose graph computes numbers once anyway, and would be traced again for each new memory)."""
    return not torch.compiler.is_compiling() and all(isinstance(value, numbers.Number) for value in values)


def _assign(old, value):
    """A value assigned to a name the scope holds as a tensor, with that tensor's shape and type."""
    if not isinstance(old, torch.Tensor) or (isinstance(value, torch.Tensor) and value.shape == old.shape
                                             and value.dtype == old.dtype):
        return value
    return torch.broadcast_to(torch.as_tensor(value, dtype=old.dtype, device=old.device), old.shape)


def step_backend(graph, example_inputs):
    """torch.compile's backend for a whole step: inductor, with two changes that cost nothing in exactness.
    index_add stays aten's kernel (inductor's own, with atomic adds, took 7-10x its time on a CPU for 700 k
    entries) and the code that calls the kernels is C++ (inductor's Python wrapper, with its allocations and
    checks, took a third of a compiled CUBA 1000 step on a CPU; the compilation then takes longer). index_add's
    rule is left out of inductor's table of decompositions while it compiles, rather than given as a table of
    its own: inductor does not cache what it compiles with a table given (CUBA 1000's steps compiled again in
    each new process: 24 s, against 8.5 s read from its cache)."""
    from torch._inductor.compile_fx import compile_fx
    from torch._inductor.decomposition import select_decomp_table

    table = select_decomp_table()  # the table inductor reads (kept from its first use)
    rule = table.pop(torch.ops.aten.index_add.default, None)
    try:
        return compile_fx(graph, example_inputs, config_patches={"cpp_wrapper": True})
    finally:
        if rule is not None:
            table[torch.ops.aten.index_add.default] = rule


# inductor's C++ wrapper calls aten's index_add back through Python and logs a warning saying so at every compilation
logging.getLogger("torch._inductor.ir").addFilter(
    lambda record: not record.getMessage().startswith("aten.index_add.default is missing a c-shim"))


class Compiled:
    """`function` through torch.compile, shapes fixed as a network's are; where compiling or running the compiled
    code fails (no C++ compiler, an operation the backend lacks), the eager function from then on, after one
    warning naming `what`: the same model, more slowly. `backend`: torch.compile's."""

    def __init__(self, function, what, backend="inductor"):
        # every compiled population adds entries to torch's cache of compiled code; past its limit (8 by
        # default) torch would quietly run them eagerly
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        self.eager, self.what = function, what
        self.current = torch.compile(function, dynamic=False, backend=backend)

    @property
    def fell_back(self):
        return self.current is self.eager

    def __call__(self, *args):
        try:
            return self.current(*args)
        except Exception as error:
            if self.fell_back:
                raise
            warnings.warn(f"{self.what}: torch.compile failed, running it eagerly ({type(error).__name__}: {error})")
            self.current = self.eager
            return self.eager(*args)


def execute_block(statements, scope):
    """Run statements in `scope` (a dict it updates) without masks; returns the scope."""
    for statement in statements:
        scope[statement.target] = apply_op(statement.op, scope.get(statement.target), statement.evaluate(scope))
    return scope


def apply_op(op, old, value):
    if op == "=":
        return value
    if op == "+=":
        return old + value
    if op == "-=":
        return old - value
    if op == "*=":
        return old * value
    return old / value


def _elementwise(torch_fn, math_fn):
    return lambda x: torch_fn(x) if isinstance(x, torch.Tensor) else math_fn(x)


def _numpy_view(x):
    """A tensor as the numpy array sharing its memory, where numpy may compute with it: on the CPU, outside
    autograd and torch.compile; None elsewhere."""
    if x.device.type != "cpu" or (x.requires_grad and torch.is_grad_enabled()) or torch.compiler.is_compiling():
        return None
    return x.numpy()


def _as_numpy(torch_fn, numpy_fn, scalar_fn=None):
    """A function computed by numpy's own implementation, as Brian2's numpy target computes it (torch's
    vectorised exp, log, pow, ... differ from numpy's in the last bit for some arguments): on Python numbers
    by `scalar_fn` or on numpy scalars, on the tensors' memory where _numpy_view allows; torch's elsewhere."""
    def function(*args):
        if not any(isinstance(arg, torch.Tensor) for arg in args):
            return scalar_fn(*args) if scalar_fn else numpy_fn(*map(np.float64, args)).item()
        arrays = [_numpy_view(arg) if isinstance(arg, torch.Tensor) else arg for arg in args]
        if any(array is None for array in arrays):
            return torch_fn(*args)
        return torch.from_numpy(np.asarray(numpy_fn(*arrays)))
    return function


def _divide(a, b):
    """a / b; a number divided by a tensor as a tensor division (torch multiplies by the reciprocal then); a number
    by zero as numpy divides (inf or nan with a warning, where Python raises), as Brian2's numpy target does."""
    if isinstance(b, torch.Tensor) and not isinstance(a, torch.Tensor):
        a = torch.as_tensor(a, dtype=b.dtype, device=b.device)
    elif not isinstance(b, torch.Tensor) and b == 0:
        return (np.float64(a) / np.float64(b)).item()
    return a / b


def _steps(x, dt):
    """(x + 1e-3*dt)/dt: the number of steps Brian2's timestep truncates."""
    return (x + 1e-3 * dt) / dt


def _timestep(x, dt):
    """Brian2's timestep(x, dt) = int64((x + 1e-3*dt)/dt)."""
    value = _steps(x, dt)
    return torch.trunc(value) if isinstance(value, torch.Tensor) else int(value)


def _timestep_at_least(x, dt, k):
    """timestep(x, dt) >= k. For a whole number k the truncation is not needed: with y = (x + 1e-3*dt)/dt,
    trunc(y) >= k exactly when y >= k for k >= 1 (y < k: trunc(y) <= max(y, 0) < k), and when y > k - 1 for
    k <= 0 (trunc rounds towards 0)."""
    if isinstance(k, torch.Tensor) or not float(k).is_integer():
        return _timestep(x, dt) >= k
    value = _steps(x, dt)
    return value >= k if k >= 1 else value > k - 1


def _clip(x, low, high):
    """Brian2's clip(x, low, high) = min(max(x, low), high), numbers and tensors in any place."""
    like = next((value for value in (x, low, high) if isinstance(value, torch.Tensor)), None)
    if like is None:
        return min(max(x, low), high)
    x, low, high = (torch.as_tensor(value, dtype=like.dtype, device=like.device) for value in (x, low, high))
    return torch.minimum(torch.maximum(x, low), high)


def _exprel(x):
    """Brian2's exprel(x) = (exp(x) - 1)/x: 1 where |x| < 1e-16, inf where x > 717, expm1(x)/x elsewhere."""
    if not isinstance(x, torch.Tensor):
        return 1.0 if abs(x) < 1e-16 else math.inf if x > 717 else _expm1(x) / x
    return torch.where(x.abs() < 1e-16, torch.ones_like(x), torch.where(x > 717, torch.full_like(x, math.inf),
                                                                         _expm1(x) / x))


_expm1 = _as_numpy(torch.expm1, np.expm1)


_MATH = {name: _as_numpy(getattr(torch, name), getattr(np, name))
         for name in ("exp", "log", "log10", "sin", "cos", "tan", "sinh", "cosh", "tanh")}
_MATH.update({name: _elementwise(getattr(torch, name), getattr(math, name)) for name in ("sqrt", "floor", "ceil")})
_MATH.update(abs=_elementwise(torch.abs, abs), timestep=_timestep, clip=_clip, exprel=_exprel,
             sign=_elementwise(torch.sign, lambda x: float((x > 0) - (x < 0))),
             arcsin=_as_numpy(torch.asin, np.arcsin), arccos=_as_numpy(torch.acos, np.arccos),
             arctan=_as_numpy(torch.atan, np.arctan), __divide=_divide, __timestep_at_least=_timestep_at_least,
             __power=_as_numpy(torch.pow, np.power, operator.pow))
class TimedArrayFunction:
    """Brian2's TimedArray as a function of t (values (steps,)) or of t and i (values (steps, n)): the row
    clip(int(round(t/epsilon)/K), 0, steps - 1) with K = max(2**ceil(log2(8*array_dt/group_dt)), 1) and
    epsilon = array_dt/K, Brian2's rule for the numpy target. `learned`: where the values learn, (batch or 1,
    steps, 1 or n) values that the module sets before each run in place of the table's."""

    def __init__(self, values, array_dt, group_dt, dtype):
        (self.upsampling, self.epsilon), self.table = lookup_grid(array_dt, group_dt), torch.as_tensor(values,
                                                                                                      dtype=dtype)
        self.learned = None

    def __call__(self, t, i=None):
        table, last = self.table, len(self.table) - 1
        if isinstance(t, torch.Tensor):  # the rows picked by torch: of t per neuron (e.g. `t - d`), or of one t
            steps = torch.clamp(torch.trunc(torch.round(t / self.epsilon) / self.upsampling), 0, last).long()
            if t.dim():  # a row per neuron
                if self.learned is not None:
                    rows = torch.arange(len(self.learned), device=t.device)[:, None]
                    return self.learned[rows, steps, 0 if i is None else i.long()]
                return table.to(t.device)[steps] if i is None else table.to(t.device)[steps, i.long()]
            step = steps[None]  # t of the compiled steps, a 0-d tensor: no Python number from it
            row = self.learned.index_select(1, step)[:, 0] if self.learned is not None else \
                table.to(t.device).index_select(0, step)[0]
        else:
            step = int(np.clip(np.int_(np.round(t / self.epsilon) / self.upsampling), 0, last))
            row = self.learned[:, step] if self.learned is not None else table[step]  # learned: (batch, 1 or n)
        if self.learned is not None:
            return row if i is None else row[:, i.long()] if isinstance(i, torch.Tensor) else row[:, int(i), None]
        if i is None:
            return row
        return row.to(i.device)[i.long()] if isinstance(i, torch.Tensor) else row[int(i)]


def user_function(function, table, where):
    """A UserFunction as a function of its arguments: its expression compiled with the function table."""
    expression, _ = compile_expression(function.expression, where, table)
    return lambda *values: expression(dict(zip(function.arguments, values)))


def functions(dtype, arrays=None, group_dt=None, parameters=None):
    """The function table for one float type, with the TimedArrays `arrays` {name: (values, dt)} of a group
    that runs with `group_dt` and the UserFunctions among a model's `parameters`; Brian2's int() turns booleans
    into 0/1 of that type."""
    def to_int(x):
        if isinstance(x, torch.Tensor):
            return x.to(dtype) if x.dtype == torch.bool else torch.trunc(x)
        return int(x)

    def where(condition, if_true, if_false):  # Brian2's numpy form `_where` (bridge/abstract_code.py)
        if not isinstance(condition, torch.Tensor):
            return if_true if condition else if_false
        if not isinstance(if_true, torch.Tensor):
            if_true = torch.as_tensor(if_true, dtype=dtype, device=condition.device)
        return torch.where(condition, if_true, if_false)
    timed = {name: TimedArrayFunction(values, dt, group_dt, dtype) for name, (values, dt) in (arrays or {}).items()}
    # torch's C code may import lazily, which looks up __import__ in the calling frame's builtins
    table = {"__builtins__": {"__import__": __import__}, **_MATH, "int": to_int, "_where": where, **timed}
    return {**table, **{name: user_function(value, table, f"function {name!r}")
                        for name, value in (parameters or {}).items() if isinstance(value, UserFunction)}}
