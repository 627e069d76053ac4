"""Files the project writes: atomically (a temporary file beside the target, renamed over it once complete, so
that an interrupted or failed write never leaves a partial or stale-looking file), JSON with its non-finite
numbers written as null (NaN is not JSON), and the results of an earlier run removed before a new one starts."""
import contextlib
import json
import math
import os
import warnings
from pathlib import Path

from bridge.app.interrupts import raise_if_lost


@contextlib.contextmanager
def atomic(path):
    """A temporary path beside `path`, renamed to `path` when the block completes; removed if it fails, or if a
    Ctrl-C was lost meanwhile (bridge/app/interrupts.py: KeyboardInterrupt then)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp{path.suffix}")  # the suffix kept: writers read the format from it
    try:
        yield temporary
        raise_if_lost()  # a Ctrl-C Python lost stops the run before its result is written
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path, text):
    with atomic(path) as temporary:
        temporary.write_text(text)


def json_text(data):
    """JSON of `data`; NaN and infinities written as null, with a warning naming where they were."""
    nonfinite = []

    def finite(value, where):
        if isinstance(value, float) and not math.isfinite(value):
            nonfinite.append(where or "(top level)")
            return None
        if isinstance(value, dict):
            return {key: finite(item, f"{where}.{key}".lstrip(".")) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(item, f"{where}[{k}]") for k, item in enumerate(value)]
        return value

    text = json.dumps(finite(data, ""), indent=1, allow_nan=False)
    if nonfinite:
        warnings.warn(f"{len(nonfinite)} values are NaN or infinite, written as null: {', '.join(nonfinite[:5])}",
                      stacklevel=2)
    return text


def write_json(path, data):
    write_text(path, json_text(data))


def remove_stale(folder, *names):
    """Remove an earlier run's results from `folder` before this run writes its own."""
    for name in names:
        (Path(folder) / name).unlink(missing_ok=True)


def versions():
    """The library versions an experiment's results.json records."""
    import brian2
    import numpy
    import torch
    return {"brian2": brian2.__version__, "torch": torch.__version__, "numpy": numpy.__version__}


def write_neo(path, block):
    """A neo.Block written atomically as a Neo pickle (neo.io.PickleIO(path).read_block() reads it back)."""
    from neo.io import PickleIO

    with atomic(path) as temporary:
        PickleIO(str(temporary)).write_block(block)
