"""The timing conventions (bridge.description.Timing, README), asserted as step numbers in both backends (and the
layered torch module)."""
import numpy as np
import pytest
import torch

from bridge.description import (NeuronModel, Network, Population, Projection, RunSettings, Simulation, SpikeTrains,
                                SynapseModel, Timing)
from torch_models.layered import LayeredNetwork

# A non-leaky unit that fires when one input of weight 1.5 arrives; refractory 1 ms; v held while refractory.
UNIT = NeuronModel("dv/dt = -v/tau : 1 (unless refractory)", threshold="v > 1", reset="v = 0",
                   refractory="1*ms", parameters={"tau": "1*second"})


def _run_both(paired, times, weights, delays, duration="8*ms", timing=Timing()):
    source = SpikeTrains("inp", len(times), indices=list(range(len(times))), times=times)
    proj = Projection("p", "inp", "unit", SynapseModel("w : 1", on_pre="v_post += w"), i=list(range(len(times))),
                      j=[0] * len(times), values={"w": weights}, delays=delays)
    simulation = Simulation(Network((Population("unit", UNIT, 1),), (source,), (), (proj,)),
                            RunSettings(duration, record=("unit.v",), timing=timing))
    brian_record, torch_record, report = paired(simulation)
    assert report.identical
    with torch.no_grad():  # the layered module (time batched) keeps the same conventions
        layered = LayeredNetwork(simulation, dtype="float64")(batch_size=1)
    assert torch.equal(layered.spikes["unit"][0].nonzero()[:, 0], torch.as_tensor(brian_record.spikes["unit"][1]))
    assert np.array_equal(layered.traces["unit.v"][0, :, 0].numpy(), torch_record.traces["unit.v"][:, 0])
    return list(brian_record.spikes["unit"][1]), brian_record.traces["unit.v"][:, 0], torch_record


@pytest.mark.parametrize("delay, spike_step", [(0.0, 11), (0.3e-3, 14), (0.25e-3, 14), (0.15e-3, 12)])
def test_input_at_step_n_with_delay_k_fires_target_at_n_plus_k_plus_1(paired, delay, spike_step):
    """Delivery in the synapses slot of step n+k; the target integrates it at n+k+1 and spikes then.
    0.25 ms is 2.5 steps -> 3 (half up); 0.15 ms is 1.4999.. steps -> 1, as in Brian2."""
    steps, _, _ = _run_both(paired, [1.0e-3], [1.5], [delay])
    assert steps == [spike_step]


def test_spike_times_floor_with_epsilon(paired):
    """SpikeGeneratorGroup's rule: 1.05 ms is step 10 and 1.0999 ms too (int((t + 1e-3*dt)/dt))."""
    steps, _, _ = _run_both(paired, [1.05e-3], [1.5], [0.0])
    assert steps == [11]


def test_refractory_drops_synaptic_writes_and_holds_v(paired):
    """Spike at 11 (input at 10); input at 15 falls in the 1 ms refractory period and is dropped;
    input at 25 (after it) is seen by the start-of-step monitor at 26, then decays."""
    steps, v, torch_record = _run_both(paired, [1.0e-3, 1.5e-3, 2.5e-3], [1.5, 0.6, 0.6], [0.0, 0.0, 0.0])
    assert steps == [11]
    assert v[12:26] == pytest.approx(np.zeros(14), abs=0)
    assert v[26] == 0.6 and v[27] == pytest.approx(0.6 * np.exp(-1e-4), rel=1e-12)
    assert torch_record.traces["unit.v"][27, 0] == pytest.approx(v[27], rel=1e-12)


def test_refractory_period_sets_the_shortest_interval(paired):
    """Synaptic input every step: refractoriness ends at the state update of step n + 10, but that step's
    input is delivered after its threshold, so the unit fires every 11 steps."""
    times = [k * 1e-4 for k in range(10, 60)]
    steps, _, _ = _run_both(paired, times, [1.5] * len(times), [0.0] * len(times))
    assert steps == [11, 22, 33, 44, 55]


def test_on_pre_runs_before_on_post_in_the_same_step(paired):
    """Both neurons spike at step 10 (1 ms); the synapse starts with c = 1. Brian2 runs the on_pre pathway first:
    c = 2, I += 2, then on_post: c = 6, I += 60 -> I = 62 from step 11 on (post first: c = 3, I += 30, then c = 4,
    I += 4 -> 34)."""
    both = NeuronModel("I : 1", threshold="t >= 1*ms and t < 1.05*ms")
    synapse = SynapseModel("c : 1", on_pre="c += 1\nI_post += c", on_post="c = 3*c\nI_post += 10*c")
    network = Network((Population("pre", both, 1), Population("post", both, 1)), (), (),
                      (Projection("s", "pre", "post", synapse, i=[0], j=[0], values={"c": [1.0]}),))
    brian_record, torch_record, report = paired(Simulation(network, RunSettings("2*ms", record=("post.I",))))
    assert report.identical
    for record in (brian_record, torch_record):
        assert list(record.spikes["post"][1]) == [10]
        assert list(record.traces["post.I"][9:13, 0]) == [0, 0, 62, 62]


@pytest.mark.parametrize("code", ["I_post += w", "I_post += w\nc += 1"])  # the per-row and the general delivery
def test_events_arriving_in_one_step_are_added_in_the_order_they_were_emitted(paired, code):
    """Brian2's spike queue delivers a step's events in the order they were pushed: the earliest emitted (the
    longest delay) first, then by source neuron and synapse. Synapse 2 (emitted at step 0, delay 2 steps) adds 1,
    synapse 1 (step 1, delay 1) 1, synapse 0 (step 2, delay 0) 1e16, all arriving at step 2: 1 + 1 + 1e16 is
    1e16 + 2 exactly; in synapse order 1e16 + 1 rounds to 1e16 (ties to even), and so does + 1 again."""
    source = SpikeTrains("inp", 3, indices=[0, 1, 2], times=[0.0, 1e-4, 2e-4])
    proj = Projection("p", "inp", "post", SynapseModel("w : 1\nc : 1", on_pre=code), i=[2, 1, 0], j=[0, 0, 0],
                      values={"w": [1e16, 1.0, 1.0], "c": [0.0] * 3}, delays=[0.0, 1e-4, 2e-4])
    network = Network((Population("post", NeuronModel("I : 1"), 1),), (source,), (), (proj,))
    brian_record, torch_record, report = paired(Simulation(network, RunSettings("0.5*ms", record=("post.I",))))
    assert report.identical
    for record in (brian_record, torch_record):
        assert list(record.traces["post.I"][:5, 0]) == [0, 0, 0, 1e16 + 2, 1e16 + 2]
