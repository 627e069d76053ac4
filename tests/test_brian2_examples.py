"""Models written from Brian2's examples (tests/brian2_examples, shortened): each imported from its script by
one call and cross-checked (identical spikes, traces within 1e-9 relative, float64), and each pinned by a
number computed here independently of both backends."""
from pathlib import Path

import numpy as np
import pytest
from scipy.special import exprel

from bridge.brian2_scripts import from_brian2
from bridge.compare import TRACE_RTOL

EXAMPLES = Path(__file__).parent / "brian2_examples"


def _crosscheck(paired, name, min_spikes):
    simulation = from_brian2(EXAMPLES / f"{name}.py")
    brian_record, torch_record, report = paired(simulation)
    assert report.identical and report.passed, report.text()
    assert sum(map(brian_record.count, brian_record.spikes)) >= min_spikes
    for key, trace in brian_record.traces.items():
        assert np.abs(trace - torch_record.traces[key]).max() <= TRACE_RTOL * np.abs(trace).max(), key
    return simulation, brian_record, torch_record


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
