"""Import speed against Brian2's own build (issue 28): the time spikebridge takes to import a Brian2 script,
next to the time Brian2 takes to build the same network for its run (the script's construction, then the
preparation of the run: Brian2's run(0*second)), side by side in one process, after a warm-up of each (Brian2
caches code and state updaters by then, as in any later run of a session), on Brian2's numpy target. Not a
test.

    python bench/import_speed.py SCRIPT [SCRIPT ...] --repeats 5
"""
import argparse
import os
import runpy
import statistics
import sys
import time
import warnings
from pathlib import Path

import brian2

from bridge.app.brian2_scripts import from_brian2


def brian2_build(path):
    """Seconds Brian2 takes from the script's start to the first step of its first run: construction and the
    run's preparation (run() is cut to 0 s: code generation, namespaces, checks); the script stops there."""
    original = brian2.Network.run

    class Built(BaseException):
        pass

    def prepare(network, duration, *args, level=0, **kwargs):
        original(network, 0 * brian2.second, *args, level=level + 1, **kwargs)
        raise Built

    brian2.Network.run, cwd = prepare, os.getcwd()
    start = time.perf_counter()
    try:
        os.chdir(path.parent)
        brian2.start_scope()
        brian2.prefs.codegen.target = "numpy"  # spikebridge's Brian2 target (cython compiles, for minutes)
        runpy.run_path(str(path), run_name="__main__")
    except Built:
        return time.perf_counter() - start
    finally:
        brian2.Network.run = original
        os.chdir(cwd)
    raise SystemExit(f"error: {path}: the script never calls run()")


def spikebridge_import(path):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_brian2(path)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scripts", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print("| script | Brian2 build (s) | spikebridge import (s) | import / build |\n|---|---|---|---|")
    for path in args.scripts:
        path = path.resolve()
        brian2_build(path), spikebridge_import(path)  # warm-up
        builds, imports = [], []
        for _ in range(args.repeats):  # alternated, so that both see the same machine
            builds.append(brian2_build(path))
            imports.append(spikebridge_import(path))
        build, imported = statistics.median(builds), statistics.median(imports)
        print(f"| {path.name} | {build:.3f} | {imported:.3f} | {imported / build:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
