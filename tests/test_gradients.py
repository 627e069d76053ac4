"""The torch module is differentiable through delays and synaptic weights (subthreshold: v is linear in w)."""
import numpy as np
import pytest
import torch

from bridge.errors import DescriptionError
from bridge.app.paired import paired_run
from bridge.plan import lower
from bridge import library
from torch_models.stepwise import StepwiseNetwork


def test_gradient_of_voltage_wrt_delayed_weights_matches_finite_differences():
    simulation = library.scenario("lif", seed=4, n=5, weight=(0.0, 0.005e-9), duration="50*ms")
    module = StepwiseNetwork(simulation)
    weights = module.parameter("input_to_lif", "w")
    run = module()
    assert run.spikes["lif"].sum() == 0  # subthreshold, so the loss is smooth in w
    loss = run.traces["lif.v"].sum()
    loss.backward()
    grad = weights.grad.clone()
    projection = simulation.network.projections[0]
    plan = lower(simulation)
    delays, sources = plan.projections[projection.name].delay_steps, plan.projections[projection.name].i
    indices, steps = plan.sources["poisson"].indices, plan.sources["poisson"].steps
    # a weight matters exactly when a spike of it arrives (step n + d), moves I_syn and then v (recorded at n + d + 2)
    reaches = np.array([np.any(steps[indices == s] + d + 2 < simulation.run.n_steps) for s, d in zip(sources, delays)])
    assert reaches.sum() > 20 and (~reaches).sum() > 20
    assert np.array_equal(grad.numpy() != 0, reaches)
    reaching = np.flatnonzero(reaches)
    for k in reaching[np.argsort(delays[reaching])][[0, len(reaching) // 2, -1]]:  # short, medium, long delays
        step = 1e-12
        with torch.no_grad():
            weights[k] += step
            up = module().traces["lif.v"].sum()
            weights[k] -= 2 * step
            down = module().traces["lif.v"].sum()
            weights[k] += step
        assert torch.isclose(grad[k], (up - down) / (2 * step), rtol=1e-6)


def test_batch_elements_equal_single_runs():
    """Three different input trains in one batch give exactly what three separate runs give."""
    from bridge.description import PoissonTrains

    simulation = library.scenario("lif", seed=0, duration="200*ms")
    n_steps, n = simulation.run.n_steps, simulation.network.sources[0].n
    inputs = torch.zeros(3, n_steps, n, dtype=torch.float64)
    for b in range(3):
        indices, steps = PoissonTrains("poisson", n, "40*Hz", seed=10 + b).spike_steps(simulation.dt, n_steps)
        inputs[b, steps, indices] = 1
    module = StepwiseNetwork(simulation)
    with torch.no_grad():
        batched = module({"poisson": inputs})
        singles = [module({"poisson": inputs[b:b + 1]}) for b in range(3)]
    counts = [int(s.spikes["lif"].sum()) for s in singles]
    assert min(counts) > 20 and len(set(counts)) == 3
    for b, single in enumerate(singles):
        assert torch.equal(batched.spikes["lif"][b], single.spikes["lif"][0])
        assert torch.equal(batched.traces["lif.v"][b], single.traces["lif.v"][0])


def test_variants_in_one_batch_equal_separate_runs():
    """Three variants (a neuron parameter, also read by an operation on a subgroup, a synaptic parameter, initial
    values) as one batch of the step-by-step module give what three separately described networks give."""
    import dataclasses
    import torch
    from bridge.description import NeuronModel, Network, Operation, Population, Projection, RunSettings, \
        Simulation, SpikeTrains, SynapseModel
    from torch_models.stepwise import StepwiseNetwork

    rng = np.random.default_rng(5)
    cells = NeuronModel("dv/dt = (1.1 - v)/tau : 1 (unless refractory)", threshold="v > 1", reset="v = 0",
                        refractory="3*ms", parameters={"tau": "10*ms"})
    synapse = SynapseModel("w : 1", on_pre="v_post += gain*w", parameters={"gain": "1"})
    inputs = SpikeTrains("inp", 5, rng.integers(0, 5, 60), np.sort(rng.uniform(0, 0.05, 60)))
    projection = Projection("drive", "inp", "cells", synapse, values={"w": rng.uniform(0, 0.3, (5, 20))})

    def simulation(tau="10*ms", gain="1", v="0"):
        network = Network((Population("cells", dataclasses.replace(cells, parameters={"tau": tau}), 20,
                                      initial={"v": v}),), (inputs,),
                          projections=(dataclasses.replace(projection, synapse=dataclasses.replace(
                              synapse, parameters={"gain": gain})),),
                          operations=(Operation("nudge", "cells", "v += 0.02 * tau/ms", dt="5*ms", start=5, stop=12),))
        return Simulation(network, RunSettings("50*ms", record=("cells.v",)))

    taus, gains, starts = [8e-3, 10e-3, 14e-3], [0.5, 1.0, 2.0], rng.uniform(0, 1, (3, 20))
    with torch.no_grad():
        batched = StepwiseNetwork(simulation())(batch_size=3, variants={"cells.tau": taus, "drive.gain": gains,
                                                                         "cells.v": starts})
        for k in range(3):
            single = StepwiseNetwork(simulation(f"{taus[k]!r}*second", repr(gains[k]), starts[k]))()
            assert torch.equal(batched.spikes["cells"][k], single.spikes["cells"][0])
            torch.testing.assert_close(batched.traces["cells.v"][k], single.traces["cells.v"][0], rtol=1e-12, atol=0)
    counts = batched.spikes["cells"].sum(dim=(1, 2))
    assert len(set(counts.tolist())) == 3 and counts.min() > 0  # the variants differ
    _, _, report = paired_run(simulation("8e-3*second", "0.5", starts[0]))  # inputs reach refractory cells: dropped
    assert report.identical and report.passed
    with pytest.raises(DescriptionError, match=r"variants\['cells.nope'\]: names no state variable or parameter"):
        StepwiseNetwork(simulation())(batch_size=3, variants={"cells.nope": taus})
    with pytest.raises(DescriptionError, match=r"variants\['drive.gain'\]: shape \(3, 20\); give \(3,\) or \(3, 1\)"):
        StepwiseNetwork(simulation())(batch_size=3, variants={"drive.gain": starts})


def test_spikes_carry_the_surrogate_s_gradient_as_floats_and_are_booleans_without_gradients():
    """Recorded without gradients, a run's spikes are booleans, logged as such step by step (a byte each, not a
    float); with gradients the same spikes are floats whose gradient reaches the weights."""
    from torch_models.stepwise import StepLog

    module = StepwiseNetwork(library.scenario("lif", seed=0, duration="100*ms"))
    with torch.no_grad():
        plain = module().spikes["lif"]
    differentiable = module().spikes["lif"]
    assert plain.dtype == torch.bool and differentiable.dtype == torch.float64
    assert torch.equal(differentiable.detach(), plain.double()) and int(plain.sum()) > 20
    differentiable.sum().backward()
    assert module.parameter("input_to_lif", "w").grad.abs().sum() > 0
    log = StepLog(3, dtype=torch.bool)
    with torch.no_grad():
        for n, values in enumerate(([0.0, 1.0], [1.0, 0.0], [0.0, 0.0])):
            log.add("lif", n, torch.tensor([values], dtype=torch.float64))
    assert log.values["lif"].dtype == torch.bool and log.values["lif"].tolist() == [[[False, True], [True, False],
                                                                                     [False, False]]]
