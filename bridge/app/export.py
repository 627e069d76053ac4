"""A description as a plain Brian2 script: the statements of its plan's Brian2 program (bridge/program.py),
printed, with Brian2's own noise (`spikebridge export MODEL --brian2 OUT.py`)."""
import inspect

import brian2

from bridge import brian_parse
from bridge.description import PoissonTrains
from bridge.errors import DescriptionError
from bridge.names import POISSON_INPUT_REGISTRY, POISSON_REGISTRY
from bridge.plan import lower
from bridge.program import program
from bridge.quantities import quantity_text, si_value


def to_brian2(simulation):
    """A plain Brian2 script (text) that runs `simulation` as spikebridge's Brian2 backend builds it (with
    Brian2's own noise), without spikebridge. Delays that change during a run are refused: a plain script has
    Brian2's static delays only (its issue #355)."""
    for proj in simulation.network.projections:
        if proj.delay_mode != "static":
            raise DescriptionError(f"Projection {proj.name!r}.delay_mode", f"{proj.delay_mode!r}: delays that change "
                                   "during a run need spikebridge's queue; a plain Brian2 script has 'static' only")
    for source in simulation.network.sources:
        if isinstance(source, PoissonTrains) and not isinstance(source.rate, str):
            raise DescriptionError(f"PoissonTrains {source.name!r}.rate", "a rate that changes in time: its "
                                   "import from an exported script is not written yet; export with a constant rate")
    for poisson in simulation.network.poisson_inputs:
        if not isinstance(poisson.weight, str):
            raise DescriptionError(f"PoissonInput {poisson.name!r}.weight", "a weight that changes in time: its "
                                   "import from an exported script is not written yet; export with a constant weight")
    plan = lower(simulation)
    code = program(plan, native=("noise",))
    net = simulation.network
    registries = {POISSON_REGISTRY: {s.name: (s.rate, s.seed) for s in net.sources if isinstance(s, PoissonTrains)},
                  POISSON_INPUT_REGISTRY: {p.name: p.registry_entry() for p in net.poisson_inputs}}
    registries = [f"{name} = {registry!r}" for name, registry in registries.items() if registry]
    spikes = [(p.name, brian_parse.monitor_name("spikes", p.name)) for p in plan.populations.values()
              if p.model.threshold]
    return "\n".join([
        '"""A spikebridge description written as a plain Brian2 script; it runs without spikebridge, and\n'
        '`spikebridge import` reads it back. Spike times and delays are whole steps of dt."""',
        "import numpy as np\nfrom brian2 import *\n",
        *(["# spikebridge's random inputs, read back by `spikebridge import`: PoissonTrains (rate, seed) and\n"
           "# PoissonInputs (variable, n, rate, weight, seed, start, stop), drawn by the functions below", *registries]
          if registries else []),
        *(f"\n{inspect.getsource(helper)}" for helper in code.helpers),
        code.text(), "", *_runs(plan, simulation.run),
        *(f"print({name!r}, {monitor}.num_spikes, 'spikes')" for name, monitor in spikes)]) + "\n"


def _runs(plan, run):
    """The run() calls of the segments, each after the values set as it starts."""
    durations = run.segments if isinstance(run.segments, tuple) else [quantity_text(
        si_value(run.duration, "RunSettings.duration") / run.segments, brian2.second.dim, "RunSettings.duration")] \
        * run.segments
    for start, duration in zip(plan.segment_starts, durations):
        yield from (change.statement() for change in plan.changes.get(start, []))
        yield f"run({duration})"
