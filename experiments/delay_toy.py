"""Experiment `delay-toy`: seed 003's spike-pattern alignment problem, solved by learning delays with the
library's delay layer (torch_models.delays, mode 'integer': rounded forward, straight-through backward).

Problem (the seed's "delay toy problem", SAME_PATTERN=True): one random pattern of 20 steps (spike
probability 0.3) and 20 classes. A sample of class c has 3 inputs: input 0 carries the pattern after 40 zero
steps, inputs 1 and 2 carry it r(c, i) steps later, r drawn in [0, 20). Every class channel k of a sample
carries the same trains; synapse (input i, class channel k) has its own delay. The readout of channel k is
out_k = sum_t u_0k(t) u_ik(t), summed over inputs i >= 1, with u the delayed trains filtered exponentially
(tau = 10 steps): largest when channel k's delays undo the offsets r(k, i). The seed's "max-sum" loss:
MAX_SUM[c], the running maximum over batches of a class-c sample's largest readout over all channels, is the
target of out_c; loss = mean over the batch of (out_target - MAX_SUM[target])^2; SGD, learning rate 0.2,
500 samples drawn at random per epoch (one batch an epoch). The batch holds copies of the 20 class samples,
so the readouts are computed once per class sample and gathered for the batch (the same numbers and
gradients as computing them per sample).

Causal convention: the seed advanced inputs 1 and 2 (negative delays) with input 0 fixed. Biological delays
are >= 0, so here input 0 has a fixed, not learned, delay D0 = 20 steps and inputs 1 and 2 learned delays in
[0, 40], initialized at random whole steps in [1, 40) as the seed's; the ground truth is D0 - r(c, i). The
trains are the seed's 80 steps plus 40 zero steps, so that no delay in range pushes a spike out of them.

Changes from the seed's setting, which recovers only part of the delays (full mode re-runs it from the same
initial delays as a baseline, up to its 4000 epochs with its stop at loss < 1e-6):
(1) the target is 1.01 x the running maximum (the seed's own commented-out `max_sum = 1.01*max_sum`). With the
plain running maximum the gradient vanishes as soon as each class's readout is the largest seen so far, a
local best: the loss reaches 0 with delays still off the truth.
(2) each delay moves at most 1 step an epoch (the SGD update clipped). The loss scales as the readout
squared, so for dense patterns the updates were tens of steps, throwing delays across the range and onto
its bound, where the far-away pattern gives almost no gradient.
(3) both settings clip the delays into [0, 40] after each update: the seed's clamp passed gradients
straight through, the layer's clamp has gradient 0 outside the range, where a delay would stay stuck.
The straight-through gradient is the forward difference readout(d + 1) - readout(d), so near the peak a
delay may alternate between the truth and one step below it: the acceptance measure is recovery within +-1
step; exact recovery is reported too.

Recovery: a learned delay (in force: whole steps) counts as recovered within +-1 step when it is within 1
step of the truth, and exactly when it equals it; a delay elsewhere also counts (both ways) when its readout
term sum_t u_0c u_ic equals that at the truth (relative 1e-9), i.e. a periodic pattern that truly aligns at
another delay; results.json says how many were counted that way.

Full mode: 1000 epochs of this setting, then the seed's setting. Quick mode: 100 epochs, no baseline.
"""
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import matplotlib
import numpy as np
import torch

from torch_models.delays import Delays, exponential_filter, shift

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from bridge.app import files  # noqa: E402
from experiments import save_figure  # noqa: E402
from bridge.app.checkpoints import Checkpoints  # noqa: E402

PATTERN_STEPS, ZERO_STEPS, SPIKE_PROBABILITY = 20, 20, 0.3
N_CLASSES, N_INPUTS = 20, 3
FIXED_DELAY, MAX_DELAY = 20, 40
MIN_LOSS = 1e-6  # the seed's stop
EQUIVALENT = 1e-9  # relative tolerance of "aligns as well as the truth"
CHECKPOINT_EVERY = 100  # epochs


@dataclass(frozen=True)
class Setting:
    """Training settings; the defaults are this experiment's, SEED_SETTING the seed's."""
    epochs: int = 1000
    lr: float = 0.2
    margin: float = 0.01  # target = (1 + margin) x running maximum
    max_move: float | None = 1.0  # steps a delay may move an epoch; None: no limit
    batch: int = 500
    tau: float = 10.0  # steps

    def __post_init__(self):
        for field in ("epochs", "batch"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field}: {value!r}; allowed: a whole number >= 1")
        for field, positive in (("lr", False), ("margin", False), ("tau", True), ("max_move", True)):
            value = getattr(self, field)
            if field == "max_move" and value is None:
                continue
            if not math.isfinite(value) or value < 0 or (positive and value == 0):
                raise ValueError(f"{field}: {value!r}; allowed: a finite number {'>' if positive else '>='} 0"
                                 f"{' or None (no limit)' if field == 'max_move' else ''}")


SEED_SETTING = Setting(epochs=4000, margin=0.0, max_move=None)


def make_problem(rng):
    """The pattern, offsets r (classes, inputs - 1) and one sample per class: trains (classes, time, channels),
    channel i * N_CLASSES + k = input i seen by class channel k."""
    pattern = (rng.random(PATTERN_STEPS) < SPIKE_PROBABILITY).astype(np.float64)
    if not pattern.any():
        raise ValueError("pattern: no spike drawn; choose another seed")
    offsets = rng.integers(0, PATTERN_STEPS, size=(N_CLASSES, N_INPUTS - 1))
    starts = 2 * ZERO_STEPS + np.concatenate([np.zeros((N_CLASSES, 1), int), offsets], axis=1)
    trains = np.zeros((N_CLASSES, 3 * ZERO_STEPS + PATTERN_STEPS + MAX_DELAY, N_INPUTS))
    at = starts[:, None, :] + np.arange(PATTERN_STEPS)[None, :, None]
    np.put_along_axis(trains, at, np.broadcast_to(pattern[None, :, None], at.shape), axis=1)
    return pattern, offsets, np.repeat(trains, N_CLASSES, axis=2)


def _fixed(like):
    return torch.full((like.shape[-1],), float(FIXED_DELAY), dtype=like.dtype, device=like.device)


class AlignmentReadout(torch.nn.Module):
    """Input 0 delayed by FIXED_DELAY, inputs >= 1 by learned delays (one per input and class channel),
    filtered; forward(trains (batch, time, channels)) -> out (batch, classes)."""

    def __init__(self, initial_steps, tau):
        super().__init__()
        self.delays = Delays(initial_steps, MAX_DELAY, mode="integer")
        self.decay = math.exp(-1 / tau)

    def forward(self, trains):
        first, rest = trains[..., :N_CLASSES], trains[..., N_CLASSES:]
        u_first = exponential_filter(shift(first, _fixed(first), FIXED_DELAY), self.decay)
        u_rest = exponential_filter(self.delays(rest), self.decay).unflatten(-1, (N_INPUTS - 1, N_CLASSES))
        return (u_first[:, :, None, :] * u_rest).sum(dim=(1, 2))

    def in_force(self):
        """Whole-step delays (classes, inputs - 1)."""
        return self.delays.in_force().reshape(N_INPUTS - 1, N_CLASSES).T


def own_trains(trains):
    """Each class's sample as its own channel sees it: (classes, inputs, time)."""
    classes = torch.arange(N_CLASSES, device=trains.device)
    channels = classes[:, None] + N_CLASSES * torch.arange(N_INPUTS, device=trains.device)
    return trains[classes[:, None], :, channels]


def delayed(own, delays):
    """own (classes, inputs, time) with input 0 delayed by FIXED_DELAY and inputs >= 1 by delays
    (classes, inputs - 1): (classes, inputs, time)."""
    steps = torch.cat([torch.full_like(delays[:, :1], FIXED_DELAY), delays], dim=1).to(own.dtype)
    return shift(own.flatten(0, 1).T[None], steps.flatten(), MAX_DELAY)[0].T.unflatten(0, own.shape[:2])


def readout_landscape(own, tau):
    """The readout term sum_t u_0c(t) u_ic(t) of class c's sample with input i delayed by d, for every d in
    [0, MAX_DELAY]: (delays, classes, inputs - 1)."""
    decay = math.exp(-1 / tau)
    rest = own[:, 1:].flatten(0, 1).T  # (time, classes x (inputs - 1))
    steps = torch.arange(MAX_DELAY + 1, dtype=own.dtype, device=own.device).repeat_interleave(rest.shape[1])
    u_rest = exponential_filter(shift(rest.repeat(1, MAX_DELAY + 1)[None], steps, MAX_DELAY), decay)[0]
    first = own[:, 0].T[None]
    u_first = exponential_filter(shift(first, _fixed(first), FIXED_DELAY), decay)[0]
    return (u_first[:, None, :, None] * u_rest.unflatten(-1, (MAX_DELAY + 1, N_CLASSES, N_INPUTS - 1))).sum(0)


def recovery(delays, truth, landscape):
    """Masks (within +-1 step, exact, aligning elsewhere) of whole-step delays (classes, inputs - 1): near the
    truth, or with a readout term equal to the truth's (relative EQUIVALENT) at another delay."""
    term = lambda d: landscape.gather(0, d.long()[None])[0]
    off = (delays - truth).abs()
    aligns = term(delays) >= term(truth) * (1 - EQUIVALENT)
    return (off <= 1) | aligns, (off == 0) | aligns, aligns & (off > 0)


def max_sum_loss(out, target, max_sum, margin):
    """The seed's loss: raise the running MAX_SUM[class] to (1 + margin) x this batch's largest readouts, then
    the mean of (out[target] - MAX_SUM[target])^2. Returns (loss, new max_sum)."""
    best = (1 + margin) * out.detach().amax(1)
    max_sum = torch.maximum(max_sum, torch.full_like(max_sum, -math.inf).scatter_reduce(0, target, best, "amax"))
    return ((out.gather(1, target[:, None])[:, 0] - max_sum[target]) ** 2).mean(), max_sum


def train(model, samples, truth, landscape, setting, rng, progress, name, checkpoints):
    """SGD on the max-sum loss, one random batch an epoch, each move clipped to max_move steps, until
    setting.epochs or the loss is below MIN_LOSS: {loss, within_1, exact} per epoch."""
    steps = model.delays.steps
    max_sum = torch.zeros(N_CLASSES, dtype=samples.dtype, device=samples.device)
    history = {"loss": [], "within_1": [], "exact": []}
    state = {"steps": steps, "max_sum": max_sum, "rng": rng, "history": history}
    for _ in checkpoints.steps(name, setting.epochs, state, desc=f"delay-toy ({name})", disable=not progress):
        target = torch.as_tensor(rng.integers(0, N_CLASSES, setting.batch), device=samples.device)
        loss, new_max_sum = max_sum_loss(model(samples)[target], target, max_sum, setting.margin)
        max_sum.copy_(new_max_sum)
        steps.grad = None
        loss.backward()
        with torch.no_grad():
            move = setting.lr * steps.grad
            steps -= move if setting.max_move is None else move.clamp(-setting.max_move, setting.max_move)
            steps.clamp_(0, MAX_DELAY)
        within, exact, _ = recovery(model.in_force(), truth, landscape)
        for key, value in (("loss", loss.item()), ("within_1", within.double().mean().item()),
                           ("exact", exact.double().mean().item())):
            history[key].append(value)
        if history["loss"][-1] < MIN_LOSS:
            break
    return history


def solve(problem, initial, setting, seed, device, progress, name, checkpoints):
    """Train from `initial` delays: (outcome dict, learned whole-step delays (classes, inputs - 1))."""
    samples, truth, landscape = problem
    model = AlignmentReadout(initial, setting.tau).to(device)
    history = train(model, samples, truth, landscape, setting, np.random.default_rng([seed, 1]), progress, name,
                    checkpoints)
    learned = model.in_force()
    within, exact, elsewhere = recovery(learned, truth, landscape)
    full = np.flatnonzero(np.asarray(history["within_1"]) == 1.0)
    outcome = {"setting": asdict(setting), "recovered_within_1": within.double().mean().item(),
               "recovered_exact": exact.double().mean().item(), "aligning_elsewhere": int(elsewhere.sum()),
               "initial_loss": history["loss"][0], "final_loss": history["loss"][-1],
               "epochs_run": len(history["loss"]),
               "first_epoch_all_within_1": int(full[0]) + 1 if full.size else None,
               "learned_delays": learned.long().tolist(), "history": history}
    return outcome, learned


def run(out="results/delay_toy", seed=0, quick=False, device="cpu", progress=True, resume=False, **setting):
    """The experiment; returns the results dict and writes results.json and PNGs into `out`, and checkpoints of
    training every CHECKPOINT_EVERY epochs into out/checkpoints (`resume` continues from them). Keyword
    arguments override Setting's fields (epochs: 100 quick, 1000 full). Full mode also runs SEED_SETTING."""
    setting = Setting(**{"epochs": 100 if quick else 1000, **setting})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = Checkpoints(out / "checkpoints", {"seed": seed, "quick": quick, "setting": asdict(setting)},
                              resume, CHECKPOINT_EVERY)
    started = time.time()
    rng = np.random.default_rng(seed)
    pattern, offsets, trains = make_problem(rng)
    initial = rng.integers(1, MAX_DELAY, size=(N_INPUTS - 1) * N_CLASSES)
    samples = torch.as_tensor(trains, device=device)
    own = own_trains(samples)
    truth = torch.as_tensor(FIXED_DELAY - offsets, dtype=samples.dtype, device=device)
    problem = (samples, truth, readout_landscape(own, setting.tau))
    initial_force = torch.as_tensor(initial.reshape(N_INPUTS - 1, N_CLASSES).T, dtype=samples.dtype, device=device)
    chance = recovery(initial_force, truth, problem[2])
    main, learned = solve(problem, initial, setting, seed, device, progress, "this setting", checkpoints)
    results = {"experiment": "delay-toy", "seed": seed, "quick": quick,
               "parameters": {"pattern_steps": PATTERN_STEPS, "zero_steps": ZERO_STEPS,
                              "spike_probability": SPIKE_PROBABILITY, "classes": N_CLASSES, "inputs": N_INPUTS,
                              "fixed_delay": FIXED_DELAY, "max_delay": MAX_DELAY, "time_steps": trains.shape[1],
                              "min_loss": MIN_LOSS, "equivalent": EQUIVALENT, "mode": "integer",
                              "dtype": "float64", **asdict(setting)},
               "versions": files.versions(),
               "pattern": pattern.astype(int).tolist(), "offsets": offsets.tolist(),
               "truth": truth.long().tolist(), "initial_delays": initial_force.long().tolist(),
               "initial_within_1": chance[0].double().mean().item(),
               "initial_exact": chance[1].double().mean().item(), **main,
               "seed_setting": None if quick else solve(problem, initial, replace(SEED_SETTING, tau=setting.tau),
                                                        seed, device, progress, "seed's setting", checkpoints)[0]}
    results["seconds"] = round(time.time() - started, 1)
    files.write_json(out / "results.json", results)
    _plot_loss(results, out / "loss.png")
    _plot_delays(results, out / "delays.png")
    _plot_alignment(own, initial_force, learned, out / "alignment.png")
    return results


def summary(results):
    p = results["parameters"]
    lines = [f"delay-toy ({'quick' if results['quick'] else 'full'}, seed {results['seed']}, {p['classes']} classes "
             f"x {p['inputs'] - 1} learned delays in [0, {p['max_delay']}], input 0 fixed at {p['fixed_delay']} "
             f"steps; pattern {''.join(map(str, results['pattern']))})",
             f"  initial (random) delays: {results['initial_within_1']:.1%} within +-1 step, "
             f"{results['initial_exact']:.1%} exact"]
    for name, r in _runs(results):
        s, first = r["setting"], r["first_epoch_all_within_1"]
        move = "unlimited" if s["max_move"] is None else f"{s['max_move']} step(s)/epoch"
        lines.append(f"  {name} (lr {s['lr']}, margin {s['margin']}, max move {move}): "
                     f"{r['recovered_within_1']:.1%} within +-1 step, {r['recovered_exact']:.1%} exact "
                     f"({r['aligning_elsewhere']} aligning elsewhere); loss {r['initial_loss']:.4g} -> "
                     f"{r['final_loss']:.4g} in {r['epochs_run']} epochs; all within +-1 "
                     f"{'never' if first is None else f'from epoch {first}'}")
    lines.append(f"  {results['seconds']} s")
    return "\n".join(lines)


def _runs(results):
    return [(name, r) for name, r in (("this setting", results), ("seed's setting", results["seed_setting"]))
            if r is not None]


def _plot_loss(results, path):
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for k, (name, r) in enumerate(_runs(results)):
        epochs = np.arange(1, r["epochs_run"] + 1)
        top.semilogy(epochs, np.maximum(r["history"]["loss"], 1e-30), color=f"C{k}", label=name)
        bottom.plot(epochs, 100 * np.asarray(r["history"]["within_1"]), color=f"C{k}", label=f"{name}, +-1 step")
        bottom.plot(epochs, 100 * np.asarray(r["history"]["exact"]), color=f"C{k}", ls=":", label=f"{name}, exact")
    top.set_ylabel("max-sum loss")
    top.set_title("max-sum loss, one batch an epoch (with a margin > 0 it stays above 0)")
    top.legend(fontsize=8)
    bottom.set_ylabel("delays recovered (%)")
    bottom.set_xlabel("epoch")
    bottom.set_xscale("log")
    bottom.legend(fontsize=8)
    save_figure(fig, path)


def _plot_delays(results, path):
    runs = _runs(results)
    fig, axes = plt.subplots(1, 1 + len(runs), figsize=(4 * (1 + len(runs)), 4), sharey=True)
    truth = np.asarray(results["truth"])
    panels = [("initial (random)", results["initial_delays"])] + [(name, r["learned_delays"]) for name, r in runs]
    for ax, (title, delays) in zip(axes, panels):
        delays = np.asarray(delays)
        for i in range(delays.shape[1]):
            ax.scatter(truth[:, i] + 0.15 * (i - 0.5), delays[:, i], s=18, alpha=0.7, label=f"input {i + 1}")
        line = np.array([0, FIXED_DELAY + 1])
        ax.plot(line, line, color="k", lw=0.8)
        ax.fill_between(line, line - 1, line + 1, color="k", alpha=0.1, lw=0, label="truth +-1")
        ax.set_title(title)
        ax.set_xlabel("ground-truth delay D0 - r (steps)")
    axes[0].set_ylabel("delay (steps)")
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def _plot_alignment(own, initial, learned, path):
    fig, axes = plt.subplots(1, 2, figsize=(11, 6), sharey=True)
    for ax, (title, delays) in zip(axes, (("before training", initial), ("after training", learned))):
        image = delayed(own, delays).flatten(0, 1).cpu().numpy()
        ax.imshow(image, aspect="auto", interpolation="nearest", cmap="gray_r")
        ax.hlines(np.arange(N_INPUTS, image.shape[0], N_INPUTS) - 0.5, 0, image.shape[1] - 1, color="tab:blue",
                  lw=0.5)
        ax.set_title(f"{title}: delayed inputs 0-{N_INPUTS - 1} of each class")
        ax.set_xlabel("time (steps)")
    axes[0].set_yticks(np.arange(N_INPUTS // 2, N_CLASSES * N_INPUTS, N_INPUTS), [f"class {c}" for c in
                                                                                  range(N_CLASSES)], fontsize=7)
    save_figure(fig, path)
