"""`spikebridge fit FIT.json --out DIR [--resume]` (and `run(path, out, resume)`): what a model names learns by
gradient until the model reproduces a target; the fitted model is then run in Brian2 to validate it.

FIT.json (paths relative to it; quantities as strings such as "10*ms"):
  model       a description (.json) or a Brian2 script (.py, imported as written)
  learn       {"owner.name": "shared" | "per_element" | {"shared": bool, "low": q, "high": q}} (bridge/learn.py)
  starts      optional {"owner.name": [a value per start]}: the starts learn at once, as one batch; each ends
              at the values of its lowest loss seen, and the best start is the fitted model
  target      {"values": {"owner.name": q or SI values}}: Brian2 runs the model with these values and its run
              is the target; or {"file": "target.npz"}: traces by record key ((steps, elements), SI) and spikes
              by population ((spikes, 2) rows of neuron, time in s)
  loss        optional {"traces": {key: weight}, "spikes": {population: weight}, "van_rossum_tau": q,
              "spike_gradient": "timing" | "existence"}: default every trace of the target and the spikes of its
              populations with a threshold, weight 1, tau 10 ms, timing.
              A trace's term is its mean squared difference divided by the target's variance; a spike train's,
              the squared van Rossum distance (continuous time, the kernels' tails counted whole) summed over
              neurons divided by the target's spike count (at least 1); its gradient moves each spike's time
              with its threshold crossing (torch_models.surrogate.crossing_times), not whether it happens;
              "spike_gradient": "existence" gives instead the gradient of whether each step spikes (the
              spikes' surrogate: it can add and remove spikes, and points away from the truth in some models)
  optimizer   optional {"lr": 0.02, "steps": 200, "schedule": "cosine" | "constant", "recompute_every": k,
              "spike_gradient": ...} (Adam; recompute_every: the backward pass recomputes stretches of k steps instead
              of keeping every step's tensors, for runs whose backward pass would not fit in memory otherwise;
              spike_gradient: this stage's, default loss.spike_gradient); or a list of them, stages run one after
              another, each from the best values seen so far with a fresh Adam and schedule (coarse to fine:
              "existence" adds and removes spikes, then "timing" moves them)
  stop        optional {"loss_below": number}: ends when the best start's loss falls below it
  seed        optional, 0; checkpoint_every optional, 20 (steps)

Writes to DIR: fitted.json (the description with the learned values), fitted_brian2.py (its plain Brian2 script),
results.json (learned values, loss curve, the Brian2 validation: identical spikes, the loss computed on Brian2's
run against torch's, and where the target came from given values, their relative errors; the Gamma factor of
each spike train), loss.png (the loss curves) and fit.png (the target against the fitted model's Brian2 run),
checkpoints/ (--resume continues from them to the same numbers).
"""
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bridge import library
from bridge.app import files
from bridge.app.checkpoints import Checkpoints
from bridge.app.fit_losses import SPIKE_GRADIENTS, population_gamma_factor, record_loss, run_losses
from bridge.description import spike_step
from bridge.errors import DescriptionError
from bridge.names import record_key
from bridge.learn import learnable_form, learned, start_values, written_back
from bridge.quantities import si_value, time_value, unit_text

FIELDS = ("model", "learn", "starts", "target", "loss", "optimizer", "stop", "seed", "checkpoint_every")
SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class Fit:
    """A FIT file read and checked."""
    path: Path
    text: dict             # the file's JSON, the checkpoints' identity
    simulation: object
    learn: dict
    starts: dict           # key -> (starts, elements) SI values (bridge/learn.start_values), or None
    target: object         # Target
    traces: dict           # record key -> weight
    spikes: dict           # population -> weight
    van_rossum_tau: float
    stages: tuple          # Stage, run one after another
    loss_below: float
    seed: int
    checkpoint_every: int


@dataclass(frozen=True)
class Stage:
    """One stage of a fit: Adam's learning rate and steps, its schedule, the backward pass's recomputed stretches
    (steps, or None) and the spike gradient."""
    lr: float
    steps: int
    schedule: str
    recompute_every: object
    spike_gradient: str


@dataclass(frozen=True)
class Target:
    traces: dict           # record key -> (rows, elements) SI
    spikes: dict           # population -> (neurons, steps)
    values: dict           # key -> SI values, where the target came from given values


def read(path):
    """The Fit of a FIT file; a bad field is a DescriptionError naming the file and the field."""
    path = Path(path)
    try:
        text = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DescriptionError(str(path), f"cannot read a fit file: {err}") from None
    try:
        return _read(path, text)
    except DescriptionError as err:
        raise DescriptionError(str(path), str(err)) from None


def _read(path, text):
    if not isinstance(text, dict) or set(text) - set(FIELDS) or not {"model", "learn", "target"} <= set(text):
        raise DescriptionError("fields", f"{sorted(text) if isinstance(text, dict) else text!r}; give model, learn, "
                                         f"target and optionally {', '.join(FIELDS[3:])}")
    simulation = _model(path.parent / str(text["model"]))
    items = learned(simulation, text["learn"])
    stop, loss = (_mapping(text, name, keys) for name, keys in (
        ("stop", {"loss_below"}), ("loss", {"traces", "spikes", "van_rossum_tau", "spike_gradient"})))
    target = _target(path.parent, text["target"], simulation, items)
    traces = _weights(loss.get("traces", dict.fromkeys(target.traces, 1.0)), target.traces, "loss.traces")
    thresholds = {p.name for p in simulation.network.populations if p.model.threshold}
    spikes = _weights(loss.get("spikes", dict.fromkeys(set(target.spikes) & thresholds, 1.0)), target.spikes,
                      "loss.spikes")
    if not traces and not spikes:
        raise DescriptionError("loss", "nothing to compare: give traces or spikes of the target")
    spike_gradient = _choice(loss.get("spike_gradient", "timing"), SPIKE_GRADIENTS, "loss.spike_gradient")
    optimizer = text.get("optimizer", {})
    stages = [("optimizer", optimizer)] if isinstance(optimizer, dict) else \
        [(f"optimizer[{k}]", stage) for k, stage in enumerate(optimizer)] if isinstance(optimizer, list) else []
    if not stages:
        raise DescriptionError("optimizer", f"{optimizer!r}; give a mapping or a non-empty list of mappings")
    return Fit(path, text, simulation, text["learn"], start_values(items, text.get("starts")), target, traces, spikes,
               time_value(loss.get("van_rossum_tau", "10*ms"), "loss.van_rossum_tau", positive=True),
               tuple(_stage(where, stage, spike_gradient) for where, stage in stages),
               _number(stop.get("loss_below", 0.0), "stop.loss_below"), _count(text.get("seed", 0), "seed", least=0),
               _count(text.get("checkpoint_every", 20), "checkpoint_every"))


def _stage(where, stage, spike_gradient):
    stage = _mapping({where: stage}, where, {"lr", "steps", "schedule", "recompute_every", "spike_gradient"})
    return Stage(_number(stage.get("lr", 0.02), f"{where}.lr", positive=True),
                 _count(stage.get("steps", 200), f"{where}.steps"),
                 _choice(stage.get("schedule", "cosine"), SCHEDULES, f"{where}.schedule"),
                 _count(stage["recompute_every"], f"{where}.recompute_every") if "recompute_every" in stage else None,
                 _choice(stage.get("spike_gradient", spike_gradient), SPIKE_GRADIENTS, f"{where}.spike_gradient"))


def _choice(value, allowed, where):
    if value not in allowed:
        raise DescriptionError(where, f"{value!r}; allowed: {allowed}")
    return value


def _model(path):
    if not path.exists():
        raise DescriptionError("model", f"no file {str(path)!r}")
    if path.suffix == ".py":
        from bridge.app.brian2_scripts import from_brian2
        return from_brian2(path)
    return library.simulation(str(path))


def _mapping(text, name, keys):
    value = text.get(name, {})
    if not isinstance(value, dict) or set(value) - keys:
        raise DescriptionError(name, f"{value!r}; give a mapping with keys among {sorted(keys)}")
    return value


def _number(value, where, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or \
            (positive and value <= 0):
        raise DescriptionError(where, f"{value!r}; give a finite number{' > 0' if positive else ''}")
    return float(value)


def _count(value, where, least=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise DescriptionError(where, f"{value!r}; give an integer >= {least}")
    return value


def _weights(weights, available, where):
    if not isinstance(weights, dict) or set(weights) - set(available):
        raise DescriptionError(where, f"{weights!r}; the target has {sorted(available)}")
    return {key: _number(weight, f"{where}[{key!r}]", positive=True) for key, weight in weights.items()}


def _target(folder, target, simulation, items):
    if not isinstance(target, dict) or len(target) != 1 or not {"values", "file"} & set(target):
        raise DescriptionError("target", f"{target!r}; give {{'values': {{...}}}} or {{'file': 'target.npz'}}")
    if "file" in target:
        return _target_file(folder / str(target["file"]), simulation)
    values = target["values"]
    by_key = {item.key: item for item in items}
    if not isinstance(values, dict) or not values or set(values) - set(by_key):
        raise DescriptionError("target.values", f"{values!r}; give values of what learns: {sorted(by_key)}")
    true = {key: si_values(value, by_key[key], f"target.values[{key!r}]") for key, value in values.items()}
    from brian_models.network import run as run_brian
    record = run_brian(written_back(learnable_form(simulation, items), items, true))
    return Target(record.traces, record.spikes, true)


def si_values(value, item, where):
    """SI values of a Learned item from a quantity string (every element) or SI numbers (one per element)."""
    values = np.full(len(item.start), si_value(value, where)) if isinstance(value, str) else \
        np.asarray(value, dtype=float).reshape(-1)
    if len(values) != len(item.start):
        raise DescriptionError(where, f"{len(values)} values; give a quantity or {len(item.start)} SI values")
    return values


def _target_file(path, simulation):
    try:
        arrays = dict(np.load(path))
    except (OSError, ValueError) as err:
        raise DescriptionError("target.file", f"cannot read {str(path)!r}: {err}") from None
    run, network = simulation.run, simulation.network
    traces, spikes = {}, {}
    for key, array in arrays.items():
        if key in {p.name for p in network.populations}:
            if array.ndim != 2 or array.shape[1] != 2:
                raise DescriptionError(f"target.file[{key!r}]", f"shape {array.shape}; give (spikes, 2) rows of "
                                                                "neuron, time in s")
            spikes[key] = (array[:, 0].astype(np.int64), spike_step(array[:, 1], simulation.dt))
        else:
            try:
                recording = run.recording(key, network.width(record_key(key)[0]))
            except DescriptionError as err:
                raise DescriptionError(f"target.file[{key!r}]", str(err)) from None
            expected = (recording.rows(run.n_steps), recording.width(network.width(recording.owner)))
            if array.shape != expected:
                raise DescriptionError(f"target.file[{key!r}]", f"shape {array.shape}; the run records {expected}")
            traces[key] = array.astype(float)
    return Target(traces, spikes, {})


def run(path, out, resume=False):
    """Fit as the FIT file `path` says, writing to the folder `out`; returns the results dict."""
    import torch_models
    from bridge.app.plots import fit_figure, loss_figure

    fit, out, started = read(path), Path(out), time.perf_counter()
    files.remove_stale(out, "results.json", "fitted.json", "fitted_brian2.py", "loss.png", "fit.png")
    torch.manual_seed(fit.seed)
    keys = list(fit.traces)
    module = torch_models.compile(fit.simulation, "stepwise", dtype="float64", learn=fit.learn, starts=fit.starts)
    start_values = module.learning.numpy_values()
    history = []  # the loss of every start at every step
    best = {"loss": torch.full((module.learning.n_starts,), torch.inf, dtype=torch.float64),
            **{name: raw.detach().clone() for name, raw in module.learning.raw.items()}}
    checkpoints = Checkpoints(out / "checkpoints", fit.text, resume, every=fit.checkpoint_every)
    stage_starts = []  # the step at which each stage after the first started
    for number, stage in enumerate(fit.stages, 1):
        if number > 1:
            stage_starts.append(len(history))
        _run_stage(stage, f"stage {number} of {len(fit.stages)}", module, fit, keys, checkpoints, history, best)
    with torch.no_grad():  # the values after the last step, then each start's best seen
        recorded = module(record=keys)
        _keep_best(best, run_losses(recorded, fit, module.learning.n_starts), module.learning)
        _restore_best(best, module.learning)
        recorded = module(record=keys)
        final = run_losses(recorded, fit, module.learning.n_starts)
    chosen = int(torch.argmin(final))
    fitted = module.to_simulation(chosen)
    files.write_text(out / "fitted.json", fitted.to_json(indent=1))
    brian_record = _brian_run(fitted, keys)
    results = {"fit": str(fit.path), "starts": module.learning.n_starts, "best_start": chosen,
               "steps_run": len(history), "stage_starts": stage_starts,
               "learned": _described(module, module.learned_values(chosen)),
               "started_at": _described(module, start_values),
               "loss": {"first": history[0] if history else None, "final": final.tolist(), "curve": history},
               "validation": _validation(fit, module, brian_record, recorded.record(chosen), keys),
               "export": _export(fitted, out / "fitted_brian2.py")}
    if fit.target.values:
        results["true"] = _described(module, fit.target.values)
        results["relative_error"] = {key: float(np.max(np.abs(module.learned_values(chosen)[key] - true) /
                                                       np.maximum(np.abs(true), 1e-300)))
                                     for key, true in fit.target.values.items()}
    results.update(seconds=time.perf_counter() - started, versions=files.versions())
    with files.atomic(out / "loss.png") as temporary:
        loss_figure(history, temporary, title=fit.path.stem, stage_starts=stage_starts)
    with files.atomic(out / "fit.png") as temporary:
        fit_figure(fit.target, brian_record, keys, list(fit.spikes), temporary, title=fit.path.stem)
    files.write_json(out / "results.json", results)
    return results


def _run_stage(stage, name, module, fit, keys, checkpoints, history, best):
    """One stage of the fit (Stage), from the best values seen so far (after the first), appending each step's
    losses to `history` and keeping `best` (_keep_best)."""
    if history:
        _restore_best(best, module.learning)
    optimizer = torch.optim.Adam(module.learning.parameters(), lr=stage.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, stage.steps) if stage.schedule == "cosine" \
        else torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    state = {"learning": module.learning, "optimizer": optimizer, "schedule": schedule, "history": history,
             "best": best}
    for _ in checkpoints.steps(name, stage.steps, state, desc=f"fit, {name}" if len(fit.stages) > 1 else "fit",
                               unit="step", mininterval=1,
                               postfix=lambda: {"loss": min(history[-1])} if history else {}):
        if history and min(history[-1]) <= fit.loss_below:
            break
        recorded = module(record=keys, recompute_every=stage.recompute_every)
        loss = run_losses(recorded, fit, module.learning.n_starts, stage.spike_gradient)
        _keep_best(best, loss.detach(), module.learning)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        schedule.step()
        history.append(loss.detach().tolist())


def _keep_best(best, loss, learning):
    """Each start's raw values where its `loss` (starts,) is its lowest so far: best {"loss": (starts,), raw
    parameter name: (starts, elements)}."""
    improved = loss < best["loss"]
    best["loss"] = torch.where(improved, loss, best["loss"])
    for name, raw in learning.raw.items():
        best[name] = torch.where(improved[:, None], raw.detach(), best[name])


def _restore_best(best, learning):
    """Each start's raw values back to those of its lowest loss seen."""
    with torch.no_grad():
        for name, raw in learning.raw.items():
            raw.copy_(best[name])


def _described(module, values):
    """{key: {"values": [...], "unit": ...}} of learned values (SI)."""
    units = {item.key: unit_text(item.dim) for item in module.learned}
    return {key: {"values": np.asarray(value).reshape(-1).tolist(), "unit": units[key]}
            for key, value in values.items()}


def _brian_run(fitted, keys):
    """Brian2's run of the fitted description, recording what the loss compares."""
    from brian_models.network import run as run_brian
    return run_brian(dataclasses.replace(fitted, run=dataclasses.replace(
        fitted.run, record=tuple(dict.fromkeys([*fitted.run.record, *keys])))))


def _validation(fit, module, record, torch_record, keys):
    """Brian2's run of the fitted description (`record`) against the module's run of the best start: spikes
    identical, the loss computed on each run's record, the largest trace difference, the Gamma factor of each
    spike train."""
    duration = record.n_steps * record.dt
    return {"identical_spikes": all(record.spike_set(p) == torch_record.spike_set(p) for p in record.spikes),
            "loss_torch": record_loss(torch_record, fit, keys), "loss_brian2": record_loss(record, fit, keys),
            "max_trace_difference": {key: float(np.max(np.abs(record.traces[key] - torch_record.traces[key])))
                                     for key in keys},
            "gamma_factor": {name: population_gamma_factor(record.spikes[name], fit.target.spikes[name],
                                                           module.plan.size(name), record.dt, duration)
                             for name in fit.spikes}}


def _export(fitted, path):
    """The fitted description as a plain Brian2 script, or why it cannot be one."""
    from bridge.app.export import to_brian2
    try:
        files.write_text(path, to_brian2(fitted))
        return str(path)
    except DescriptionError as err:
        return f"not written: {err}"
