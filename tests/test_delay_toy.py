"""Experiment delay-toy (seed 003's pattern-alignment toy): quick mode recovers the delays, a broken delay
gradient does not, runs are reproducible, and the vectorized pieces agree with each other."""
import json

import numpy as np
import pytest
import torch

from experiments import delay_toy as toy
from torch_models.delays import Delays, shift


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("delay_toy")
    return out, toy.run(out, seed=0, quick=True, progress=False)


def _numbers(results):
    return {k: v for k, v in results.items() if k != "seconds"}


def test_quick_mode_recovers_the_delays(quick):
    out, results = quick
    assert results["recovered_within_1"] >= 0.9
    assert results["initial_within_1"] <= 0.2  # random delays: ~3/39
    assert results["final_loss"] < results["initial_loss"] / 100
    assert results["epochs_run"] == 100 and results["seed_setting"] is None
    assert {p.name for p in out.iterdir()} == {"results.json", "loss.png", "delays.png", "alignment.png", "checkpoints"}
    assert json.loads((out / "results.json").read_text()) == results


def test_same_seed_same_numbers(tmp_path):
    first, second = (toy.run(tmp_path / name, seed=1, quick=True, progress=False, epochs=20) for name in "ab")
    assert _numbers(first) == _numbers(second)


class SignFlippedDelays(Delays):
    """A broken layer: the same forward pass, the delay gradient reversed."""

    def forward(self, x):
        return shift(x, 2 * self.steps.detach() - self.steps, self.max_steps, self.mode)


def test_a_broken_delay_gradient_fails_the_threshold(tmp_path, monkeypatch):
    monkeypatch.setattr(toy, "Delays", SignFlippedDelays)
    assert toy.run(tmp_path, seed=0, quick=True, progress=False)["recovered_within_1"] < 0.5


def test_readout_is_the_landscape_at_the_delays_and_peaks_at_the_truth():
    pattern, offsets, trains = toy.make_problem(np.random.default_rng(3))
    samples = torch.as_tensor(trains)
    landscape = toy.readout_landscape(toy.own_trains(samples), tau=10.0)
    truth = torch.as_tensor(toy.FIXED_DELAY - offsets)
    assert torch.equal(landscape.argmax(0), truth)
    delays = torch.as_tensor(np.random.default_rng(4).integers(0, toy.MAX_DELAY + 1, (toy.N_CLASSES, 2)))
    model = toy.AlignmentReadout(delays.T.flatten(), tau=10.0)
    expected = landscape.gather(0, delays[None])[0].sum(1)
    torch.testing.assert_close(model(samples).diagonal(), expected, rtol=1e-12, atol=1e-9)


def test_recovery_counts_a_delay_that_aligns_as_well_as_the_truth():
    landscape = torch.zeros(toy.MAX_DELAY + 1, 1, 3, dtype=torch.float64)
    landscape[[5, 15], 0, 0] = 2.0  # a periodic pattern: delays 5 and 15 align equally well
    landscape[5, 0, 1:] = 2.0
    landscape[15, 0, 1:] = 1.0
    truth = torch.tensor([[5.0, 5.0, 5.0]])
    within, exact, elsewhere = toy.recovery(torch.tensor([[15.0, 15.0, 6.0]]), truth, landscape)
    assert within.tolist() == [[True, False, True]]
    assert exact.tolist() == [[True, False, False]]
    assert elsewhere.tolist() == [[True, False, False]]


@pytest.mark.parametrize("field, value", [("epochs", 0), ("lr", -0.1), ("tau", 0.0), ("max_move", float("nan")),
                                          ("batch", 2.5), ("margin", float("inf"))])
def test_bad_settings_are_named(field, value, tmp_path):
    with pytest.raises(ValueError, match=rf"^{field}: .*allowed"):
        toy.run(tmp_path, quick=True, progress=False, **{field: value})
