"""Command line: `spikebridge models`, `spikebridge selftest`, `spikebridge crosscheck MODEL_OR_JSON_FILE ...`,
`spikebridge import SCRIPT.py|NET.nir`, `spikebridge export MODEL_OR_JSON_FILE --brian2 OUT.py|--nir OUT.nir`,
`spikebridge fit FIT.json`, `spikebridge list`, `spikebridge run EXPERIMENT ...`."""
import argparse
import contextlib
import importlib
import inspect
import platform
import signal
import sys
from importlib.metadata import entry_points
from pathlib import Path

from bridge import library

from bridge.app import files, interrupts
from bridge.errors import DescriptionError

DEFAULT_DT = "0.1*ms"


def _load(model_or_file, seed):
    """(name, Simulation) of a library model or a description file."""
    path = Path(model_or_file)
    name = path.stem if path.suffix == ".json" or path.exists() else model_or_file
    return name, library.simulation(model_or_file, seed)


@contextlib.contextmanager
def _about(model_or_file):
    """A bad value met while running a description (memory, delays out of range) named with its file."""
    try:
        yield
    except DescriptionError as err:
        raise DescriptionError(model_or_file, str(err)) from None


def models(args):
    for name, (model, _) in library.MODELS.items():
        print(f"{name:14s} {model.__doc__.strip().splitlines()[0]}")
    return 0


def crosscheck(args):
    name, simulation = _load(args.model, args.seed)
    with _about(args.model):
        return _crosscheck(name, simulation, args)


def _crosscheck(name, simulation, args):
    from bridge.app.paired import independent_noise_run, paired_run
    from bridge.app.plots import crosscheck_figure, statistics_figure
    from bridge.neo_records import block

    out = Path(args.out or f"results/crosscheck_{name}")
    files.remove_stale(out, "report.json", "crosscheck.png", "records.pkl")
    files.write_text(out / "simulation.json", simulation.to_json(indent=1))
    if args.independent_noise:
        print(f"crosscheck {name}: Brian2 ({args.target}) and torch ({args.dtype}) with independent noise, "
              f"{args.independent_noise} seeds")
        _, _, report = independent_noise_run(simulation, args.independent_noise, args.target, args.dtype)
        with files.atomic(out / "crosscheck.png") as temporary:
            statistics_figure(report, temporary, title=name)
    else:
        print(f"crosscheck {name}: Brian2 ({args.target}, float64) vs torch ({args.dtype}), "
              f"{simulation.run.n_steps} steps of {simulation.dt * 1e3:g} ms")
        brian_record, torch_record, report = paired_run(simulation, target=args.target, dtype=args.dtype,
                                                          progress=True)
        with files.atomic(out / "crosscheck.png") as temporary:
            crosscheck_figure(brian_record, torch_record, report, temporary, title=name)
        files.write_neo(out / "records.pkl", block([brian_record, torch_record], simulation, name))
    print(report.text())
    files.write_json(out / "report.json", report.to_dict())
    print(f"wrote {out / 'report.json'}, {out / 'crosscheck.png'}" +
          ("" if args.independent_noise else f" and {out / 'records.pkl'} (the runs as a neo Block)"))
    return 0 if report.passed else 1


def selftest(args):
    """Every library model's scenario run by Brian2 (numpy target) and torch (float64): whether the exact class
    (identical spikes) holds with the Brian2, numpy and torch installed; exit 1 where it does not."""
    from bridge.app.paired import paired_run

    print("spikebridge selftest: " + ", ".join(f"{library} {version}" for library, version in
                                               {"python": platform.python_version(), **files.versions()}.items()))
    failing = []
    for name in library.MODELS:
        _, _, report = paired_run(library.scenario(name), target="numpy", dtype="float64")
        print(f"  {name:14s} {_verdict(report)}")
        if not report.passed:
            failing.append(name)
    print(f"the exact class does NOT hold for {', '.join(failing)}" if failing else
          f"the exact class holds for all {len(library.MODELS)} library models")
    return 1 if failing else 0


def _verdict(report):
    """A paired run's report in a few words: exact, or where it first diverged."""
    if report.passed:
        return f"exact ({sum(counts['brian2'] for counts in report.counts.values())} spikes identical)"
    divergence = report.first_divergence
    return (f"NOT exact: first divergence at step {divergence.step}, {divergence.population}[{divergence.neuron}]"
            if divergence else "NOT exact: traces differ")


def sweep(args):
    from bridge.app import sweep as sweeps

    try:
        table = sweeps.run(args.sweep, args.out, scheduler=args.scheduler, workers=args.workers, resume=args.resume)
    except KeyboardInterrupt:
        done = len(list(Path(args.out).glob("runs/run_*/result.json")))
        print(f"interrupted: {done} runs have a result in {args.out}; `spikebridge sweep {args.sweep} --out "
              f"{args.out} --resume` continues", file=sys.stderr)
        return 130
    print(f"{len(table)} runs; wrote {Path(args.out) / 'results.csv'}, {Path(args.out) / 'summary.png'} and a "
          f"folder per run in {Path(args.out) / 'runs'}")
    failed = int(table["error"].notna().sum()) if "error" in table else 0
    if failed:
        print(f"{failed} runs failed (their error is in the table); --resume runs them again")
    return 0


def experiments():
    """{name: (module path, one line)} of every installed experiment: each entry point of the group
    'spikebridge.experiments' names such a registry (this project's: experiments.EXPERIMENTS)."""
    registry = {}
    for entry in entry_points(group="spikebridge.experiments"):
        registry.update(entry.load())
    return registry


def import_script(args):
    from bridge.app.brian2_scripts import from_brian2
    from bridge.app import nir_graphs

    path = Path(args.script)
    if path.suffix == ".nir":
        simulation = nir_graphs.load(path, args.dt or DEFAULT_DT, args.duration, args.spikes)
    else:
        nir_only = [f"--{name}" for name in ("dt", "duration", "spikes") if getattr(args, name)]
        if nir_only:
            raise DescriptionError(str(path), f"{', '.join(nir_only)}: for NIR files (.nir); a Brian2 script sets "
                                              "its own")
        simulation = from_brian2(path)
    out = Path(args.out or path.with_suffix(".json").name)
    files.write_text(out, simulation.to_json(indent=1))
    net = simulation.network
    print(f"imported {path}{'' if path.suffix == '.nir' else ' (up to its run())'}: {len(net.populations)} "
          f"populations, {len(net.sources)} sources, {len(net.projections)} projections, {simulation.run.n_steps} "
          f"steps of {simulation.dt * 1e3:g} ms")
    print(f"wrote {out}; next: spikebridge crosscheck {out}")
    return 0


def export_script(args):
    from bridge.app.export import to_brian2
    from bridge.app import nir_graphs

    _, simulation = _load(args.model, args.seed)
    with _about(args.model):
        if args.brian2:
            files.write_text(Path(args.brian2), to_brian2(simulation))
            print(f"wrote {args.brian2}: a plain Brian2 script (python {args.brian2} runs it without spikebridge)")
            return 0
        graph = nir_graphs.from_simulation(simulation)
        nir_graphs.write(Path(args.nir), graph)
    for note in graph.metadata.get("notes", ()):
        print(f"note: {note}")
    print(f"wrote {args.nir}: a NIR graph (nir.read reads it; its discretisation is in its metadata)")
    return 0


def fit_model(args):
    from bridge.app import fit

    out = Path(args.out or f"results/fit_{Path(args.fit).stem}")
    try:
        results = fit.run(args.fit, out, resume=args.resume)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"`spikebridge fit {args.fit} --out {out} --resume` continues from the checkpoints "
                                f"in {out / 'checkpoints'}") from None
    validation = results["validation"]
    print(f"fit {args.fit}: {results['steps_run']} steps, loss {min(results['loss']['final']):.4g} (best of "
          f"{results['starts']} starts); learned: " + ", ".join(f"{key} = {_short(item)}" for key, item in
                                                            results["learned"].items()))
    print(f"Brian2 validation: spikes {'identical' if validation['identical_spikes'] else 'NOT identical'}, loss "
          f"{validation['loss_brian2']:.6g} (torch {validation['loss_torch']:.6g})")
    print(f"wrote {out}/fitted.json, fitted_brian2.py, results.json, loss.png and fit.png")
    return 0 if validation["identical_spikes"] else 1


def _short(item):
    values = item["values"]
    shown = f"{values[0]:.6g}" if len(values) == 1 else f"[{values[0]:.4g} ... {values[-1]:.4g}] ({len(values)})"
    return f"{shown} {item['unit']}"


def list_experiments(args):
    for name, (_, text) in experiments().items():
        print(f"{name:16s} {text}")
    return 0


def run_experiment(args):
    registry = experiments()
    if args.name not in registry:
        raise KeyError(f"unknown experiment {args.name!r}; known: {sorted(registry)}")
    module = importlib.import_module(registry[args.name][0])
    out = args.out or f"results/{args.name.replace('-', '_')}"
    if args.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise DescriptionError("--device", "cuda, but torch sees no GPU here (a CPU build, or no driver); "
                                               "use --device cpu")
    files.remove_stale(out, "results.json")
    accepted = inspect.signature(module.run).parameters
    extra = {key: value for key, value in (("mnist", args.mnist), ("resume", args.resume)) if value}
    for key in extra:
        if key not in accepted:
            raise ValueError(f"--{key}: experiment {args.name!r} takes no such option")
    try:
        results = module.run(out=out, seed=args.seed, quick=args.quick, device=args.device, **extra)
    except KeyboardInterrupt:
        if "resume" in accepted:
            raise KeyboardInterrupt(f"`spikebridge run {args.name} --out {out} --resume` continues from the "
                                    f"training checkpoints in {out}/checkpoints") from None
        raise
    print(module.summary(results))
    print(f"wrote {out}/results.json and PNGs")
    return 0


def _keep_ignoring_sigint():
    """A job started with SIGINT ignored (in the background) keeps ignoring it: Brian2's handler would call the
    ignored handler and crash."""
    handler = signal.getsignal(signal.SIGINT)
    if getattr(handler, "previous_handler", None) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(argv=None):
    _keep_ignoring_sigint()
    parser = argparse.ArgumentParser(prog="spikebridge", description="One spiking model, Brian2 and PyTorch.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("models", help="list the library models").set_defaults(func=models)
    commands.add_parser("selftest", help="whether the exact class holds for every library model with the installed "
                                         "Brian2, numpy and torch (run it first on a new machine)"
                        ).set_defaults(func=selftest)
    check = commands.add_parser("crosscheck", help="run a model in both backends and compare spike by spike")
    check.add_argument("model", metavar="MODEL_OR_JSON_FILE", help="a library model name or a Simulation JSON file")
    check.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="torch float type")
    check.add_argument("--seed", type=int, default=0, help="seed of a library model's scenario")
    check.add_argument("--target", choices=("numpy", "cython", "cpp_standalone"), default="numpy",
                       help="Brian2 code target")
    check.add_argument("--out", help="output folder (default results/crosscheck_NAME)")
    check.add_argument("--independent-noise", type=int, metavar="SEEDS", help="draw noise independently in each "
                       "backend (Brian2's own generator) and compare rates and CV over SEEDS >= 5 runs")
    check.set_defaults(func=crosscheck)
    script = commands.add_parser("import", help="a Brian2 script's network (read at its run()) or a NIR graph as a "
                                                "description")
    script.add_argument("script", metavar="SCRIPT.py|NET.nir")
    script.add_argument("--out", help="the description file to write (default SCRIPT.json here)")
    script.add_argument("--dt", help=f"NIR: the time step (default {DEFAULT_DT}, snnTorch's; "
                                                         "Norse's default is 1*ms)")
    script.add_argument("--duration", help="NIR: how long to run (default: the input rasters' steps and the "
                                           "deepest node's lag)")
    script.add_argument("--spikes", metavar="IN.npz", help="NIR: a (steps, elements) raster of 0s and 1s per Input "
                                                          "node, named as the node")
    script.set_defaults(func=import_script)
    export = commands.add_parser("export", help="a description as a plain Brian2 script or a NIR graph")
    export.add_argument("model", metavar="MODEL_OR_JSON_FILE", help="a library model name or a Simulation JSON file")
    written = export.add_mutually_exclusive_group(required=True)
    written.add_argument("--brian2", metavar="OUT.py", help="the script to write")
    written.add_argument("--nir", metavar="OUT.nir", help="the NIR graph to write (descriptions in NIR form: "
                                                         "bridge/app/nir_graphs.py)")
    export.add_argument("--seed", type=int, default=0, help="seed of a library model's scenario")
    export.set_defaults(func=export_script)
    many = commands.add_parser("sweep", help="run a model over many values (a sweep file), torch batched, Brian2 "
                               "on a dask cluster; resumable")
    many.add_argument("sweep", metavar="SWEEP.json")
    many.add_argument("--out", required=True, help="the sweep's folder (results.csv, summary.png, runs/)")
    many.add_argument("--scheduler", default="local", help="'local' (a LocalCluster of --workers processes), "
                      "'serial' (this process only) or a dask scheduler's address (tcp://host:8786)")
    many.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    many.add_argument("--resume", action="store_true", help="continue the sweep in --out, skipping finished runs")
    many.set_defaults(func=sweep)
    fitting = commands.add_parser("fit", help="learn what a FIT file names by gradient, validate the fitted model in "
                                  "Brian2 (results in --out); resumable")
    fitting.add_argument("fit", metavar="FIT.json")
    fitting.add_argument("--out", help="output folder (default results/fit_NAME)")
    fitting.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    fitting.set_defaults(func=fit_model)
    commands.add_parser("list", help="list the experiments").set_defaults(func=list_experiments)
    experiment = commands.add_parser("run", help="run an experiment (results JSON and PNGs in --out)")
    experiment.add_argument("name", metavar="EXPERIMENT", help="see `spikebridge list`")
    experiment.add_argument("--out", help="output folder (default results/NAME)")
    experiment.add_argument("--seed", type=int, default=0)
    experiment.add_argument("--quick", action="store_true", help="a short version (used by the tests)")
    experiment.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device")
    experiment.add_argument("--resume", action="store_true", help="continue training from the checkpoints in --out "
                            "(experiments that train: delay-toy, spiking-net, ipd-delays, ipd-cotrain)")
    experiment.add_argument("--mnist", metavar="DIR",
                            help="spiking-net only: MNIST IDX files instead of the embedded digits")
    experiment.set_defaults(func=run_experiment)
    args = parser.parse_args(argv)
    try:
        with interrupts.remembered():
            return args.func(args)
    except (DescriptionError, KeyError, ValueError, FileNotFoundError) as err:
        print("error: " + " ".join(str(err).splitlines()), file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"interrupted; nothing of this run was written as complete{f'; {err}' if str(err) else ''}",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
