"""The layered torch module's fast paths give the step-by-step numbers: event-driven input products (equal to
the dense product, to StepwiseNetwork and to Brian2), affine populations as one scan with a hand-written
backward pass (equal to autograd through the eager loop) and its torch.compile'd chunks (bitwise equal)."""
import dataclasses
import logging

import numpy as np
import pytest
import torch

from bridge import batch, library
from bridge.constructs.run_changes import Change
from bridge.description import (Network, NeuronModel, Operation, PoissonInput, Population, RunSettings,
                                Simulation)
from brian_models import network as brian_network
from torch._inductor.decomposition import select_decomp_table
from torch_models.codegen import step_backend
from torch_models.events import event_product
from torch_models.layered import LayeredNetwork
from torch_models.stepwise import StepwiseNetwork

SIZES = (40, 12, 3)


def feedforward(n_steps=30, seed=0, neuron=None):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(1.4 / np.sqrt(n), 4 / np.sqrt(n), (n, m)) for n, m in zip(SIZES, SIZES[1:])]
    return library.feedforward(weights, neuron or library.lif_euler(), f"{n_steps}*ms",
                               record=("layer_1.v", "layer_2.I"))


def input_spikes(n_steps=30, batch_size=3, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch_size, n_steps, SIZES[0], generator=generator) < 0.1).double()


def test_event_product_equals_the_dense_product():
    spikes = input_spikes(batch_size=4)
    spikes[0, 0, :5] = 2  # two spikes of a source in one step count twice
    spikes[1] = 0  # a sample without events
    weight = torch.randn(SIZES[0], 7, dtype=torch.float64, generator=torch.Generator().manual_seed(2),
                         requires_grad=True)
    grad = torch.randn(4, 30, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    dense = spikes @ weight
    (dense_grad,) = torch.autograd.grad(dense, weight, grad)
    events = event_product(spikes, weight)
    (events_grad,) = torch.autograd.grad(events, weight, grad)
    assert dense.abs().max() > 1 and torch.equal(events[1], torch.zeros(30, 7, dtype=torch.float64))
    assert torch.allclose(events, dense, rtol=0, atol=1e-12)
    assert torch.allclose(events_grad, dense_grad, rtol=0, atol=1e-12)


def test_event_product_refuses_spikes_with_gradient_and_shape_mismatch():
    weight = torch.zeros(SIZES[0], 2)
    with pytest.raises(ValueError, match="dense product"):
        event_product(torch.zeros(1, 3, SIZES[0], requires_grad=True), weight)
    with pytest.raises(ValueError, match="41 sources"):
        event_product(torch.zeros(1, 3, 41), weight)


def test_feedforward_equals_step_by_step_module_and_brian2():
    simulation, spikes = feedforward(), input_spikes()
    with torch.no_grad():
        layered = LayeredNetwork(simulation, learn_delays=False)({"input": spikes})
        step_by_step = StepwiseNetwork(simulation)({"input": spikes})
    assert layered.spikes["layer_1"].sum() > 20 and layered.spikes["layer_2"].sum() > 5
    for name in ("layer_1", "layer_2"):
        assert torch.equal(layered.spikes[name], step_by_step.spikes[name])
    for key in simulation.run.record:
        assert torch.allclose(layered.traces[key], step_by_step.traces[key], rtol=0, atol=1e-12)
    record = brian_network.run(batch.replicate(simulation, {"input": spikes.numpy().astype(bool)}))
    for name, n in (("layer_1", SIZES[1]), ("layer_2", SIZES[2])):
        copy, step, neuron = np.nonzero(layered.spikes[name].numpy())
        assert record.spike_set(name) == set(zip((copy * n + neuron).tolist(), step.tolist()))


def eager_and_scanned(simulation):
    eager, scanned = (LayeredNetwork(simulation, learn_delays=False) for _ in range(2))
    eager.scans = dict.fromkeys(eager.scans)  # every population through autograd, step by step
    assert all(scanned.scans.values())
    return eager, scanned


def run_with_gradients(module, spikes):
    """A run and the gradients of a loss that reads spikes, a recorded trace and the margins."""
    run = module({"input": spikes})
    loss = (run.spikes["layer_2"].sum(1).logsumexp(-1).sum() + run.traces["layer_1.v"].square().mean()
            + run.traces["layer_2.I"].mean() + run.margins["layer_1"].square().mean())
    return run, torch.autograd.grad(loss, [p for p in module.parameters() if p.requires_grad])


def assert_same_run(run, other, simulation):
    for name in other.spikes:
        assert torch.equal(run.spikes[name], other.spikes[name])
        assert torch.equal(run.margins[name], other.margins[name])
    for key in simulation.run.record:
        assert torch.equal(run.traces[key], other.traces[key])


def test_which_populations_run_as_one_affine_scan():
    lif = LayeredNetwork(feedforward(), learn_delays=False)
    scan = lif.scans["layer_1"]
    assert set(lif.scans) == {"layer_1", "layer_2"} and all(lif.scans.values())
    order = [scan.variables.index(var) for var in ("v", "I")]  # Euler at dt 1 ms, tau_mem 10 ms, tau_syn 5 ms
    assert np.allclose(np.array(scan.update)[np.ix_(order, order)], [[0.9, 0.1], [0, 0.8]], rtol=0, atol=1e-15)
    assert np.array(scan.reset)[np.ix_(order, order)].tolist() == [[0, 0], [0, 1]]  # v = v_reset
    assert np.array(scan.margin)[order].tolist() == [1, 0]
    lif = library.lif_euler()
    refractory = dataclasses.replace(lif, refractory="2*ms")
    quadratic = dataclasses.replace(lif, equations=lif.equations.replace("+ I)", "+ I + v**2)"))
    for neuron in (refractory, quadratic):
        assert LayeredNetwork(library.feedforward([np.ones((3, 2))], neuron, "5*ms")).scans == {"layer_1": None}


@pytest.mark.parametrize("reset", ["v = v_reset", "v -= 0.8*v_th\nI *= 0.5"])
def test_affine_scan_equals_autograd_through_the_eager_loop(reset):
    """37 steps (not a multiple of the chunk): the same numbers bitwise, gradients to rounding (float64); a
    reset to a constant, and one that moves both variables (a reset Jacobian without zero rows)."""
    neuron = dataclasses.replace(library.lif_euler(), reset=reset)
    simulation, spikes = feedforward(n_steps=37, neuron=neuron), input_spikes(n_steps=37)
    eager, scanned = eager_and_scanned(simulation)
    (eager_run, eager_grads), (run, grads) = (run_with_gradients(m, spikes) for m in (eager, scanned))
    assert run.spikes["layer_1"].sum() > 20 and run.spikes["layer_2"].sum() > 5
    assert_same_run(run, eager_run, simulation)
    for g, h in zip(grads, eager_grads):
        assert h.abs().max() > 1e-3 and torch.allclose(g, h, rtol=1e-12, atol=1e-12 * h.abs().max())


@pytest.mark.slow
@pytest.mark.cython
def test_compiled_scan_equals_eager_bitwise_with_gradients():
    simulation, spikes = feedforward(), input_spikes()
    eager, compiled = (LayeredNetwork(simulation, learn_delays=False, compile=flag) for flag in (False, True))
    (eager_run, eager_grads), (run, grads) = (run_with_gradients(m, spikes) for m in (eager, compiled))
    assert not any(scan.chunks["forward"].fell_back for scan in compiled.scans.values())
    assert_same_run(run, eager_run, simulation)
    assert all(torch.allclose(g, h, rtol=1e-13, atol=0) for g, h in zip(grads, eager_grads))


def test_a_failing_compilation_falls_back_to_eager_with_a_warning():
    simulation, spikes = feedforward(), input_spikes()
    module = LayeredNetwork(simulation, learn_delays=False, compile=True)

    def broken(*args):
        raise RuntimeError("no C++ compiler")
    for scan in module.scans.values():
        scan.chunks["forward"].current = broken
    with torch.no_grad(), pytest.warns(UserWarning, match="running it eagerly.*no C\\+\\+ compiler"):
        run = module({"input": spikes})
    assert all(scan.chunks["forward"].fell_back for scan in module.scans.values())
    with torch.no_grad():
        assert_same_run(run, LayeredNetwork(simulation, learn_delays=False)({"input": spikes}), simulation)


def lif_with_delays(compile, duration_ms=100):
    """lif_euler's scenario (199 delays; its pathway adds per batch row: fixed shapes where compiled) with a
    refractory period of 2 ms (a boolean state, not_refractory), float64, two batch rows of different time
    constants, and what makes steps fit no call of the compiled steps (StepwiseNetwork._fits_a_call): two run
    segments of 146 steps and the rest (v set between them, then a call starts), an operation every 13 steps; an
    operation with rand() every step, which runs within calls; v recorded every step, I of 3 neurons every 3 steps.
    (module, its run's arguments)."""
    simulation = library.scenario("lif_euler", seed=3, duration=f"{duration_ms}*ms")
    (population,) = simulation.network.populations
    held = dataclasses.replace(population, model=dataclasses.replace(population.model, refractory="2*ms"))
    operations = (Operation("kick", "lif_euler", "v += 0.05", dt="1.3*ms"),
                  Operation("jitter", "lif_euler", "I += 0.01 * rand()", when="end"))
    run = dataclasses.replace(simulation.run, record=("lif_euler.v", "lif_euler.I[0:3] every 0.3*ms"),
                              segments=("14.6*ms", f"{duration_ms - 14.6:.1f}*ms"),
                              changes=(Change(1, "lif_euler.v", "0.3"),))
    module = StepwiseNetwork(dataclasses.replace(simulation, network=dataclasses.replace(
        simulation.network, populations=(held,), operations=operations), run=run), compile=compile)
    return module, {"batch_size": 2, "variants": {"lif_euler.tau_mem": torch.tensor([0.01, 0.008])}}


@pytest.mark.slow
@pytest.mark.cython
def test_the_compiled_steps_are_one_graph_compiled_once_and_equal_the_eager_steps_bitwise(caplog):
    """StepwiseNetwork(compile=True): STEPS_PER_CALL steps from the state updates to the resets as one graph,
    compiled once for the run (n and t reach it as tensors), the steps that fit no call run eagerly between them
    (lif_with_delays), giving the eager module's spikes, margins and traces bit for bit, and no warning from
    inductor; with its capacity cut to 1 event a step, the run is repeated with one that holds every step's
    events."""
    (compiled, arguments), (eager, _) = lif_with_delays(True), lif_with_delays(False)
    delivery = compiled.deliveries[("input_to_lif", "pre")]
    delivery.capacities[2] = 256  # room for every step's events (65 to 128 here): no re-run
    torch._dynamo.utils.counters.clear()
    inductor = logging.getLogger("torch._inductor")  # its records reach no handler of the root logger
    inductor.addHandler(caplog.handler)
    with torch._dynamo.config.patch(error_on_recompile=True), torch.no_grad():
        run, other = compiled(**arguments), eager(**arguments)
    inductor.removeHandler(caplog.handler)
    assert not [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1 and not compiled.compiled_steps.fell_back
    assert other.spikes["lif_euler"].sum() >= 400  # seen 520
    assert_same_run(run, other, compiled.simulation)
    delivery.capacities[2] = 1
    with torch.no_grad():
        assert_same_run(compiled(**arguments), other, compiled.simulation)
    assert delivery.capacities[2] == 128


@pytest.mark.slow
@pytest.mark.cython
def test_the_compiled_step_gives_the_eager_step_s_gradients():
    """Gradients through the compiled step (its backward pass compiled too; the synaptic additions to I aten's
    index_add, whose backward d/d tau_syn passes through): of a loss of spike times and margins,
    d/d tau_syn per neuron, equal to the eager module's to rounding (float64)."""
    simulation = library.scenario("lif_euler", seed=3, duration="50*ms")
    gradients = []
    for compile in (False, True):
        module = StepwiseNetwork(simulation, compile=compile, learn={"lif_euler.tau_syn": "per_element"})
        run = module(batch_size=2)
        steps = torch.arange(run.spikes["lif_euler"].shape[1], dtype=torch.float64)[None, :, None]
        ((run.spikes["lif_euler"] * steps).sum() + run.margins["lif_euler"].pow(2).sum()).backward()
        gradients.append(next(p.grad for p in module.parameters() if p.grad is not None))
    eager, compiled = gradients
    assert eager.abs().min() > 0 and torch.allclose(compiled, eager, rtol=1e-12, atol=0)


@pytest.mark.slow
@pytest.mark.cython
def test_the_step_backend_keeps_aten_s_index_add_and_inductor_s_cache(monkeypatch, tmp_path):
    """step_backend compiles index_add as aten's kernel (an extern call; inductor's decomposition adds atomically,
    in its own kernel) without a table of decompositions of its own (inductor caches nothing compiled with one),
    and leaves inductor's table as it was. In a cache of its own: inductor's key does not tell the two
    decompositions apart."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    torch._dynamo.utils.counters.clear()
    added = torch.compile(lambda x, index, y: x.index_add(0, index, y) * 2, backend=step_backend, dynamic=False)
    result = added(torch.zeros(5, dtype=torch.float64), torch.tensor([1, 1, 3]),
                   torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64))
    assert result.tolist() == [0.0, 6.0, 0.0, 1.0, 0.0]
    counters = torch._dynamo.utils.counters["inductor"]
    assert counters["extern_calls"] >= 1 and counters["fxgraph_cache_bypass"] == 0
    assert counters["fxgraph_cache_miss"] + counters["fxgraph_cache_hit"] == 1
    assert torch.ops.aten.index_add.default in select_decomp_table()


def test_a_failing_compilation_of_the_step_runs_it_eagerly_in_fixed_shapes_with_a_warning():
    """Where torch.compile fails, the step runs eagerly after one warning, its pathway still in fixed shapes:
    the event-driven module's numbers bit for bit, a run with more events due in a step than the capacity (cut
    to 1) repeated with more."""
    (module, arguments), (eager, _) = lif_with_delays(True, 30), lif_with_delays(False, 30)

    def broken(*args):
        raise RuntimeError("no C++ compiler")
    module.compiled_steps.current = broken
    delivery = module.deliveries[("input_to_lif", "pre")]
    delivery.capacities[2] = 1
    with torch.no_grad(), pytest.warns(UserWarning, match="the step.*running it eagerly.*no C\\+\\+ compiler"):
        run = module(**arguments)
    assert module.compiled_steps.fell_back and delivery.capacities[2] > 1
    with torch.no_grad():
        other = eager(**arguments)
    assert other.spikes["lif_euler"].sum() >= 60  # seen 81
    assert_same_run(run, other, module.simulation)


def test_the_compiled_step_reads_a_poisson_input_s_counts_of_step_n_given_as_a_tensor():
    """The compiled step's function run eagerly with its tensor n (as after a failed compilation): a
    PoissonInput's counts are those of step n, the numbers of a step given n as a Python int."""
    drive = PoissonInput("drive", "cells", "v", 50, "20*Hz", "0.5*mV", seed=3)
    simulation = Simulation(Network((Population("cells", NeuronModel("v : volt"), 4),), poisson_inputs=(drive,)),
                            RunSettings("30*ms", record=("cells.v",)))
    module = StepwiseNetwork(simulation, compile=True)
    module.compiled_steps.current = module.compiled_steps.eager
    with torch.no_grad():
        run, other = module(), StepwiseNetwork(simulation)()
    assert len(torch.unique(run.traces["cells.v"])) > 10  # seen 21 values
    assert_same_run(run, other, simulation)
