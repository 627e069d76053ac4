"""The description's naming conventions, decoded here only: record keys `"owner.variable"` (with a selection of
elements `[0, 5, 10:20]` and a period `every 1*ms`, as Brian2's StateMonitor(record=..., dt=...)), the neuron
variables synaptic code names with a suffix (`x_post` of the target, `x_pre` of the source), and the names
under which an exported Brian2 script lists spikebridge's random inputs for its import."""
import re

import numpy as np

NEURON_SIDES = {"_post": "target", "_pre": "source"}
POISSON_REGISTRY = "SPIKEBRIDGE_POISSON"  # {name: (rate, seed)} of PoissonTrains
POISSON_INPUT_REGISTRY = "SPIKEBRIDGE_POISSON_INPUTS"  # {name: (variable, n, rate, weight, seed)} of PoissonInputs


_RECORD_KEY = re.compile(r"\s*(\w+)\.(\w+)\s*(?:\[([^\]]*)\])?\s*(?:every\s+(\S.*?))?\s*")


def record_key(key):
    """'owner.variable' (or 'owner.variable[selection] every period') -> (owner, variable)."""
    return record_parts(key)[:2]


def record_parts(key):
    """A record key's (owner, variable, selection text, period text), '' for the parts it omits; ('', '', '', '')
    when it is not of that form."""
    match = _RECORD_KEY.fullmatch(key)
    return tuple(part or "" for part in match.groups()) if match else ("", "", "", "")


def selected_indices(selection, n):
    """The element indices a selection names ('0, 3, 10:20, 0:100:10', Python's slices of range(n)), in its
    order; a ValueError names what is out of range."""
    indices = []
    for item in selection.split(","):
        bounds = item.split(":")
        if len(bounds) > 3 or not all(bound.strip().lstrip("-").isdigit() or bound.strip() == "" for bound in bounds):
            raise ValueError(f"{item.strip()!r} is neither an index nor a slice start:stop:step")
        if len(bounds) == 1:
            index = int(bounds[0])
            if not 0 <= index < n:
                raise ValueError(f"index {index} is out of range 0 .. {n - 1}")
            indices.append(index)
        else:
            indices += range(n)[slice(*(int(bound) if bound.strip() else None for bound in bounds))]
    if not indices:
        raise ValueError("selects no element")
    return np.asarray(indices, dtype=np.int64)


def neuron_variable(name):
    """A name in synaptic code: ('target', x) for `x_post`, ('source', x) for `x_pre`, None otherwise."""
    for suffix, side in NEURON_SIDES.items():
        if name.endswith(suffix):
            return side, name[:-len(suffix)]
    return None


def side_variable(side, name):
    """The name synaptic code gives variable `name` of the 'target' or 'source' neurons (inverse of
    neuron_variable)."""
    return name + next(suffix for suffix, named in NEURON_SIDES.items() if named == side)


def delay_owner(delay_variable):
    """Where a projection's delay variable lives: (side, variable), side 'target', 'source' or 'synapse'."""
    return neuron_variable(delay_variable) or ("synapse", delay_variable)


def selection_text(indices):
    """Indices as a selection that selected_indices reads back: a slice 'start:stop[:step]' for a progression
    of three or more, the indices separated by commas otherwise."""
    indices = [int(index) for index in indices]
    step = indices[1] - indices[0] if len(indices) > 2 else 0
    if step > 0 and indices == list(range(indices[0], indices[-1] + 1, step)):
        return f"{indices[0]}:{indices[-1] + 1}" + (f":{step}" if step > 1 else "")
    return ", ".join(map(str, indices))
