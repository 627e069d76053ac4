"""Delays that change during a run: emission-time semantics, delay modes and overflow rules, asserted as
step numbers in both backends (dt = 0.1 ms: 1 ms is 10 steps)."""
import dataclasses

import numpy as np
import pytest
import torch

from bridge.delays import DelayRangeError, DelayRule
from bridge.description import (NeuronModel, Network, Population, Projection, RunSettings, Simulation, SpikeTrains,
                                SynapseModel)
from bridge.errors import DescriptionError

# Fires on every arriving input (v jumps to 1.5 > 1), one step after the arrival; `d` is its input delay.
UNIT = NeuronModel("dv/dt = -v/tau : 1\nd : second", threshold="v > 1", reset="v = 0", parameters={"tau": "1*ms"})
INPUT = SynapseModel("w : 1", on_pre="v_post += w")
SHIFT = SynapseModel("shift : second", on_pre="d_post += shift")


def _circuit(input_steps, shifts, mode="dynamic", segments=1, overflow="error", initial_delay="2*ms",
             duration="10*ms", max_delay="5*ms"):
    """`inp` drives the unit through delay d_post; `ctrl` spikes at the given steps change d by the shifts."""
    control_steps = sorted(shifts)
    inp = SpikeTrains("inp", 1, [0] * len(input_steps), [s * 1e-4 for s in input_steps])
    ctrl = SpikeTrains("ctrl", len(shifts), list(range(len(shifts))), [s * 1e-4 for s in control_steps])
    drive = Projection("drive", "inp", "unit", INPUT, i=[0], j=[0], values={"w": [1.5]}, max_delay=max_delay,
                       delay_mode=mode, delay_variable="d_post", delay_overflow=overflow)
    control = Projection("control", "ctrl", "unit", SHIFT, i=list(range(len(shifts))), j=[0] * len(shifts),
                         values={"shift": [shifts[s] for s in control_steps]})
    network = Network((Population("unit", UNIT, 1, initial={"d": initial_delay}),), (inp, ctrl), (),
                      (control, drive))
    return Simulation(network, RunSettings(duration, record=("unit.d",), segments=segments))


def _spike_steps(paired, simulation, target="numpy"):
    brian_record, torch_record, report = paired(simulation, target=target)
    assert report.identical, report.text()
    assert (brian_record.traces["unit.d"] == torch_record.traces["unit.d"]).all()
    return brian_record.spikes["unit"][1].tolist()


@pytest.mark.parametrize("target", ["numpy", pytest.param("cython", marks=pytest.mark.cython)])
def test_spikes_in_flight_keep_the_delay_they_were_emitted_with(paired, target):
    """d = 2 ms; +1 ms at step 12 and -2.5 ms at step 50. Inputs at 10 and 15 arrive at 30 and 45 (the
    change at 12 does not move the spike in flight); the input at 40 (3 ms) is overtaken by the one at 55
    (0.5 ms): arrivals at 60 and 70. The unit fires one step after each arrival."""
    simulation = _circuit([10, 15, 40, 55], {12: 1e-3, 50: -2.5e-3})
    assert _spike_steps(paired, simulation, target) == [31, 46, 61, 71]


def test_between_runs_delays_change_only_at_segment_starts(paired):
    """The same inputs with delays read at the starts of two 5 ms segments (Brian2's own behaviour between
    run() calls): 2 ms in the first segment, 3 ms (the value at step 50) in the second."""
    simulation = _circuit([10, 15, 40, 55], {12: 1e-3, 50: -2.5e-3}, mode="between_runs", segments=2)
    assert _spike_steps(paired, simulation) == [31, 36, 61, 86]


def test_a_synapse_changing_its_own_delay(paired):
    """on_pre `lag += 1*ms` on the synapse's own delay variable: the push of a step comes before that step's
    delivery, so the input at 20 still leaves with 1 ms; the input at 30 leaves with 2 ms."""
    model = SynapseModel("w : 1\nlag : second", on_pre="v_post += w\nlag += 1*ms")
    drive = Projection("drive", "inp", "unit", model, i=[0], j=[0], values={"w": [1.5], "lag": [1e-3]},
                       delay_mode="dynamic", delay_variable="lag")
    inp = SpikeTrains("inp", 1, [0, 0, 0], [1e-3, 2e-3, 3e-3])
    simulation = Simulation(Network((Population("unit", UNIT, 1),), (inp,), (), (drive,)),
                            RunSettings("8*ms", record=("unit.d",)))
    assert _spike_steps(paired, simulation) == [21, 31, 51]


@pytest.mark.parametrize("overflow, spikes", [("clip", [41, 61]), ("wrap", [20, 82]), ("reflect", [51])])
def test_overflow_rules(paired, overflow, spikes):
    """max_delay 5 ms (50 steps, 51 slots). d = 2 ms, then +4 ms at step 5: 6 ms = 60 steps.
    clip: 50 steps; wrap: 60 mod 51 = 9 steps; reflect: 50 - 10 = 40 steps (input at 10). Then -7 ms at
    step 30: -1 ms; clip: 0 steps; wrap: -10 mod 51 = 41 steps; reflect: 10 steps (input at 40). Under
    reflect both inputs arrive at step 50: one spike."""
    simulation = _circuit([10, 40], {5: 4e-3, 30: -7e-3}, overflow=overflow, duration="9*ms")
    assert _spike_steps(paired, simulation) == spikes


def test_reflect_is_a_triangle_wave_in_numpy_and_torch():
    """Delays fold back at both ends of [0, max_steps], one step at a time, identically on both array types."""
    rule = DelayRule("p", 1e-4, 3, overflow="reflect")
    steps = np.arange(-4, 9) * 1e-4
    expected = [2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]
    assert rule.steps(steps).tolist() == expected
    assert rule.steps(torch.tensor(steps)).tolist() == expected


def test_two_spikes_of_one_synapse_arriving_in_one_step_are_both_delivered(paired):
    """Inputs at 10 (2 ms) and 25 (0.5 ms after -1.5 ms at step 20) both arrive at step 30: v gets 2 * 1.5,
    seen by the start-of-step monitor at 31."""
    simulation = _circuit([10, 25], {20: -1.5e-3}, duration="4*ms")
    simulation = Simulation(simulation.network, RunSettings("4*ms", record=("unit.v", "unit.d")))
    brian_record, torch_record, report = paired(simulation)
    assert report.identical
    assert brian_record.traces["unit.v"][31, 0] == 3.0
    assert torch_record.traces["unit.v"][31, 0] == 3.0


def _repeat_counting_simulation():
    """As above, but each arrival first counts itself in the synaptic variable `hits`, then adds w * hits."""
    network = _circuit([10, 25], {20: -1.5e-3}).network
    counting = SynapseModel("w : 1\nhits : 1", on_pre="hits += 1\nv_post += w*hits")
    drive = dataclasses.replace(network.projections[1], synapse=counting, values={"w": [1.5], "hits": [0.0]})
    return Simulation(Network(network.populations, network.sources, (), (network.projections[0], drive)),
                      RunSettings("4*ms", record=("unit.v",)))


@pytest.mark.cython
def test_repeated_arrivals_run_on_pre_twice_in_order(paired):
    """Cython delivers the two arrivals one after the other (v += 1.5*1, then 1.5*2); torch does the same."""
    brian_record, torch_record, report = paired(_repeat_counting_simulation(), target="cython")
    assert report.identical
    assert brian_record.traces["unit.v"][31, 0] == 4.5 and torch_record.traces["unit.v"][31, 0] == 4.5


def test_repeated_arrivals_with_synaptic_writes_are_refused_on_numpy():
    from brian_models.network import run as run_brian
    with pytest.raises(DescriptionError, match=r"'drive'.synapse.on_pre: two spikes of one synapse arrive in the "
                                               r"same step and on_pre writes the synaptic variables \['hits'\]"):
        run_brian(_repeat_counting_simulation(), target="numpy")


def test_delay_beyond_max_is_an_error_in_both_backends():
    from brian_models.network import run as run_brian
    from torch_models import run as run_torch
    simulation = _circuit([10, 40], {5: 4e-3})
    for run in (run_brian, run_torch):
        with pytest.raises(DelayRangeError, match=r"'drive'.delay_variable: delay 6 ms is outside \[0, 5 ms\]"):
            run(simulation)


def test_unsupported_combinations_are_refused():
    from brian_models.network import run as run_brian
    with pytest.raises(DescriptionError, match=r"'drive'.delay_mode: 'dynamic' delays .* target 'numpy' or "
                                               r"'cython', or declare 'between_runs'"):
        run_brian(_circuit([10], {12: 1e-3}), target="cpp_standalone")
    with pytest.raises(DelayRangeError, match=r"delay_variable: delay 7 ms is outside \[0, 5 ms\]"):
        _circuit([10], {12: 1e-3}, initial_delay="7*ms")
    with pytest.raises(DescriptionError, match=r"delay_mode 'dynamic' needs the name of the variable"):
        Projection("p", "inp", "unit", INPUT, i=[0], j=[0], values={"w": [1.0]}, delay_mode="dynamic")
    with pytest.raises(DescriptionError, match=r"delay_mode: 'sometimes'; allowed"):
        Projection("p", "inp", "unit", INPUT, i=[0], j=[0], values={"w": [1.0]}, delay_mode="sometimes")
    with pytest.raises(DescriptionError, match=r"delay_overflow: 'bounce'; allowed"):
        Projection("p", "inp", "unit", INPUT, i=[0], j=[0], values={"w": [1.0]}, delay_overflow="bounce")
    with pytest.raises(DescriptionError, match=r"'v_post' has units 1; a delay variable needs second"):
        _replace_drive(delay_variable="v_post")
    with pytest.raises(DescriptionError, match=r"unknown variable 'q_post'"):
        _replace_drive(delay_variable="q_post")
    with pytest.raises(DescriptionError, match=r"segments: 3 segments do not divide the run's 100 steps"):
        RunSettings("10*ms", segments=3)


def _replace_drive(**changes):
    network = _circuit([10], {12: 1e-3}).network
    drive = dataclasses.replace(network.projections[1], **changes)
    return Network(network.populations, network.sources, (), (network.projections[0], drive))


@pytest.mark.cython
def test_compiled_queue_delivers_as_the_numpy_queue():
    """Both queues fed the same pushes while delays keep changing (some past max_delay, wrapped): the same
    synapses due, in the same order, at every step."""
    from brian_models.dynamic_delays import CompiledEmissionTimeQueue, EmissionTimeQueue
    rng = np.random.default_rng(0)
    sources, delays = rng.integers(0, 50, 2000), rng.uniform(0, 3e-3, 2000)
    rule = DelayRule("p", 1e-4, 20, overflow="wrap")
    queues = [kind(50, lambda synapses: delays[synapses], rule) for kind in (EmissionTimeQueue, CompiledEmissionTimeQueue)]
    for queue in queues:
        queue.prepare(None, 1e-4, sources)
    delivered = 0
    for _ in range(200):
        spikes = np.flatnonzero(rng.random(50) < 0.2).astype(np.int32)
        delays[rng.integers(0, 2000, 50)] = rng.uniform(0, 3e-3, 50)
        for queue in queues:
            if len(spikes):
                queue.push(spikes)
        due, compiled_due = (queue.peek().tolist() for queue in queues)
        assert due == compiled_due
        delivered += len(due)
        for queue in queues:
            queue.advance()
    assert delivered > 10000
