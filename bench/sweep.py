"""Sweeps (issue 19): Brian2 runs on a local dask cluster against one after the other, and torch variants batched
in one module against one module per variant. Not a test.

The network is the CUBA benchmark of bench/simulate.py (Brette et al. 2007), imported from its Brian2 script;
the sweep varies the membrane time constant. Each configuration is a whole `bridge.app.sweep.run` (cluster start,
building, running, writing), timed side by side in this process.

    python bench/sweep.py --size 1000 --duration 0.2 --brian-runs 8 --workers 2 --torch-variants 32
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import simulate  # noqa: E402

from bridge.app import sweep  # noqa: E402


def timed_sweep(folder, base, runs, kind, scheduler, workers=None, batch=32):
    """Seconds a sweep of `runs` values of taum takes, and its table."""
    spec = {"base": str(base), "run": kind, "batch": batch,
            "vary": {"network.populations.P.model.parameters.taum": {"linspace": [18, 22, runs], "unit": "ms"}}}
    path = Path(folder) / f"{kind}_{scheduler}_{batch}.json"
    path.write_text(json.dumps(spec))
    start = time.perf_counter()
    table = sweep.run(path, Path(folder) / path.stem, scheduler=scheduler, workers=workers, progress=False)
    return time.perf_counter() - start, table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=0.2)
    parser.add_argument("--brian-runs", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--torch-variants", type=int, default=32)
    parser.add_argument("--out", default="bench/results/sweep")
    args = parser.parse_args()
    results = {"size": args.size, "duration_s": args.duration}
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder) / "cuba.json"
        base.write_text(simulate.simulation("cuba", args.size, args.duration).to_json())
        serial, serial_table = timed_sweep(folder, base, args.brian_runs, "brian2", "serial")
        cluster, cluster_table = timed_sweep(folder, base, args.brian_runs, "brian2", "local", args.workers)
        same = serial_table["P.spikes"].tolist() == cluster_table["P.spikes"].tolist()
        results["brian2"] = {"runs": args.brian_runs, "workers": args.workers, "serial_s": serial,
                             "cluster_s": cluster, "ratio": cluster / serial, "same_rows": same}
        print(f"{args.brian_runs} Brian2 runs: serial {serial:.1f} s, LocalCluster of {args.workers} workers "
              f"{cluster:.1f} s (ratio {cluster / serial:.2f}; rows equal: {same})", flush=True)
        separate, separate_table = timed_sweep(folder, base, args.torch_variants, "torch", "serial", batch=1)
        batched, batched_table = timed_sweep(folder, base, args.torch_variants, "torch", "serial")
        same = separate_table["P.spikes"].tolist() == batched_table["P.spikes"].tolist()
        results["torch"] = {"variants": args.torch_variants, "separate_s": separate, "batched_s": batched,
                            "ratio": batched / separate, "same_rows": same}
        print(f"{args.torch_variants} torch variants: one module each {separate:.1f} s, one batch {batched:.1f} s "
              f"(ratio {batched / separate:.3f}; rows equal: {same})", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json.partial").write_text(json.dumps(results, indent=1))
    (out / "results.json.partial").replace(out / "results.json")
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
