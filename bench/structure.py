"""Time of each stage of a paired run (lowering, Brian2 build and run, torch build and run) for library models,
this checkout against another one side by side (issue 27: the restructuring must not slow anything). Not a test.

Each checkout runs in its own process, the models in turn, each stage timed once after a warm-up run (Brian2's
state updaters and code are cached by then, as in any later run of a session).

    python bench/structure.py --compare-with /tmp/base --models lif coincidence delay_circuit spiking_net
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def stages(model):
    """{stage: seconds} of one paired run of a library model's scenario, after a warm-up run."""
    import torch

    import bridge
    from bridge import library
    from bridge.plan import lower
    if (Path(bridge.__file__).parent / "app").exists():
        from bridge.app.paired import backends
    else:  # a checkout from before bridge/app (an editable install would find this checkout's bridge.app)
        from bridge.paired import backends
    run_brian, _ = backends()
    import torch_models
    compile_stepwise = lambda plan: torch_models.compile(plan, "stepwise")
    simulation = library.scenario(model)
    for _ in range(2):  # the first pass warms Brian2's caches
        times, start = {}, time.perf_counter()
        plan = lower(simulation)
        times["lower"] = time.perf_counter() - start
        start = time.perf_counter()
        run_brian(plan)
        times["brian2 build+run"] = time.perf_counter() - start
        start = time.perf_counter()
        module = compile_stepwise(plan)
        times["torch build"] = time.perf_counter() - start
        start = time.perf_counter()
        with torch.no_grad():
            module()
        times["torch run"] = time.perf_counter() - start
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lif", "coincidence", "delay_circuit", "spiking_net"])
    parser.add_argument("--compare-with", metavar="CHECKOUT", help="another checkout, run side by side")
    parser.add_argument("--child", nargs=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(stages(args.child[0])))
        return
    codes = [str(Path(__file__).parents[1])] + ([str(Path(args.compare_with).resolve())] if args.compare_with else [])
    for model in args.models:
        for code in codes:
            done = subprocess.run([sys.executable, __file__, "--child", model], capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": code}, cwd=code)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            result = json.loads(lines[-1][7:]) if lines else {"error": done.stderr.strip().splitlines()[-1:]}
            print(json.dumps({"model": model, "code": code, **{k: round(v, 3) if isinstance(v, float) else v
                                                                for k, v in result.items()}}), flush=True)


if __name__ == "__main__":
    main()
