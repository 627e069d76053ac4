"""Models written from Brian2's examples (tests/brian2_examples, shortened): each imported from its script by
one call and cross-checked (identical spikes, equal traces, float64), and each pinned by a number computed here
independently of both backends."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import exprel

import torch_models
from bridge.app.brian2_scripts import from_brian2
from bridge.app.export import to_brian2
from bridge.app.compare import compare_statistics, spike_statistics
from bridge.app.paired import independent_noise_run
from bridge.record import Record
from torch_models import run as run_torch
from bridge.description import (NeuronModel, Network, PoissonInput, PoissonTrains, Population, Projection, RunSettings,
                                Simulation, SynapseModel)
from bridge.plan import lower

EXAMPLES = Path(__file__).parent / "brian2_examples"


def _identical(paired, name):
    """(simulation, Brian2's record, torch's) of an example imported and run by both: identical spikes, equal
    traces (the exact class against Brian2's numpy target)."""
    simulation = from_brian2(EXAMPLES / f"{name}.py")
    brian_record, torch_record, report = paired(simulation)
    assert report.identical and report.passed, report.text()
    for key, trace in brian_record.traces.items():
        assert np.array_equal(trace, torch_record.traces[key]), key
    return simulation, brian_record, torch_record


def _crosscheck(paired, name, min_spikes):
    """_identical, for a model whose neurons spike at least `min_spikes` >= 1 times."""
    assert min_spikes >= 1, "a spike count that cannot fail; check a subthreshold model's response instead"
    simulation, brian_record, torch_record = _identical(paired, name)
    assert sum(map(brian_record.count, brian_record.spikes)) >= min_spikes
    return simulation, brian_record, torch_record


@pytest.mark.parametrize("script", sorted(EXAMPLES.glob("*.py")), ids=lambda path: path.stem)
def test_export_then_import_gives_the_same_description(script, tmp_path):
    simulation = from_brian2(script)
    exported = tmp_path / script.name
    exported.write_text(to_brian2(simulation))
    assert from_brian2(exported) == simulation


def test_cobahh_with_subexpressions(paired):
    _, brian_record, torch_record = _crosscheck(paired, "cobahh", 50)
    mV = ms = 1e-3
    for record in (brian_record, torch_record):  # the recorded subexpression, by hand from the recorded v
        v = record.traces["neurons.v"]
        alpha_m = 0.32 / mV * 4 * mV / exprel((13 * mV - v + -63 * mV) / (4 * mV)) / ms
        np.testing.assert_allclose(record.traces["neurons.alpha_m"], alpha_m, rtol=1e-12)


def test_if_curve_rates_follow_the_lif_formula(paired):
    simulation, brian_record, _ = _crosscheck(paired, "if_curve", 500)
    neurons, _ = brian_record.spikes["lif"]
    counts = np.bincount(neurons, minlength=100)
    v0 = 20e-3 * np.arange(100) / 99
    assert not counts[v0 <= 10e-3].any()  # at or below threshold: never fires
    fires = v0 > 10.5e-3
    period = 5e-3 + 10e-3 * np.log(v0[fires] / (v0[fires] - 10e-3))  # refractory + time to reach threshold
    expected = np.floor((0.3 - 10e-3 * np.log(v0[fires] / (v0[fires] - 10e-3))) / period) + 1
    assert np.abs(counts[fires] - expected).max() <= 1  # whole-step timing moves a spike by at most one


def test_adaptive_threshold_rises_3_mv_per_spike(paired):
    simulation, brian_record, _ = _crosscheck(paired, "adaptive_threshold", 20)
    vt = brian_record.traces["neuron.vt"][:, 0]
    decay = np.exp(-simulation.dt / 15e-3)
    relaxed = 10e-3 + (vt[:-1] - 10e-3) * decay  # exact integration of dvt/dt = (10 mV - vt)/15 ms
    jumps = vt[1:] - relaxed
    _, steps = brian_record.spikes["neuron"]
    steps = steps[steps < len(jumps)]
    np.testing.assert_allclose(jumps[steps], 3e-3, atol=1e-12)
    assert np.abs(np.delete(jumps, steps)).max() < 1e-12


def _stdp_by_hand(w, pre_steps, post_steps, n_steps, dt, gmax=0.01, tau=20e-3):
    """The STDP rule of the example, event by event in numpy for one synapse: traces decay to each event, a
    presynaptic spike adds dApre and moves w by Apost, a postsynaptic spike adds dApost and moves w by Apre
    (pre pathway before post within a step); w clipped to [0, gmax]. Returns w after steps < n_steps."""
    d_apre = 0.01 * gmax
    d_apost = -0.01 * 1.05 * gmax
    apre = apost = last = 0.0
    events = sorted([(s, 0) for s in pre_steps] + [(s, 1) for s in post_steps])
    for step, post in events:
        if step >= n_steps:
            break
        t = step * dt
        apre, apost, last = apre * np.exp(-(t - last) / tau), apost * np.exp(-(t - last) / tau), t
        if post:
            apost += d_apost
            w = np.clip(w + apre, 0, gmax)
        else:
            apre += d_apre
            w = np.clip(w + apost, 0, gmax)
    return w


@pytest.mark.slow
def test_stdp_weights_after_one_second(paired):
    simulation, brian_record, torch_record = _crosscheck(paired, "stdp", 20)
    weights = brian_record.traces["plastic.w"]
    assert np.abs(weights[-1] - weights[0]).max() > 1e-4  # the weights learned
    np.testing.assert_allclose(torch_record.traces["plastic.w"], weights, rtol=0, atol=1e-9 * np.abs(weights).max())
    plan = lower(simulation)
    inputs, (_, post_steps) = plan.sources["inputs"], brian_record.spikes["neuron"]
    for k in range(0, 1000, 97):
        pre_steps = inputs.steps[inputs.indices == k]
        by_hand = _stdp_by_hand(weights[0, k], pre_steps, post_steps, plan.n_steps - 1, plan.dt)
        assert abs(by_hand - weights[-1, k]) <= 1e-15, k


@pytest.mark.slow
def test_stdp_network_trains_its_weights_by_gradient():
    simulation = from_brian2(EXAMPLES / "stdp.py")
    simulation = dataclasses.replace(simulation, run=dataclasses.replace(simulation.run, duration="0.2*second"))
    module = torch_models.compile(simulation)
    assert module.strategy == "stepwise"
    weights = module.parameter("plastic", "w")
    run = module()
    assert run.spikes["neuron"].sum() >= 3
    run.traces["neuron.v"].sum().backward()
    gradient = weights.grad.clone()
    with torch.no_grad():
        for k in (3, 500, 998):
            shifted = []
            for sign in (1, -1):
                weights[k] += sign * 1e-7
                shifted.append(module().traces["neuron.v"].sum().item())
                weights[k] -= sign * 1e-7
            assert (shifted[0] - shifted[1]) / 2e-7 == pytest.approx(gradient[k].item(), rel=1e-5)
    assert gradient.abs().max() > 0


def test_gap_junction_currents_are_summed_before_the_update(paired):
    _, brian_record, torch_record = _crosscheck(paired, "gapjunctions", 20)
    v, gap = torch_record.traces["neurons.v"], torch_record.traces["neurons.Igap"]
    # the summed variable is computed in the 'groups' slot before the neurons integrate: from the v recorded
    # at the start of the previous step, over all 10 x 10 pairs with w = 0.02
    by_hand = 0.02 * (v[:-1].sum(axis=1, keepdims=True) - 10 * v[:-1])
    np.testing.assert_allclose(gap[1:], by_hand, rtol=0, atol=1e-15)


def test_nonlinear_synapses_sum_their_clock_driven_conductances(paired):
    _, brian_record, torch_record = _crosscheck(paired, "nonlinear", 50)
    g_syn, g = torch_record.traces["nmda.g_syn"], torch_record.traces["neuron.g"][:, 0]
    assert g_syn.max() > 0.1
    np.testing.assert_allclose(g[1:], g_syn[:-1].sum(axis=1), rtol=1e-15, atol=0)  # summed before the update


def test_dynamic_synapses_decay_exactly_between_spikes(paired):
    simulation, brian_record, torch_record = _identical(paired, "tsodyks")  # subthreshold: no spikes of its own
    y = torch_record.traces["synapses.y"]
    decay = np.exp(-simulation.dt / np.array([3e-3, 1.5e-3]))  # dy/dt = -y/tau_inact, exponential Euler: exact
    jumps = y[1:] - y[:-1] * decay
    arrivals = np.round(np.arange(100, 500, 50) * 1e-3 / simulation.dt).astype(int)
    assert np.all(jumps[arrivals] > 1e-3)  # each stimulus spike activates resources in both synapses
    np.testing.assert_allclose(np.delete(jumps, arrivals, axis=0), 0, atol=1e-15)
    assert np.abs(brian_record.traces["neurons.v"]).max() > 1e-3


def test_custom_events_trigger_their_own_code_and_pathway(paired):
    simulation, brian_record, torch_record = _crosscheck(paired, "custom_events", 2)
    g, allowed = torch_record.traces["G.g"][:, 0], torch_record.traces["G.allow_gspike"][:, 0]
    y, x = torch_record.traces["H.y"][:, 0], torch_record.traces["H.x"][:, 0]
    decay = np.exp(-simulation.dt / 10e-3)
    # by hand: a gspike where g, decayed over the step, exceeds 1 while allowed (re-armed by g < 1 or a spike)
    gspikes = np.nonzero((g[:-1] * decay > 1) & (allowed[:-1] == 1))[0]
    y_jumps = np.nonzero(y[1:] - y[:-1] * decay > 0.5)[0]
    assert len(gspikes) >= 3 and np.array_equal(y_jumps, gspikes)
    assert np.all(allowed[gspikes + 1] == 0)  # run_on_event('gspike') disarms
    _, spike_steps = torch_record.spikes["G"]
    assert np.array_equal(np.nonzero(x[1:] - x[:-1] * decay > 0.5)[0], spike_steps)  # 'pre' on spikes only


def test_izhikevich_pathways_have_their_own_delays_and_noise_is_drawn_once(paired):
    simulation, brian_record, torch_record = _crosscheck(paired, "izhikevich", 50)
    noise, current = brian_record.traces["neurons.I_noise"], brian_record.traces["neurons.I"]
    # by hand: randn() of each operation drawn from default_rng([noise_seed, 1, operation index]), one row
    # per step, set in the 'start' slot before the record
    for index, (scale, start, stop) in enumerate([(5, 0, 80), (2, 80, 100)]):
        draws = np.random.default_rng([simulation.run.noise_seed, 1, index]).standard_normal((200, stop - start))
        np.testing.assert_array_equal(noise[:, start:stop], scale * draws)
    # pathway 'up' adds w in the step of the spike, 'down' takes it back one step (1 ms) later: I holds the
    # weights of the last step's spikes
    weights = np.asarray(simulation.network.projections[0].values["w"])  # (source, target)
    raster = np.zeros((200, 100))
    neurons, steps = brian_record.spikes["neurons"]
    raster[steps, neurons] = 1
    np.testing.assert_allclose(current[1:], (raster @ weights)[:-1], atol=1e-12)


def test_white_noise_is_drawn_once_for_both_backends(paired):
    simulation, brian_record, torch_record = _crosscheck(paired, "brunel_hakim", 200)
    assert simulation.network.populations[0].model.method == "euler"
    # the noise by hand: forward Euler with standard normals from default_rng([noise_seed, population index])
    draws = np.random.default_rng([simulation.run.noise_seed, 0]).standard_normal((1000, 500))
    V, dt, tau = brian_record.traces["neurons.V"], simulation.dt, 20e-3
    quiet = (np.arange(1, 1000) < 20)  # before any spike or refractory period: free membrane (no input yet)
    by_hand = V[:-1] + dt * (-V[:-1] + 25e-3 + 1e-3 * np.sqrt(tau) * draws[:-1] / np.sqrt(dt)) / tau
    np.testing.assert_allclose(V[1:][quiet], by_hand[quiet], rtol=1e-12)


@pytest.mark.slow
def test_independent_noise_passes_the_stochastic_class_and_louder_noise_fails_it():
    """The stochastic class: Brian2's own white noise against spikebridge's draws in torch, 5 seeds."""
    model = NeuronModel("dv/dt = (mu - v)/tau + sigma*xi*tau**-0.5 : 1", threshold="v > 1", reset="v = 0",
                        parameters={"mu": "0.9", "sigma": "0.4", "tau": "10*ms"}, method="euler")
    simulation = Simulation(Network((Population("cells", model, 200),)), RunSettings("300*ms"))
    brian_records, _, report = independent_noise_run(simulation)
    assert report.passed, report.text()
    assert report.statistics["cells"]["brian2"]["rate"] > 20 and report.statistics["cells"]["brian2"]["cv"] > 0.3
    louder = dataclasses.replace(model, parameters={**model.parameters, "sigma": "0.44"})
    louder_runs = [run_torch(dataclasses.replace(simulation, network=Network((Population("cells", louder, 200),)),
                                                 run=dataclasses.replace(simulation.run, noise_seed=seed)))
                   for seed in range(5)]
    assert not compare_statistics(brian_records, louder_runs, {"cells": 200}).passed


def test_spike_statistics_by_hand():
    regular = np.arange(0, 1000, 10)  # neurons 0..19 fire every 10 steps, neuron 20 at steps 0, 100, 300, 600
    neurons = np.concatenate([np.repeat(np.arange(20), 100), [20] * 4])
    steps = np.concatenate([np.tile(regular, 20), [0, 100, 300, 600]])
    record = Record("torch", 1e-3, 1000, {"cells": (neurons, steps)}, {})
    few = Record("torch", 1e-3, 1000, {"cells": (neurons[-4:], steps[-4:])}, {})  # neuron 20 alone
    intervals = np.array([100, 200, 300])
    cv = intervals.std() / intervals.mean()
    statistics = spike_statistics([record, record], "cells", 21)
    assert statistics["rate"] == pytest.approx((2000 + 4) / 21)
    assert statistics["cv"] == pytest.approx(cv / 21)
    assert statistics["rate_se"] == statistics["cv_se"] == 0  # the same in both seeds
    statistics = spike_statistics([record, few], "cells", 21)  # seeds differ: the standard error of two values
    assert statistics["rate"] == pytest.approx((2004 + 4) / 42)  # is half their difference
    assert statistics["rate_se"] == pytest.approx(2000 / 21 / 2)
    assert statistics["cv"] == pytest.approx(2 * cv / 22)  # 22 trains, two of them irregular
    assert statistics["cv_se"] == pytest.approx((cv - cv / 21) / 2)
    assert spike_statistics([record], "cells", 21)["cv"] is not None  # 21 trains of >= 3 spikes
    assert spike_statistics([few], "cells", 21)["cv"] is None  # one train: too few to compare


@pytest.mark.parametrize("scale, passes", [(1, True), (100, False)])
def test_the_stochastic_class_allows_a_difference_small_samples_cannot_resolve(scale, passes):
    """Rates 10 % apart (one neuron, 5 seeds of 1 s), Brian2's counts 10*scale + (-2, 2, -1, 1, 0), torch's
    scale more in each seed: the standard error of the difference is sqrt(2) x 1.58/sqrt(5) = 1.0 spikes/s, so the
    difference is t = `scale`, against Student's t of 8 degrees of freedom at p = 0.001, 5.04: 1 passes,
    100 fails."""
    def records(counts):
        return [Record("x", 1e-3, 1000, {"cell": (np.zeros(k, int), np.linspace(0, 999, k).astype(int))}, {})
                for k in counts]
    counts = 10 * scale + np.array([-2, 2, -1, 1, 0])
    report = compare_statistics(records(counts), records(counts + scale), {"cell": 1})
    assert report.differences()[("cell", "rate")] == pytest.approx(0.1)
    assert report.t_tests()[("cell", "rate")] == pytest.approx((scale, 5.0413), rel=1e-4)
    assert report.passed == passes


def test_white_noise_in_a_subexpression_is_drawn_once_for_both_backends(paired):
    """`noise = sigma*xi_cells*tau**-0.5` read by dv/dt (Brian2's state updater puts it into the equation; elsewhere it
    has no value): by hand, v_(n+1) = v_n - dt v_n/tau + sigma tau^-0.5 sqrt(dt) N_n."""
    model = NeuronModel("dv/dt = -v/tau + noise : 1\nnoise = sigma*xi_cells*tau**-0.5 : second**-1", threshold="v > 3",
                        reset="v = 0", parameters={"sigma": "0.5", "tau": "10*ms"}, method="euler")
    simulation = Simulation(Network((Population("cells", model, 3),)), RunSettings("20*ms", record=("cells.v",)))
    brian_record, torch_record, report = paired(simulation)
    assert report.identical
    v, dt = brian_record.traces["cells.v"], simulation.dt
    draws = np.random.default_rng([simulation.run.noise_seed, 0]).standard_normal((200, 3))
    by_hand = v[:-1] - dt * v[:-1] / 10e-3 + 0.5 * 10e-3 ** -0.5 * np.sqrt(dt) * draws[:-1]
    assert np.abs(v).max() > 0.1
    np.testing.assert_allclose(v[1:], by_hand, rtol=1e-12, atol=1e-15)


def _stratonovich_milstein(x, f, g, dW, dt):
    """Brian2's derivative-free Milstein step (Stratonovich: no -dt in the correction)."""
    support = x + dt * f(x) + np.sqrt(dt) * g(x)
    return x + dt * f(x) + g(x) * dW + (g(support) - g(x)) * dW ** 2 / (2 * np.sqrt(dt))


def _heun(x, f, g, dW, dt):
    """Brian2's stochastic Heun step."""
    return x + dt * f(x) + 0.5 * dW * (g(x) + g(x + g(x) * dW))


@pytest.mark.parametrize("method, by_hand", [("milstein", _stratonovich_milstein), ("heun", _heun)])
def test_multiplicative_white_noise_is_drawn_once_for_both_backends_under_any_method(method, by_hand, paired):
    """Geometric Brownian motion (Brian2's stochastic_odes example): the increments dW = sqrt(dt) N(0, 1) drawn
    by spikebridge, N(0, 1) from default_rng([noise_seed, population index]), integrated by Brian2's own formulas
    in both backends."""
    model = NeuronModel("dX/dt = mu*X + sigma*X*xi : 1", parameters={"mu": "0.5/second", "sigma": "2/second**0.5"},
                        method=method)
    simulation = Simulation(Network((Population("g", model, 3, initial={"X": "1"}),)),
                            RunSettings("20*ms", record=("g.X",)))
    brian_record, torch_record, report = paired(simulation)
    assert report.identical
    X, dt = brian_record.traces["g.X"], simulation.dt
    np.testing.assert_array_equal(torch_record.traces["g.X"], X)
    draws = np.random.default_rng([simulation.run.noise_seed, 0]).standard_normal((200, 3))
    x, expected = np.ones(3), [np.ones(3)]
    for k in range(199):
        x = by_hand(x, lambda x: 0.5 * x, lambda x: 2.0 * x, np.sqrt(dt) * draws[k], dt)
        expected.append(x)
    assert np.abs(X - 1).max() > 0.1  # the noise moves X
    np.testing.assert_allclose(X, expected, rtol=1e-12)


@pytest.mark.slow
def test_brian2_draws_its_own_poisson_inputs_in_the_stochastic_class():
    """Counters that spike at every 4th input (weight 0.25, threshold 1): 100 Hz of PoissonTrains, one train per
    cell, and a PoissonInput of 10 x 10 Hz, 200 input events a second, give 50 Hz. With independent noise Brian2
    draws both itself (PoissonGroup, PoissonInput): its spikes differ from torch's, its rates do not."""
    counter = NeuronModel("dv/dt = 0/ms : 1", threshold="v >= 1", reset="v = 0", method="euler")
    synapse = SynapseModel("w : 1", on_pre="v_post += w")
    network = Network((Population("cells", counter, 200),), (PoissonTrains("drive", 200, "100*Hz"),),
                      projections=(Projection("one_to_one", "drive", "cells", synapse, i=range(200), j=range(200),
                                              values={"w": "0.25"}),),
                      poisson_inputs=(PoissonInput("background", "cells", "v", 10, "10*Hz", "0.25"),))
    brian_records, torch_records, report = independent_noise_run(Simulation(network, RunSettings("300*ms")))
    assert report.passed, report.text()
    for backend in ("brian2", "torch"):
        assert report.statistics["cells"][backend]["rate"] == pytest.approx(50, rel=0.05)
    assert all(b.spike_set("cells") != t.spike_set("cells") for b, t in zip(brian_records, torch_records))
    assert torch_records[0].spike_set("cells") != torch_records[1].spike_set("cells")  # spikebridge's draw anew
