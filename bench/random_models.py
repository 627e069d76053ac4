"""Random Brian2 scripts (tests/random_models.py), many seeds: each imported, cross-checked (float64) and
compared with the script's own run on Brian2's numpy target. Not a test (the suite runs a fixed few).

    python bench/random_models.py --seeds 0 200
"""
import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import brian2
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import random_models  # noqa: E402 (the generator lives with the tests)

from bridge.app.brian2_scripts import from_brian2  # noqa: E402
from bridge.app.paired import paired_run  # noqa: E402


def check(seed, folder):
    """'' when the script's import cross-checks identically and runs as the script itself, else why not."""
    text, keys = random_models.script(seed)
    path = Path(folder) / f"model_{seed}.py"
    path.write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        brian_record, torch_record, report = paired_run(from_brian2(path))
    if not (report.identical and report.passed):
        return f"backends differ: {report.first_divergence or report.traces}"
    brian2.prefs.codegen.target = "numpy"
    script = {}
    exec(compile(text, str(path), "exec"), script)
    for (monitor, variable), key in keys.items():
        if not np.array_equal(brian_record.traces[key], getattr(script[monitor], f"{variable}_").T):
            return f"{key} differs from the script's own run"
    return ""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs=2, type=int, default=(0, 100), metavar=("FIRST", "STOP"))
    args = parser.parse_args(argv)
    failures = {}
    with tempfile.TemporaryDirectory() as folder:
        for seed in tqdm(range(*args.seeds), desc="random models", unit="model"):
            failures.update({seed: why} for why in [check(seed, folder)] if why)
    print(f"{args.seeds[1] - args.seeds[0] - len(failures)} of {args.seeds[1] - args.seeds[0]} random models "
          f"identical in both backends and to the script's own run; failures: {failures or 'none'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
