"""Microseconds per step of the step-by-step module on Brian2's CUBA network, batch 1 against batch 32 (issue 31
target 4), for this checkout and optionally another, side by side: each measurement its own process, the
checkouts alternating, `--repeats` processes each; a process reports the best of three runs of
`forward(batch_size=..., margins=False)` after one warm-up run. Not a test.

    python bench/batch_steps.py --size 4000 --threads 1 2 [--compare-with /tmp/head] [--repeats 2]
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(size, batch, threads, duration):
    import torch

    import simulate  # bench/, beside this script
    import torch_models

    torch.set_num_threads(threads)
    module = torch_models.compile(simulate.simulation("cuba", size, duration), "stepwise", dtype="float32")
    runs = []
    with torch.no_grad():
        for _ in range(4):  # the first warms up
            started = time.perf_counter()
            module(batch_size=batch, margins=False)
            runs.append((time.perf_counter() - started) / module.n_steps * 1e6)
    print(json.dumps({"us_per_step": min(runs[1:]), "code": torch_models.__file__}))


def measure(checkout, size, batch, threads, duration):
    """One child process with `checkout` first on its path."""
    command = [sys.executable, __file__, "--child", str(size), str(batch), str(threads), str(duration)]
    environment = {**os.environ, "PYTHONPATH": f"{checkout}:{HERE}"}
    output = subprocess.run(command, capture_output=True, text=True, check=True, env=environment).stdout
    result = json.loads(output.strip().splitlines()[-1])
    if not result["code"].startswith(str(checkout)):
        raise SystemExit(f"{checkout}: the child imported {result['code']}")
    return result["us_per_step"]


def main():
    if sys.argv[1:2] == ["--child"]:
        size, batch, threads, duration = sys.argv[2:6]
        return child(int(size), int(batch), int(threads), float(duration))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--duration", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--compare-with", help="another checkout (e.g. a clone of an earlier commit)")
    args = parser.parse_args()
    checkouts = {"this checkout": HERE.parent, **({"compared": Path(args.compare_with)} if args.compare_with else {})}
    print("| threads | batch | " + " | ".join(checkouts) + " |\n|---|---:|" + "---|" * len(checkouts))
    for threads in args.threads:
        for batch in args.batches:
            times = {name: [] for name in checkouts}
            for _ in range(args.repeats):
                for name, checkout in checkouts.items():
                    times[name].append(measure(checkout, args.size, batch, threads, args.duration))
            print(f"| {threads} | {batch} | " + " | ".join(", ".join(f"{t:.0f}" for t in times[name])
                                                       for name in checkouts) + " |", flush=True)


if __name__ == "__main__":
    main()
