"""Training checkpoints: an interrupted loop resumed from its last checkpoint ends with the same numbers (float64,
bit for bit) as an uninterrupted one, and a training experiment interrupted on the command line (exit 130) and
run again with --resume writes the uninterrupted run's results."""
import json

import numpy as np
import pytest
import torch

from bridge.app import cli
from bridge.errors import DescriptionError
from experiments import delay_toy
from bridge.app.checkpoints import Checkpoints

TOTAL = 9


def fit(folder, resume=False, interrupt_at=None, identity=None):
    """A small float64 regression with every kind of state: Adam's moments, a cosine schedule, a numpy
    generator drawing the data, torch's generator drawing noise, a running tensor and the loss record.
    Returns (steps run here, final weights, losses, running sum)."""
    rng = np.random.default_rng(3)
    torch.manual_seed(3)
    model = torch.nn.Linear(4, 2).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, TOTAL)
    losses, running, ran = [], torch.zeros(2, dtype=torch.float64), []
    state = {"model": model, "optimizer": optimizer, "schedule": schedule, "rng": rng, "losses": losses,
             "running": running}
    checkpoints = Checkpoints(folder, identity or {"seed": 3}, resume, every=2)
    for step in checkpoints.steps("fit", TOTAL, state, disable=True):
        if step == interrupt_at:
            raise KeyboardInterrupt
        ran.append(step)
        x = torch.as_tensor(rng.normal(size=(8, 4)))
        loss = ((model(x) - torch.randn(8, 2, dtype=torch.float64)) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        running += model.weight.detach().sum(1)
        losses.append(loss.item())
    return ran, model.weight.detach().clone(), losses, running


def test_resumed_loop_ends_as_the_uninterrupted_one(tmp_path):
    _, weight, losses, running = fit(tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "broken", interrupt_at=5)
    ran, resumed_weight, resumed_losses, resumed_running = fit(tmp_path / "broken", resume=True)
    assert ran == [4, 5, 6, 7, 8]  # from the checkpoint after step 4 (every 2), not from the start
    assert resumed_losses == losses and len(losses) == TOTAL
    assert torch.equal(resumed_weight, weight) and torch.equal(resumed_running, running)
    assert fit(tmp_path / "broken", resume=True)[0] == []  # finished: nothing left to run


def test_a_fresh_run_ignores_and_removes_earlier_checkpoints(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path, interrupt_at=5)
    assert (tmp_path / "fit.pt").exists()
    assert fit(tmp_path)[0] == list(range(TOTAL))


def test_resume_refuses_another_runs_checkpoint(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path, interrupt_at=5)
    with pytest.raises(DescriptionError, match=r"fit\.pt: a checkpoint of another run.*'seed': 3.*'seed': 4"):
        fit(tmp_path, resume=True, identity={"seed": 4})


def test_training_experiment_interrupted_then_resumed_on_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(delay_toy, "CHECKPOINT_EVERY", 20)
    loss = delay_toy.max_sum_loss
    calls = []

    def counted(*args, interrupt_at=None):
        calls.append(1)
        if len(calls) == interrupt_at:
            raise KeyboardInterrupt
        return loss(*args)

    command = ["run", "delay-toy", "--quick", "--seed", "2"]
    monkeypatch.setattr(delay_toy, "max_sum_loss", counted)
    assert cli.main(command + ["--out", str(tmp_path / "straight")]) == 0
    monkeypatch.setattr(delay_toy, "max_sum_loss", lambda *args: counted(*args, interrupt_at=57))
    calls.clear()
    assert cli.main(command + ["--out", str(tmp_path / "broken")]) == 130
    assert "--resume` continues from the training checkpoints" in capsys.readouterr().err
    assert not (tmp_path / "broken" / "results.json").exists()
    monkeypatch.setattr(delay_toy, "max_sum_loss", counted)
    calls.clear()
    assert cli.main(command + ["--out", str(tmp_path / "broken"), "--resume"]) == 0
    assert len(calls) == 100 - 40  # epochs 41..100: resumed from the checkpoint after epoch 40
    straight, resumed = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("straight", "broken"))
    assert straight.pop("seconds") and resumed.pop("seconds")
    assert resumed == straight and straight["epochs_run"] == 100
