"""Seed 003's inhibitory delay-adjustment circuit: identical spikes and delay trajectories in both backends
(float64, same dt), for the seed's default and random configurations; the circuit's outcome measures."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import delay_circuit as circuit
from bridge.delay_circuit import CircuitParameters


def _same_delay_trajectories(brian_record, torch_record):
    return np.array_equal(brian_record.traces["neurons.d"], torch_record.traces["neurons.d"])


def test_seed_pattern_and_aligning_delay():
    """The seed's pattern (np.random.seed(0), choice p=0.5) and the delays that align it."""
    params = CircuitParameters()
    assert params.pattern().tolist() == [1, 2, 3, 4, 6, 8, 9]
    assert circuit.aligning_delays(params).tolist() == [1.0]
    assert circuit.aligning_delays(CircuitParameters(offset=12.0)).tolist() == [0.0]  # 13 ms wraps to 0


@pytest.mark.parametrize("rule", ["seed", "yield_by_index"])
def test_seed_default_circuit_is_identical_and_keeps_the_aligned_neuron(paired, rule):
    """The seed's setting: neuron 1 starts aligned (1 ms), neuron 0 at 0 ms. Both backends give the same
    spikes and delay trajectories; the circuit keeps firing with the aligned delay."""
    params = CircuitParameters(rule=rule)
    record, torch_record, report = paired(circuit.simulation(params))
    assert report.identical, report.text()
    assert _same_delay_trajectories(record, torch_record)
    neurons, steps = record.spikes["neurons"]
    result = circuit.outcome(neurons, steps, record.traces["neurons.d"], params)
    assert record.count("neurons") >= 30
    assert result["learned_delay_ms"] == 1.0 and result["success"]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_neurons=st.integers(2, 4), offset=st.integers(0, 12), pattern_seed=st.integers(0, 2**31 - 1),
       rule=st.sampled_from(sorted(circuit.RULES)), threshold=st.floats(2.0, 8.0))
def test_random_circuits_are_identical_in_both_backends(paired, n_neurons, offset, pattern_seed, rule, threshold):
    params = CircuitParameters(n_neurons=n_neurons, offset=float(offset), pattern_seed=pattern_seed, rule=rule,
                               threshold=threshold, repetitions=12)
    brian_record, torch_record, report = paired(circuit.simulation(params))
    assert report.identical, report.text()
    assert _same_delay_trajectories(brian_record, torch_record)


def test_outcome_of_a_known_trajectory():
    """Hand-made record: neuron 1 wins with 4 ms late in the run (aligning delay 4 ms); neuron 0 circles."""
    params = CircuitParameters(offset=3.0, repetitions=1)
    n_steps = 100
    d = np.zeros((n_steps, 2))
    d[:, 1] = 4e-3
    d[:, 0] = np.repeat(np.arange(10) * 1e-3, 10)
    steps = np.array([5, 30, 50, 85, 95])
    neurons = np.array([0, 1, 1, 1, 1])
    result = circuit.outcome(neurons, steps, d, params)
    assert result["learned_delay_ms"] == 4.0 and result["error_ms"] == 0.0 and result["success"]
    assert result["settle_time_ms"] == pytest.approx(3.0)  # from the spike at step 30 on
    assert result["final_delays_ms"] == [9.0, 4.0]
    away = circuit.outcome(neurons, steps, d + 3e-3, params)  # learned 7 ms: 3 ms from the aligning 4 ms
    assert away["learned_delay_ms"] == 7.0 and away["error_ms"] == pytest.approx(3.0) and not away["success"]


def test_experiment_quick_mode(tmp_path):
    from experiments import delay_circuit
    results = delay_circuit.run(out=tmp_path, quick=True, progress=False)
    for rule, demo in results["demo"].items():
        assert demo["identical_spikes"] and demo["identical_delay_trajectories"], rule
    for rule, sweep in results["sweep"].items():
        assert sweep["brian2_identical_delay_trajectories"] == "1/1", rule
        assert len(sweep["trials"]) == 4
    assert {p.name for p in tmp_path.iterdir()} >= {"results.json", "delay_trajectories.png", "sweep.png",
                                                    "v_and_thresholds.png", "rasters.png"}
