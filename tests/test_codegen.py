"""Brian2 abstract code compiled for torch (torch_models/codegen.py): repeated operations computed once."""
import math

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from torch_models.codegen import Program, TimedArrayFunction, compile_block, compile_expression, functions


def test_repeated_operations_are_computed_once_with_the_same_value():
    calls = []
    table = functions(torch.float64)
    counted_exp = table["exp"]
    table["exp"] = lambda x: calls.append(x) or counted_exp(x)
    text = "El + (a * exp(b * int(nr)) + v * exp(b * int(nr))) - El * exp(b * int(nr))"
    evaluate, names = compile_expression(text, "test", table)
    nr = torch.tensor([True, False, True])
    v = torch.tensor([0.25, -1.5, 3.0], dtype=torch.float64)
    scope = {"El": -0.049, "a": 0.5, "b": -0.005, "nr": nr, "v": v}
    value = evaluate(scope)
    assert len(calls) == 1 and names == {"El", "a", "b", "nr", "v"}
    growth = torch.exp(-0.005 * nr.double())
    assert torch.equal(value, -0.049 + (0.5 * growth + v * growth) - -0.049 * growth)


def test_conditional_branches_are_evaluated_only_when_taken():
    evaluate, _ = compile_expression("(1 / y if y != 0 else 0) + (1 / y if y != 0 else 0) + exp(y) * exp(y)",
                                     "test", functions(torch.float64))
    assert evaluate({"y": 0.0}) == 1.0
    assert math.isclose(evaluate({"y": 2.0}), 1.0 + math.exp(4.0))


def test_a_name_torch_has_no_value_for_is_refused_naming_it():
    """Statements may read what is provided and what an earlier statement assigned; anything else is refused
    with its name, before a run (torch would otherwise read it as missing)."""
    from bridge.errors import DescriptionError
    from torch_models.codegen import check_resolved, compile_block, functions

    statements = compile_block("_tmp = a * 2\nx = _tmp + exp(a)\ny += x", "test", functions(torch.float64))
    check_resolved(statements, {"a", "y"}, "population 'p'")
    with pytest.raises(DescriptionError, match=r"population 'p': 'x = _tmp \+ exp\(a\)' reads \['a'\]"):
        check_resolved(statements[1:], {"_tmp", "y"}, "population 'p'")


@pytest.mark.parametrize("text, by_numpy", [
    ("exp(x)", np.exp), ("log(x) + sin(x)", lambda x: np.log(x) + np.sin(x)),
    ("(-4.0) / x", lambda x: (-4.0) / x), ("x ** 3", lambda x: x ** 3), ("x ** -0.5", lambda x: x ** -0.5),
    ("exprel(x - 2)", lambda x: np.expm1(x - 2) / (x - 2)),
])
def test_functions_divisions_and_powers_are_computed_as_numpy_computes_them(text, by_numpy):
    """Brian2's numpy target evaluates with numpy: torch's own exp, pow and scalar / tensor differ in the last
    bit for a few per cent of arguments, so the compiled code computes these as numpy does (on the CPU,
    outside autograd)."""
    x = np.random.default_rng(1).uniform(0.01, 5, 100_000)
    evaluate, _ = compile_expression(text, "test", functions(torch.float64))
    assert np.array_equal(evaluate({"x": torch.as_tensor(x)}).numpy(), by_numpy(x))
    scalars = x[:200]  # Python floats (loop invariants), as numpy computes on its scalars
    assert [evaluate({"x": float(value)}) for value in scalars] == [float(by_numpy(value)) for value in scalars]


def test_a_number_divided_by_zero_is_inf_or_nan_as_in_numpy():
    """Brian2's exact solution of two equal time constants divides by their difference: numpy gives nan (and
    warns), which the run shows, where Python's division would raise."""
    evaluate, _ = compile_expression("a / (tau - taui)", "test", functions(torch.float64))
    with pytest.warns(RuntimeWarning):
        assert evaluate({"a": 1.0, "tau": 0.01, "taui": 0.01}) == math.inf
        assert math.isnan(evaluate({"a": 0.0, "tau": 0.01, "taui": 0.01}))
    assert evaluate({"a": 1.0, "tau": 0.02, "taui": 0.01}) == 100.0


@pytest.mark.parametrize("k", [-2, 0, 1, 50, 2.5])
def test_the_refractoriness_test_without_truncation_equals_brian2s_timestep(k):
    """`timestep(x, dt) >= k` compiled without the truncation (for whole k) is Brian2's int64((x + 1e-3 dt)/dt)
    >= k, by numpy, for x around every boundary and on both sides of 0, as tensors and as numbers."""
    dt = 1e-4
    boundaries = [np.arange(-60, 60) * dt - 1e-3 * dt]  # and a few ulps around them: some give whole y
    for direction in (np.inf, np.inf, np.inf, -np.inf):
        boundaries.append(np.nextafter(boundaries[-1] if direction > 0 else boundaries[0], direction))
    x = np.concatenate(boundaries + [np.random.default_rng(2).uniform(-6e-3, 6e-3, 2000)])
    y = (x + 1e-3 * dt) / dt
    assert np.sum(y == np.round(y)) > 100
    by_brian2 = y.astype(np.int64) >= k
    evaluate, _ = compile_expression("timestep(x, dt) >= k", "test", functions(torch.float64))
    assert np.array_equal(evaluate({"x": torch.as_tensor(x), "dt": dt, "k": k}).numpy(), by_brian2)
    assert [evaluate({"x": float(value), "dt": dt, "k": k}) for value in x[:240]] == by_brian2[:240].tolist()


UPDATE = "_v = v*exp(a*int(not_refractory)) + b*int(not_refractory)\nv = _v"


def test_what_only_a_held_variable_receives_is_computed_for_a_neuron_that_is_not_refractory():
    """Brian2's exact integration of an (unless refractory) v: `_v = ...int(not_refractory)...; v = _v`. Where the
    neuron is refractory v keeps its value, so _v is computed with int(not_refractory) = 1, Python numbers; the
    run is that of the full expression: v <- v e^a + b where not refractory, v where it is."""
    table = functions(torch.float64, {}, 1e-4, {})
    statements = compile_block(UPDATE, "test", table, held=frozenset({"v"}))
    assert "not_refractory" not in statements[0].names
    v, not_refractory = torch.tensor([[1.0, 2.0]], dtype=torch.float64), torch.tensor([[True, False]])
    run = Program(statements, frozenset({"v"}), "test").run({"v": v, "a": -0.5, "b": 0.25,
                                                             "not_refractory": not_refractory})
    assert run["v"].tolist() == [[math.exp(-0.5) + 0.25, 2.0]]


@pytest.mark.parametrize("code, held", [(UPDATE, frozenset()), (UPDATE + "\nw = _v", frozenset({"v"})),
                                        (UPDATE.replace("v = _v", "v = 2*_v"), frozenset({"v"}))])
def test_a_value_also_read_elsewhere_is_computed_whole(code, held):
    """Not held, read twice, or not passed on as it is: int(not_refractory) stays."""
    statements = compile_block(code, "test", functions(torch.float64, {}, 1e-4, {}), held=held)
    assert "not_refractory" in statements[0].names


SIMPLIFIED = "_v = _where(not_refractory, c*v + b, 0.0 + v)\nv = _v"  # Brian2's numpy form (abstract_code._line)


def test_the_numpy_form_of_a_held_value_is_its_form_for_a_neuron_that_is_not_refractory():
    """`_where(not_refractory, a, b)` for a held v: a alone (two operations, no where); v keeps its value where
    the neuron is refractory."""
    table = functions(torch.float64, {}, 1e-4, {})
    statements = compile_block(SIMPLIFIED, "test", table, held=frozenset({"v"}))
    assert "not_refractory" not in statements[0].names
    v, not_refractory = torch.tensor([[1.0, 2.0]], dtype=torch.float64), torch.tensor([[True, False]])
    with CountedOperations() as counted:
        value = statements[0].evaluate({"v": v, "b": 0.25, "c": 3.0})
    assert value.tolist() == [[3.25, 6.25]] and counted.count == 2
    run = Program(statements, frozenset({"v"}), "test").run({"v": v, "b": 0.25, "c": 3.0,
                                                             "not_refractory": not_refractory})
    assert run["v"].tolist() == [[3.25, 2.0]]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_numpy_form_not_held_chooses_per_neuron_in_the_tables_type(dtype):
    """Not held: both forms, chosen per neuron; two numbers give a tensor of the table's float type."""
    table = functions(dtype, {}, 1e-4, {})
    statements = compile_block("x = _where(not_refractory, v + 1, 0.5)\ny = _where(not_refractory, 2.0, 0.5)", "test",
                               table)
    scope = {"v": torch.tensor([[1.0, 2.0]], dtype=dtype), "not_refractory": torch.tensor([[True, False]])}
    x, y = (statement.evaluate(scope) for statement in statements)
    assert x.tolist() == [[2.0, 0.5]] and y.tolist() == [[2.0, 0.5]] and y.dtype == x.dtype == dtype


class CountedOperations(TorchDispatchMode):
    """Counts the tensor operations run inside it."""

    def __enter__(self):
        self.count = 0
        return super().__enter__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def test_a_product_with_int_not_refractory_where_awake_is_no_operation():
    """`v*int(not_refractory) + b` for a held v: v + b, one tensor operation (two with the product by 1)."""
    statements = compile_block("_v = v*int(not_refractory) + b\nv = _v", "test", functions(torch.float64, {}, 1e-4, {}),
                               held=frozenset({"v"}))
    v = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    with CountedOperations() as counted:
        value = statements[0].evaluate({"v": v, "b": 0.5})
    assert value.tolist() == [[1.5, 2.5]] and counted.count == 1


def counting_table(calls):
    """A function table with f(x) = 2x that counts its calls in `calls`."""
    def f(x):
        calls.append(x)
        return 2 * x
    return {**functions(torch.float64, {}, 1e-4, {}), "f": f}


def test_loop_invariants_are_computed_once_per_value_of_what_they_read():
    """`_a = f(tau)/dt` reads parameters alone: computed at the first step and when tau changes, not every step;
    v reads state and is computed every step, with the right _a each time."""
    calls = []
    statements = compile_block("_a = f(tau)/dt\nv = v + _a", "test", counting_table(calls))
    run = Program(statements, frozenset(), "test", invariant={"tau", "dt"}).run
    v = torch.zeros(1, 2, dtype=torch.float64)
    for _ in range(3):
        v = run({"v": v, "tau": 0.25, "dt": 0.5})["v"]
    assert v.tolist() == [[3.0, 3.0]] and calls == [0.25]
    v = run({"v": v, "tau": 1.0, "dt": 0.5})["v"]
    assert v.tolist() == [[7.0, 7.0]] and calls == [0.25, 1.0]


def test_loop_invariants_of_tensors_are_computed_every_time_and_carry_gradients():
    """A parameter given as a tensor (variants, which may learn or change in place): _a is computed at every call,
    from the tensor's values now, and its gradient reaches the parameter."""
    calls = []
    statements = compile_block("_a = f(tau)/dt\nv = v*_a", "test", counting_table(calls))
    run = Program(statements, frozenset(), "test", invariant={"tau", "dt"}).run
    tau = torch.tensor([[0.25]], dtype=torch.float64, requires_grad=True)
    v = torch.ones(1, 2, dtype=torch.float64)
    first = run({"v": v, "tau": tau, "dt": 0.5})["v"]
    with torch.no_grad():
        tau.mul_(2)
    second = run({"v": v, "tau": tau, "dt": 0.5})["v"]
    assert first.tolist() == [[1.0, 1.0]] and second.tolist() == [[2.0, 2.0]] and len(calls) == 2
    second.sum().backward()
    assert tau.grad.item() == 8.0  # d(2 v tau/dt)/dtau summed over two neurons


def test_a_timed_array_picks_the_row_of_a_time_given_as_a_number_or_a_0_d_tensor():
    """Brian2's rule for a TimedArray of dt 1 ms read at a group dt of 0.1 ms (K = 128): t = 2.5 ms is row 2, also
    as the 0-d tensor t of the compiled steps (its row then picked by torch, no Python number taken from it), with
    the table's values and with learned values (batch, steps, n)."""
    function = TimedArrayFunction(np.arange(12.0).reshape(4, 3), 1e-3, 1e-4, torch.float64)
    neurons = torch.tensor([0, 2])
    for t in (2.5e-3, torch.tensor(2.5e-3, dtype=torch.float64)):
        assert function(t).tolist() == [6.0, 7.0, 8.0] and function(t, neurons).tolist() == [6.0, 8.0]
    assert function(torch.tensor(9e-3, dtype=torch.float64)).tolist() == [9.0, 10.0, 11.0]  # past the end: the last
    function.learned = torch.arange(24.0, dtype=torch.float64).reshape(2, 4, 3)
    for t in (2.5e-3, torch.tensor(2.5e-3, dtype=torch.float64)):
        assert function(t).tolist() == [[6.0, 7.0, 8.0], [18.0, 19.0, 20.0]]
        assert function(t, neurons).tolist() == [[6.0, 8.0], [18.0, 20.0]]
