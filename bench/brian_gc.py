"""What freezing long-lived objects out of the garbage collector saves on Brian2 runs (not a test).

Brian2's Network.run starts with a full gc.collect(); with torch and sympy loaded that scans ~300 k objects.
spikebridge freezes the objects alive at its first Brian2 run (bridge.brian_parse.freeze_long_lived_objects).
Run once as is and once with `--no-freeze` (each in its own process, since freezing cannot be undone):

    python bench/brian_gc.py --no-freeze && python bench/brian_gc.py
"""
import argparse
import gc
import time

import torch  # noqa: F401  (loaded, as in a paired run)

from bridge import brian_parse


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-freeze", action="store_true", help="Brian2 runs without the freeze")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    if args.no_freeze:
        brian_parse.freeze_long_lived_objects = lambda: None
    from bridge import library
    from brian_models import network

    simulation = library.scenario("lif", seed=3, duration="20*ms")
    network.run(simulation)  # the first run: code generation, and the freeze
    collections = []
    for _ in range(5):
        start = time.perf_counter()
        gc.collect()
        collections.append(time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(args.runs):
        network.run(simulation)
    print(f"{'no freeze' if args.no_freeze else 'freeze'}: gc.collect {1000 * min(collections):.1f} ms (best of 5), "
          f"{args.runs} Brian2 runs of 20 ms {time.perf_counter() - start:.2f} s, "
          f"{len(gc.get_objects())} objects tracked")


if __name__ == "__main__":
    main()
