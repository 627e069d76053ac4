"""Sweeps: one model run over many values of its description, in torch, in Brian2 or paired, spread over a
dask.distributed cluster, resumable.

A sweep file (JSON) names a base Simulation (a description file, relative to the sweep file, or a library model
with `base_seed`), the values to vary, each addressed by its path in the description, and what to run:

    {"base": "lif", "base_seed": 0, "run": "paired", "target": "numpy", "dtype": "float64", "batch": 32,
     "vary": {"network.populations.lif.model.parameters.tau_m": {"linspace": [10, 30, 5], "unit": "ms"},
              "network.projections.input_to_lif.synapse.parameters.gain": ["0.5", "1", "2"],
              "run.noise_seed": [0, 1]},
     "samples": 0, "sample_seed": 0}

A path names fields of the description's objects; in a list of named objects (populations, sources,
projections, ...) the next part is the object's name; in a mapping (parameters, values, initial) a key.
Values: a list (as the field takes them: strings for quantities and expressions, numbers for counts and seeds),
{"linspace": [start, stop, num], "unit": U} (num values "x*U", U = "1" when dimensionless, or numbers
without a unit), or
{"uniform": [low, high], "unit": U}, drawn `samples` times from default_rng(sample_seed). The runs are every
combination of the listed values, times the `samples` draws when uniform values are given.

Torch runs whose descriptions differ only in neuron or synapse parameters and neuron initial values run as one
batch of variants (the step-by-step module's forward(variants=...)), up to `batch` per module. Every task (a Brian2 run,
a torch batch) runs on dask.distributed: a LocalCluster of worker processes by default, a scheduler's address
for a real cluster, or 'serial' (one process, no dask). Each run writes its folder runs/run_NNNN (its records as a
neo Block, bridge/neo_records.py; the report of a paired run; then result.json, atomically); results.csv holds one
row per run and summary.png a metric against the first varied value. A failed run is recorded with its error;
`resume` skips the runs with a result.
"""
import contextlib
import dataclasses
import itertools
import json
import os
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bridge import library

from bridge.app import files, interrupts
from bridge.app.compare import spike_statistics
from bridge.fields import check_integer
from bridge.errors import DescriptionError
from bridge.neo_records import block
from bridge.plan import lower

RUN_KINDS = ("torch", "brian2", "paired")


@dataclass(frozen=True)
class Sweep:
    base: str
    vary: dict
    run: str = "paired"
    target: str = "numpy"
    dtype: str = "float64"
    batch: int = 32
    samples: int = 0
    sample_seed: int = 0
    base_seed: int = 0
    folder: str = "."  # where a base description file is looked up (the sweep file's folder)

    def __post_init__(self):
        if self.run not in RUN_KINDS:
            raise DescriptionError("run", f"{self.run!r}; allowed: {list(RUN_KINDS)}")
        for name in ("batch", "samples", "sample_seed", "base_seed"):
            check_integer(getattr(self, name), name, 1 if name == "batch" else 0)
        if not isinstance(self.vary, Mapping) or not self.vary:
            raise DescriptionError("vary", "give at least one path with its values")
        for path, spec in self.vary.items():
            _values(path, spec, 1, np.random.default_rng(0))  # checks the spec
        if self.samples and not any(_is_random(spec) for spec in self.vary.values()):
            raise DescriptionError("samples", f"{self.samples}; samples are drawn for 'uniform' values only")
        if not self.samples and any(_is_random(spec) for spec in self.vary.values()):
            raise DescriptionError("samples", "0; 'uniform' values need samples >= 1")

    def simulation(self):
        """The base Simulation."""
        return library.simulation(self.base, self.base_seed, Path(self.folder))

    def runs(self):
        """[{path: value}] of every run, in order: every combination of the listed values (the first path
        varying slowest), each with every draw of the uniform values."""
        rng = np.random.default_rng(self.sample_seed)
        listed = {path: _values(path, spec, 0, rng) for path, spec in self.vary.items() if not _is_random(spec)}
        drawn = {path: _values(path, spec, self.samples, rng) for path, spec in self.vary.items() if _is_random(spec)}
        draws = [{path: values[k] for path, values in drawn.items()} for k in range(self.samples)] or [{}]
        return [{**dict(zip(listed, combination)), **draw}
                for combination in itertools.product(*listed.values()) for draw in draws]

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "folder"}


def load(path):
    """A Sweep from its JSON file; errors name the file and the field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise DescriptionError("(top level)", "a sweep file holds one JSON object")
        allowed = {f.name for f in fields(Sweep)} - {"folder"}
        unknown, missing = set(data) - allowed, {"base", "vary"} - set(data)
        if unknown or missing:
            raise DescriptionError("(top level)", f"unknown fields {sorted(unknown)}, missing {sorted(missing)}; "
                                                  f"fields: {sorted(allowed)}")
        sweep = Sweep(**data, folder=str(path.parent))
        base = sweep.simulation()
        for varied_path in sweep.vary:
            _replaced(base, varied_path.split("."), _SAME, varied_path)
        return sweep
    except (DescriptionError, json.JSONDecodeError, KeyError, FileNotFoundError) as err:
        raise DescriptionError(str(path), str(err)) from None


def _is_random(spec):
    return isinstance(spec, Mapping) and "uniform" in spec


def _values(path, spec, samples, rng):
    """The values a spec gives: listed, on a grid, or `samples` uniform draws."""
    where = f"vary[{path!r}]"
    if isinstance(spec, list) and spec:
        return spec
    if not isinstance(spec, Mapping) or len(set(spec) - {"unit"}) != 1 or not set(spec) & {"linspace", "uniform"}:
        raise DescriptionError(where, f"{spec!r}; give a list of values, {{'linspace': [start, stop, num]}} or "
                                      "{'uniform': [low, high]}, each with an optional 'unit'")
    unit = spec.get("unit")
    if "linspace" in spec:
        start, stop, num = _numbers(spec["linspace"], 3, where)
        if num != int(num) or num < 1:
            raise DescriptionError(where, f"linspace num {num!r} must be an integer >= 1")
        numbers = np.linspace(start, stop, int(num))
    else:
        low, high = _numbers(spec["uniform"], 2, where)
        numbers = rng.uniform(low, high, samples)
    if unit is None:
        return [float(x) for x in numbers]
    if not isinstance(unit, str) or not (unit.isidentifier() or unit == "1"):
        raise DescriptionError(where, f"unit {unit!r} must be a unit name, e.g. 'ms', or '1'")
    return [f"{float(x)!r}*{unit}" for x in numbers]


def _numbers(values, count, where):
    if (not isinstance(values, list) or len(values) != count or
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in values)):
        raise DescriptionError(where, f"{values!r} must be {count} finite numbers")
    return values


def varied(simulation, values):
    """The Simulation with each path set to its value (each object checked again as it is rebuilt)."""
    for path, value in values.items():
        simulation = _replaced(simulation, path.split("."), value, path)
    return simulation


_SAME = object()  # as a value: keep what is there (to check a path)


def _replaced(obj, parts, value, path):
    if not parts:
        return obj if value is _SAME else value
    head, rest = parts[0], parts[1:]
    where = f"vary[{path!r}]"
    if is_dataclass(obj):
        names = [f.name for f in fields(obj)]
        if head not in names:
            raise DescriptionError(where, f"{type(obj).__name__} has no field {head!r}; fields: {names}")
        return dataclasses.replace(obj, **{head: _replaced(getattr(obj, head), rest, value, path)})
    if isinstance(obj, (tuple, list)):
        names = [getattr(item, "name", None) for item in obj]
        if head not in names:
            raise DescriptionError(where, f"no object named {head!r} here; names: {[n for n in names if n]}")
        k = names.index(head)
        return type(obj)([*obj[:k], _replaced(obj[k], rest, value, path), *obj[k + 1:]])
    if isinstance(obj, Mapping):
        if head not in obj:
            raise DescriptionError(where, f"no key {head!r} here; keys: {sorted(obj)}")
        return {**obj, head: _replaced(obj[head], rest, value, path)}
    raise DescriptionError(where, f"{head!r} goes below a value ({obj!r})")


def _variant(plan, path):
    """(name, SI value) that the step-by-step module's forward(variants=...) takes for a path's value in a lowered plan,
    or None when the path is not one a batch can vary: neuron and synapse parameters that code reads, neuron
    initial values."""
    parts = path.split(".")
    if len(parts) == 5 and parts[:2] == ["network", "populations"] and parts[3] == "initial":
        return f"{parts[2]}.{parts[4]}", plan.populations[parts[2]].initial_array(parts[4])
    if len(parts) != 6 or parts[4] != "parameters":
        return None
    if parts[:2] == ["network", "populations"] and parts[3] == "model":
        constants = plan.populations[parts[2]].constants
    elif parts[:2] == ["network", "projections"] and parts[3] == "synapse":
        constants = plan.projections[parts[2]].constants
    else:
        return None
    return (f"{parts[2]}.{parts[5]}", np.float64(constants[parts[5]])) if parts[5] in constants else None


def _brian2_task(simulation, target):
    from bridge.app.paired import backends
    run_brian, _ = backends()
    return [run_brian(lower(simulation), target=target)]


def _torch_task(simulation, dtype, variants, batch, margins):
    """One batch of variants; `margins`: kept for paired runs, whose comparison explains differences with them."""
    import torch
    import torch_models

    with torch.no_grad():
        result = torch_models.compile(simulation, "stepwise", dtype=dtype)(batch_size=batch, variants=variants,
                                                                           margins=margins)
    return [result.record(b) for b in range(batch)]


def _torch_batches(runs, dtype, batch):
    """[(task arguments, run ids)]: runs whose descriptions differ only in what a batch can vary, in batches of
    up to `batch` variants."""
    groups = {}
    for run_id, values, simulation in runs:
        plan = lower(simulation)
        variants = {path: _variant(plan, path) for path in values}
        fixed = {path: value for path, value in values.items() if variants[path] is None}
        groups.setdefault(json.dumps(fixed, sort_keys=True), []).append((run_id, simulation, variants))
    batches = []
    for members in groups.values():
        for start in range(0, len(members), batch):
            chunk = members[start:start + batch]
            batchable = [path for path, variant in chunk[0][2].items() if variant is not None]
            variants = {chunk[0][2][path][0]: np.stack([member[2][path][1] for member in chunk])
                        for path in batchable} if len(chunk) > 1 else {}
            batches.append(((chunk[0][1], dtype, variants, len(chunk)), [member[0] for member in chunk]))
    return batches


@dataclass(eq=False)
class _Call:
    function: object
    args: tuple


class _Serial:
    """Tasks run one after the other in this process, when their results are asked for."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, function, *args):
        return _Call(function, args)

    def completed(self, tasks):
        """(task, result or None, error text or None) as each task finishes."""
        for task in tasks:
            try:
                yield task, task.function(*task.args), None
            except Exception as err:  # a failed run is recorded, the sweep goes on
                yield task, None, _error_text(err)


class _Dask:
    """Tasks on dask.distributed: a LocalCluster of `workers` processes, or the scheduler at `address`."""

    def __init__(self, address, workers):
        self.address, self.workers = address, workers

    def __enter__(self):
        from dask.distributed import Client, LocalCluster

        if self.address == "local":
            self.cluster = LocalCluster(n_workers=self.workers or os.cpu_count(), threads_per_worker=1,
                                        processes=True, dashboard_address=None)
            self.client = Client(self.cluster)
        else:
            self.cluster, self.client = None, Client(self.address)
        return self

    def __exit__(self, *exc):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False

    def submit(self, function, *args):
        return self.client.submit(function, *args, pure=False)

    def completed(self, futures):
        from dask.distributed import as_completed

        for future in as_completed(futures):
            try:
                yield future, future.result(), None
            except Exception as err:  # includes a task whose workers were killed (KilledWorker)
                yield future, None, _error_text(err)


def _error_text(err):
    return f"{type(err).__name__}: {err}".splitlines()[0]


def _executor(scheduler, workers):
    return _Serial() if scheduler == "serial" else _Dask(scheduler, workers)


def run(sweep, out, scheduler="local", workers=None, resume=False, progress=True):
    """Run a Sweep (or a sweep file's path) into the folder `out`; returns the table (pandas DataFrame), one row
    per run. `scheduler`: 'local' (a LocalCluster of `workers` processes), 'serial', or a dask scheduler's
    address. `resume`: continue a sweep in `out`, skipping the runs with a result."""
    sweep = load(sweep) if isinstance(sweep, (str, Path)) else sweep
    out, base = Path(out), sweep.simulation()
    _claim(out, sweep, resume)
    todo = []
    for k, values in enumerate(sweep.runs()):
        run_id = f"run_{k:04d}"
        if not _finished(out, run_id):
            try:
                todo.append((run_id, values, varied(base, values)))
            except DescriptionError as err:  # a value the description refuses: this run fails, the sweep goes on
                _write_result(out, run_id, {"run": run_id, **values, "error": _error_text(err)})
    needs = {"paired": ("brian2", "torch"), "brian2": ("brian2",), "torch": ("torch",)}[sweep.run]
    with _interruptible(), _executor(scheduler, workers) as executor:
        covers = {}  # task -> (backend, run ids)
        if "torch" in needs:
            for args, run_ids in _torch_batches(todo, sweep.dtype, sweep.batch):
                covers[executor.submit(_torch_task, *args, sweep.run == "paired")] = ("torch", run_ids)
        if "brian2" in needs:
            for run_id, _, simulation in todo:
                covers[executor.submit(_brian2_task, simulation, sweep.target)] = ("brian2", [run_id])
        runs = {run_id: (values, simulation) for run_id, values, simulation in todo}
        records = {run_id: {} for run_id in runs}
        bar = tqdm(total=len(runs), desc="sweep", unit="run", disable=not progress)
        for task, result, error in executor.completed(list(covers)):
            interrupts.raise_if_lost()
            backend, run_ids = covers[task]
            for index, run_id in enumerate(run_ids):
                if run_id not in records:  # already failed through its other backend
                    continue
                records[run_id][backend] = error or result[index]
                if error or set(records[run_id]) == set(needs):
                    values, simulation = runs[run_id]
                    _finish(out, run_id, values, simulation, records.pop(run_id), sweep, error)
                    bar.update()
        bar.close()
    return _summarize(out, sweep)


@contextlib.contextmanager
def _interruptible():
    """SIGINT raises KeyboardInterrupt, and one that Python lost (raised inside a garbage collector's callback)
    is remembered (bridge/app/interrupts.py) for the sweep to raise again between tasks. Replaces Brian2's
    handler, which would stop a Brian2 run early and let it return, for the sweep's duration."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    with interrupts.remembered():
        if threading.current_thread() is not threading.main_thread():  # only the main thread receives signals
            yield
            return
        previous = signal.signal(signal.SIGINT, interrupt)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


def _claim(out, sweep, resume):
    """Make `out` this sweep's folder: a new one, or with `resume` one holding the same sweep. The table and
    figure of an earlier pass are removed until this pass completes."""
    stored = out / "sweep.json"
    text = json.dumps(sweep.to_dict(), indent=1, sort_keys=True)
    if stored.exists():
        if not resume:
            raise DescriptionError(str(out), "holds a sweep's results; give --resume to continue it, or a new --out")
        if stored.read_text() != text:
            raise DescriptionError(str(out), "holds the results of a different sweep; --resume continues only the "
                                             "same sweep (compare its sweep.json)")
    elif resume:
        raise DescriptionError(str(out), "holds no sweep to resume")
    out.mkdir(parents=True, exist_ok=True)
    files.remove_stale(out, "results.csv", "summary.png")
    files.write_text(stored, text)


def _finished(out, run_id):
    result = out / "runs" / run_id / "result.json"
    return result.exists() and "error" not in json.loads(result.read_text())


def _finish(out, run_id, values, simulation, records, sweep, error):
    """Write one run's folder: its records (a neo Block) and report, then result.json (a row of the table)."""
    from bridge.app.paired import compare_records

    row = {"run": run_id, **values}
    if error:
        _write_result(out, run_id, {**row, "error": error})
        return
    folder = out / "runs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    files.write_neo(folder / "records.pkl", block([records[backend] for backend in sorted(records)], simulation,
                                                  run_id))
    reference = records.get("brian2", records.get("torch"))
    for population in simulation.network.populations:
        statistics = spike_statistics([reference], population.name, population.n)
        row.update({f"{population.name}.spikes": reference.count(population.name),
                    f"{population.name}.rate_hz": statistics["rate"], f"{population.name}.cv": statistics["cv"]})
    if sweep.run == "paired":
        report = compare_records(simulation, records["brian2"], records["torch"], sweep.dtype)
        files.write_json(folder / "report.json", report.to_dict())
        row.update(identical=report.identical, passed=report.passed,
                   max_trace_rel=max((t["max_rel"] for t in report.traces.values()), default=0.0))
    _write_result(out, run_id, row)


def _write_result(out, run_id, row):
    files.write_json(out / "runs" / run_id / "result.json", row)


def _summarize(out, sweep):
    """results.csv and summary.png from every run's result.json."""
    import pandas as pd

    rows = [json.loads(path.read_text()) for path in sorted((out / "runs").glob("run_*/result.json"))]
    table = pd.DataFrame(rows)
    with files.atomic(out / "results.csv") as temporary:
        table.to_csv(temporary, index=False)
    from bridge.app.plots import sweep_figure
    with files.atomic(out / "summary.png") as temporary:
        names = {path: path.split(".")[-1] for path in sweep.vary}
        sweep_figure(table, list(sweep.vary), names, temporary, paired=sweep.run == "paired")
    return table
