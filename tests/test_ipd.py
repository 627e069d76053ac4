"""IPD stimuli (experiments/ipd.py): input validation, seeded draws, the ideal observer; experiment `ipd-delays`:
the coincidence readout and the quick mode's numbers."""
import math

import numpy as np
import pytest
import torch

from experiments.ipd import IPDTask, ideal_observer
from experiments import ipd_delays


def seed_task(**changes):
    return IPDTask(**{**dict(n_classes=36, frequency=50.0, duration=0.05, fibres=1, envelope_power=10.0,
                             discrete=True), **changes})


@pytest.mark.parametrize("field, value", [("n_classes", 0), ("fibres", 1.5), ("frequency", -20.0),
                                          ("duration", float("nan")), ("dt", 0.0), ("envelope_power", np.inf),
                                          ("rate_max", 2000.0)])
def test_task_rejects_bad_fields_naming_them(field, value):
    with pytest.raises(ValueError, match=f"IPDTask.{field}"):
        IPDTask(**{field: value})


def test_draws_are_seeded_and_streams_independent():
    task = seed_task()
    first, again, other = (task.draw(64, np.random.default_rng(key)) for key in ([0, 0, 0], [0, 0, 0], [0, 0, 1]))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0]) and not np.array_equal(first[1], other[1])
    assert set(np.unique(first[1])) <= set(task.midpoints())  # discrete: one IPD per class


def test_ideal_observer_beats_chance_widely_in_the_seed_setting():
    task = seed_task()
    spikes, _, labels = task.draw(1000, np.random.default_rng(7))
    assert np.mean(ideal_observer(task, spikes, n_phases=90) == labels) >= 4 / task.n_classes


def test_ideal_observer_is_near_perfect_with_many_fibres():
    task = seed_task(n_classes=12, fibres=50)
    spikes, _, labels = task.draw(200, np.random.default_rng(8))
    assert np.mean(ideal_observer(task, spikes, n_phases=90) == labels) >= 0.97


def test_ideal_observer_validates_its_inputs():
    with pytest.raises(ValueError, match="discrete"):
        ideal_observer(IPDTask(), np.zeros((1, 100, 200), bool))
    with pytest.raises(ValueError, match="n_phases"):
        ideal_observer(seed_task(), np.zeros((1, 50, 2), bool), n_phases=0)
    with pytest.raises(ValueError, match="spikes"):
        ideal_observer(seed_task(), np.zeros((1, 49, 2), bool))


def test_readout_adds_a_to_the_lag_per_spike_pair():
    """Ear 0 at step 45 (+ reference 10), ear 1 at step 49 delayed by d: r_c = a^|55 - 49 - d_c|, the
    trace's tail after the window included."""
    spikes = torch.zeros(1, 50, 2)
    spikes[0, 45, 0] = spikes[0, 49, 1] = 1
    delays = [6.0, 4.0, 9.0]
    readout = ipd_delays.CoincidenceReadout(delays, 20, "integer")(spikes, tau=3.0)[0]
    a = math.exp(-1 / 3)
    np.testing.assert_allclose(readout.detach().numpy(), [a ** abs(6 - d) for d in delays], rtol=1e-5)


def test_quick_mode_learns_the_aligning_delays(tmp_path):
    results = ipd_delays.run(tmp_path, quick=True, progress=False)
    setting = results["settings"]["50Hz"]
    learned = setting["runs"][0]
    assert learned["mode"] == "fractional" and learned["loss"] == "cross-entropy"
    assert learned["accuracy"] >= 3 * results["chance"]
    assert learned["mae_bin_midpoints"] < 20
    assert learned["fraction_within_1_step"] >= 0.75
    assert setting["ideal_observer"]["accuracy"] >= 4 * results["chance"]
    assert {p.name for p in tmp_path.iterdir()} == {"results.json", "loss.png", "delays.png", "confusion.png",
                                                    "errors.png", "checkpoints"}
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["50Hz_fractional_cross-entropy.pt"]
