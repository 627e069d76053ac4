"""Brian2 code nobody here wrote, imported as written: every script of a folder (Brian2's own examples/ folder of
brian-team/brian2) is imported by spikebridge and each one that imports is cross-checked (Brian2 against torch,
float64, the same dt, also for a script that sets float32: its description says so, the exact class is float64's).
A script that draws random numbers during its run (the import says so: spikebridge's seeded draws replace its
own) must also pass the stochastic class: Brian2 drawing its own numbers as the script does, 5 seeds, against
torch with spikebridge's draws, rates and CVs within 5 %. Not a test: the yardstick of issue 28.

Each script runs in its own process (its working directory and folder as `python script.py` has them), with a
time limit; a simulated duration longer than --limit is shortened to it, and the table says so. A script is
eligible unless it is a helper without run(), or needs what spikebridge does not cover: a compartmental model
(SpatialNeuron), a GSL state updater, or a package that is not installed (the folders compartmental/ and
multiprocessing/ are not run). Coverage: eligible
scripts that import and pass their class, out of all eligible scripts.

    python bench/brian2_examples.py /path/to/brian2/examples --out bench/results/brian2_examples

Rows go to results.jsonl as each script ends (a second call skips the scripts it holds: interrupt and resume);
then table.md and coverage.png are written (atomically).
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

DRAWS = "draw random numbers during the run"  # what the import says of a script that draws during its run


def child(script, limit):
    """One script, in the process run_script starts: its row, printed on a line of its own."""
    import warnings

    from bridge.app.brian2_scripts import from_brian2
    from bridge.app.paired import independent_noise_run, paired_run
    from bridge.quantities import si_value
    warnings.simplefilter("ignore")
    os.chdir(os.path.dirname(script))
    sys.argv = [script]
    row = lambda **fields: print("\nROW " + json.dumps(fields), flush=True)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            simulation = from_brian2(script)
    except Exception as error:
        return row(stage="refused", reason=f"{type(error).__name__}: {error}", seconds=time.perf_counter() - start)
    imported, draws = time.perf_counter() - start, any(DRAWS in str(warning.message) for warning in said)
    duration = si_value(simulation.run.duration, "duration")
    if duration > si_value(limit, "--limit"):
        simulation = shortened(simulation, si_value(limit, "--limit"))
    try:
        brian_record, torch_record, report = paired_run(simulation, dtype="float64")  # the exact class
        stochastic = independent_noise_run(simulation, dtype="float64")[2] if draws else None
    except Exception as error:
        return row(stage="crosscheck failed", reason=f"{type(error).__name__}: {error}",
                   seconds=time.perf_counter() - start)
    note = "" if stochastic is None else (f"stochastic class {'passed' if stochastic.passed else 'failed'} "
                                          f"({stochastic.seeds} seeds): rates and CVs at most "
                                          f"{100 * max(stochastic.differences().values(), default=0):.1f} % from "
                                          "Brian2's own draws")
    passed = report.passed and (stochastic is None or stochastic.passed)
    row(stage="passed" if passed else "failed", tolerance="exact" + (" + stochastic" if draws else ""), note=note,
        identical=report.identical,
        spikes=int(sum(brian_record.count(p.name) for p in simulation.network.populations)),
        script_duration=duration,
        run_duration=si_value(simulation.run.duration, "duration"), import_seconds=imported,
        seconds=time.perf_counter() - start)


def shortened(simulation, cut):
    """The simulation's first `cut` seconds: its segments up to the cut (the last one cut), their changes, and
    the spikes of spike trains before the cut."""
    import dataclasses

    import numpy as np

    from bridge.description import SpikeTrains
    run, dt = simulation.run, simulation.dt
    steps = round(cut / dt)
    starts = run.segment_starts
    kept = sum(start < steps for start in starts)
    lengths = [*run.segment_lengths[:kept - 1], steps - starts[kept - 1]]
    segments = tuple(f"{length}*{run.timing.dt}" for length in lengths) if kept > 1 else 1

    def before_cut(source):
        if not isinstance(source, SpikeTrains):
            return source
        keep = np.asarray(source.times) < (steps - 1e-3) * dt
        return dataclasses.replace(source, indices=np.asarray(source.indices)[keep],
                                   times=np.asarray(source.times)[keep])
    network = dataclasses.replace(simulation.network, sources=tuple(map(before_cut, simulation.network.sources)))
    return dataclasses.replace(simulation, network=network, run=dataclasses.replace(
        run, duration=f"{steps}*{run.timing.dt}", segments=segments,
        changes=tuple(change for change in run.changes if change.segment < kept)))


OUT_OF_SCOPE = {"compartmental", "multiprocessing"}  # folders of examples not run
NOT_ELIGIBLE = {  # reason a script is outside the yardstick: a phrase of its refusal
    "compartmental model": "SpatialNeuron",
    "GSL state updater": "gsl",
    "package not installed": "ModuleNotFoundError",
    "helper without run()": "never calls run()",
}


def eligibility(row):
    """'' for an eligible script, else why not."""
    for reason, phrase in NOT_ELIGIBLE.items():
        if phrase in row.get("reason", ""):
            return reason
    return ""


def run_script(path, limit, timeout):
    """The row of one script, run in a process group of its own (a script's own worker processes are stopped
    with it at the time limit)."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, "--child", str(path), "--limit", limit], text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                             env={**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"})
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        return {"stage": "timeout", "reason": f"over {timeout} s", "seconds": timeout}
    rows = [line[4:] for line in stdout.splitlines() if line.startswith("ROW ")]
    if rows:
        return json.loads(rows[-1])
    last = (stderr.strip().splitlines() or ["no output"])[-1]
    return {"stage": "crashed", "reason": last, "seconds": time.perf_counter() - start}


def atomic_write(path, write):
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False) as file:
        write(file)
    os.replace(file.name, path)


def table(rows):
    eligible = [row for row in rows if not row["not_eligible"]]
    passed = [row for row in eligible if row["stage"] == "passed"]
    lines = [f"Coverage: {len(passed)} of {len(eligible)} eligible scripts import and pass their class "
             f"({100 * len(passed) / max(len(eligible), 1):.0f} %); {len(rows) - len(eligible)} not eligible.", "",
             "| script | result | class | spikes | simulated (s) | seconds | refusal or note |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        result = row["stage"] if not row["not_eligible"] else f"not eligible: {row['not_eligible']}"
        simulated = ""
        if "run_duration" in row:
            simulated = f"{row['run_duration']:g}" + (f" of {row['script_duration']:g}"
                                                      if row["run_duration"] < row["script_duration"] else "")
        note = (row.get("reason") or row.get("note", "")).replace("|", "/").replace("\n", " ")[:160]
        lines.append(f"| {row['script']} | {result} | {row.get('tolerance', '')} | {row.get('spikes', '')} | "
                     f"{simulated} | {row['seconds']:.1f} | {note} |")
    return "\n".join(lines) + "\n"


def figure(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = {}
    for row in rows:
        groups.setdefault("not eligible" if row["not_eligible"] else row["stage"], []).append(row)
    order = ["passed", "failed", "crosscheck failed", "refused", "crashed", "timeout", "not eligible"]
    names = [name for name in order if name in groups]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.barh(names, [len(groups[name]) for name in names],
            color=["tab:green" if name == "passed" else "tab:gray" if name == "not eligible" else "tab:red"
                   for name in names])
    ax.invert_yaxis()
    ax.set_xlabel("scripts")
    eligible = len(rows) - len(groups.get("not eligible", []))
    ax.set_title(f"Brian2's examples imported as written: {len(groups.get('passed', []))} of {eligible} eligible "
                 "pass")
    fig.tight_layout()
    atomic_write(path, lambda file: fig.savefig(file, format="png", dpi=120))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # one script, in its process
    parser.add_argument("--out", type=Path, default=Path("bench/results/brian2_examples"))
    parser.add_argument("--limit", default="100*ms", help="longest simulated duration (longer runs are shortened)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per script")
    args = parser.parse_args(argv)
    if args.child:
        return child(str(args.folder), args.limit)
    if not args.folder.is_dir():
        print(f"error: {args.folder}: not a folder", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    done = {json.loads(line)["script"]: json.loads(line) for line in results.read_text().splitlines()} \
        if results.exists() else {}
    scripts = sorted(str(path.relative_to(args.folder)) for path in args.folder.rglob("*.py"))
    with open(results, "a") as log:
        for script in tqdm([s for s in scripts if s not in done], desc="scripts", unit="script"):
            folder = OUT_OF_SCOPE & set(Path(script).parts)
            row = {"script": script, **({"stage": "not run", "seconds": 0.0} if folder else
                                        run_script(args.folder / script, args.limit, args.timeout))}
            row["not_eligible"] = folder.pop() if folder else eligibility(row)
            done[script] = row
            log.write(json.dumps(row) + "\n")
            log.flush()
    rows = [done[script] for script in scripts]
    atomic_write(args.out / "table.md", lambda file: file.write(table(rows).encode()))
    figure(rows, args.out / "coverage.png")
    print(table(rows).splitlines()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
