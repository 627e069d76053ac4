"""The plan (bridge/plan.py): a description lowered to numbers once, pinned by hand-computed values; no
backend parses quantities inside its time loop."""
from pathlib import Path

import numpy as np
import pytest
import torch

import bridge.quantities
import torch_models
from bridge import library
from bridge.app.brian2_scripts import from_brian2
from bridge.description import (NeuronModel, Network, Population, Projection, RunSettings, Simulation, SpikeTrains,
                                SynapseModel)
from bridge.errors import DescriptionError
from bridge.plan import lower

UNIT = NeuronModel("dv/dt = -v/tau : 1\nd : second", threshold="v > 1", reset="v = 0",
                   parameters={"tau": "20*ms"})


def _simulation(**run):
    inputs = SpikeTrains("inp", 2, [0, 1, 0], [0.0, 1.1e-3, 2.5e-3])
    static = Projection("static", "inp", "unit", SynapseModel("w : 1", on_pre="v_post += w"), i=[0, 1], j=[0, 2],
                        values={"w": "0.5"}, delays=[0.15e-3, 0.25e-3], max_delay="1*ms")
    dynamic = Projection("dynamic", "inp", "unit", SynapseModel("w : 1", on_pre="v_post += w"), values={"w": "1"},
                         max_delay="2*ms", delay_mode="dynamic", delay_variable="d_post")
    network = Network((Population("unit", UNIT, 3, initial={"d": [0.0, 0.05e-3, 1.04e-3], "v": "0.25"}),),
                      (inputs,), (), (static, dynamic))
    return Simulation(network, RunSettings("4*ms", record=("unit.v", "unit.d"), **run))


def test_lowering_gives_the_hand_computed_numbers():
    plan = lower(_simulation(segments=4))
    assert plan.dt == 1e-4 and plan.n_steps == 40 and plan.segment_lengths == (10, 10, 10, 10)
    assert list(plan.segment_starts) == [0, 10, 20, 30]
    assert plan.records == {"unit.v": ("unit", "v", None, 1), "unit.d": ("unit", "d", None, 1)}
    unit = plan.populations["unit"]
    assert unit.constants == {"tau": pytest.approx(0.02)}
    assert unit.initial_array("v").tolist() == [0.25] * 3 and unit.initial_array("d")[2] == 1.04e-3
    assert plan.sources["inp"].steps.tolist() == [0, 11, 25]  # int((t + 1e-3 dt)/dt)
    static, dynamic = plan.projections["static"], plan.projections["dynamic"]
    assert static.delay_steps.tolist() == [1, 3]  # 0.15 ms is 1.4999... steps: 1; 0.25 ms is 2.5: 3
    assert static.rule.max_steps == 10 and static.values["w"].tolist() == [0.5, 0.5] and static.delay_owner is None
    assert dynamic.shape == (2, 3) and dynamic.i.tolist() == [0, 0, 0, 1, 1, 1] and dynamic.j.tolist() == [0, 1, 2] * 2
    assert dynamic.delay_owner == ("target", "d")
    assert dynamic.delay_steps.tolist() == [0, 1, 10] * 2  # d of each synapse's target: 0, 0.5 -> 1, 10.4 -> 10


@pytest.mark.parametrize("strategy", ["stepwise", "layered"])
def test_no_quantity_is_parsed_inside_the_time_loop(strategy, monkeypatch):
    simulation = library.scenario("lif_euler", seed=0, duration="20*ms")
    module = torch_models.compile(simulation, strategy)
    parsed = []
    original = bridge.quantities._evaluate
    monkeypatch.setattr(bridge.quantities, "_evaluate", lambda node: parsed.append(node) or original(node))
    with torch.no_grad():
        run = module()
    assert run.spikes["lif_euler"].sum() > 0
    assert parsed == []


def test_auto_strategy_says_why_it_runs_step_by_step():
    assert torch_models.compile(library.scenario("lif_euler", duration="5*ms")).strategy == "layered"
    module = torch_models.compile(_simulation())
    assert module.strategy == "stepwise" and "'dynamic'" in module.strategy_note
    with pytest.raises(ValueError, match="delay_mode: 'dynamic'"):
        torch_models.compile(_simulation(), "layered")


def test_both_strategies_share_one_interface_and_write_back():
    simulation = library.scenario("lif_euler", seed=1, n=4, duration="30*ms")
    stepwise, layered = (torch_models.compile(simulation, strategy, learn_delays=False) if strategy == "layered"
                         else torch_models.compile(simulation, strategy) for strategy in ("stepwise", "layered"))
    assert [n for n, _ in stepwise.named_parameters()] == [n for n, _ in layered.named_parameters()
                                                          if not n.endswith("delays.steps")]
    with torch.no_grad():
        for module in (stepwise, layered):
            module.parameter("input_to_lif", "w").mul_(3)
        assert torch.equal(stepwise().spikes["lif_euler"], layered().spikes["lif_euler"])
    proj = simulation.network.projections[0]
    for module in (stepwise, layered):
        written = module.to_simulation().network.projections[0]
        np.testing.assert_array_equal(written.values["w"], 3 * np.asarray(proj.values["w"]))


def test_random_calls_in_threshold_and_reset_are_drawn_once_for_both_backends(paired):
    """rand() in a threshold and a reset: uniform tables from default_rng([noise_seed, 2, population index]),
    one row per step, drawn in code order (threshold, then reset)."""
    model = NeuronModel("v : 1\nrate : Hz", threshold="rand() < rate*dt", reset="v = rand()")
    simulation = Simulation(Network((Population("cells", model, 20, initial={"rate": "300*Hz"}),)),
                            RunSettings("50*ms", record=("cells.v",), noise_seed=7))
    brian_record, torch_record, report = paired(simulation)
    assert report.identical and report.passed, report.text()
    rng = np.random.default_rng([7, 2, 0])
    fires, values = rng.random((500, 20)) < 300 * 1e-4, rng.random((500, 20))
    for record in (brian_record, torch_record):
        neurons, steps = record.spikes["cells"]
        assert len(steps) > 50 and np.array_equal(np.sort(steps * 20 + neurons), np.flatnonzero(fires))
        v = record.traces["cells.v"]
        np.testing.assert_array_equal(v[1:][fires[:-1]], values[:-1][fires[:-1]])


def test_random_calls_where_no_draws_are_shared_are_refused():
    synapse = SynapseModel("w : 1", on_pre="v_post += w*(rand() < 0.5)")
    network = Network((Population("unit", UNIT, 3),), (SpikeTrains("inp", 1),),
                      projections=(Projection("maybe", "inp", "unit", synapse, values={"w": "1"}),))
    with pytest.raises(DescriptionError, match=r"Projection 'maybe'.synapse: rand\(\) / randn\(\) in 'v_post"):
        lower(Simulation(network, RunSettings("1*ms")))


def test_poisson_draws_follow_their_rule_not_just_the_other_backend():
    """Both backends read the same drawn spikes and counts, so a wrong draw would pass every crosscheck: pin the
    rule (numpy's default_rng(seed): uniform < rate*dt per step and neuron; Binomial(n, rate*dt) counts) and the
    rate it gives."""
    from bridge.description import PoissonInput, PoissonTrains

    trains = PoissonTrains("p", 50, "40*Hz", seed=7)
    indices, steps = trains.spike_steps(1e-4, 20000)
    expected_steps, expected_indices = np.nonzero(np.random.default_rng(7).random((20000, 50)) < 40 * 1e-4)
    assert steps.tolist() == expected_steps.tolist() and indices.tolist() == expected_indices.tolist()
    assert len(steps) / (50 * 2.0) == pytest.approx(40, rel=0.05)  # 4000 spikes expected, sd 63
    counts = PoissonInput("drive", "cells", "v", 200, "25*Hz", "0.1*mV", seed=3).counts(1e-4, 5000, 4)
    assert np.array_equal(counts, np.random.default_rng(3).binomial(200, 25 * 1e-4, size=(5000, 4)))
    assert counts.mean() / 1e-4 / 200 == pytest.approx(25, rel=0.05)  # 10000 events expected, sd 100


def test_brian2_default_constants_in_code_are_known_to_both_backends(paired):
    """`pi` (one of Brian2's default constants) in an equation and a threshold: identical in both backends and
    equal to v <- pi + (v - pi)*exp(-dt/tau), step by step (exact integration), by hand."""
    model = NeuronModel("dv/dt = (pi - v)/tau : 1", threshold="v > pi/2", reset="v = 0",
                        parameters={"tau": "10*ms"})
    simulation = Simulation(Network((Population("cells", model, 1),)), RunSettings("30*ms", record=("cells.v",)))
    assert lower(simulation).code.populations["cells"].constants["pi"] == np.pi
    brian_record, torch_record, report = paired(simulation)
    assert report.identical and report.passed, report.text()
    v, trace, spikes = 0.0, [], []
    for n in range(300):
        trace.append(v)
        v = np.pi + (v - np.pi) * np.exp(-1e-4 / 10e-3)
        if v > np.pi / 2:
            spikes.append(n)
            v = 0.0
    assert len(spikes) >= 3 and brian_record.spikes["cells"][1].tolist() == spikes
    np.testing.assert_allclose(torch_record.traces["cells.v"][:, 0], trace, rtol=0, atol=1e-12)


def test_the_abstract_code_names_things_in_one_order_in_every_process():
    """Names come from sets (Brian2's Equations.names, the identifiers code reads), whose order changes from one
    process to the next (string hashes); the code lists them sorted, so that the compiled steps' graph, and the
    key of inductor's cache of it, are the same in every process."""
    code = lower(from_brian2(Path(__file__).parent / "brian2_examples" / "cobahh.py")).code
    neurons = code.populations["neurons"]
    assert list(neurons.variables) == ["ge", "gi", "h", "lastspike", "m", "n", "not_refractory", "v"]
    assert list(neurons.constants) == ["Cm", "EK", "ENa", "Ee", "Ei", "El", "VT", "g_kd", "g_na", "gl", "taue",
                                       "taui", "mV", "ms"]  # the parameters, then the units
