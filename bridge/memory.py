"""Memory a run will need, estimated by part of the description and checked before the work starts: a run that
would not fit is refused with the bytes it needs, naming its largest part. One model, checked at two moments:
- `lowering_bytes(simulation)`: the arrays lowering builds and either backend holds (bridge/plan.py checks them
  before it builds anything, on the machine that runs; a description itself loads the same everywhere);
- `torch_run_bytes(plan, batch, element_bytes, records, margins)`: what a torch forward pass of `batch` holds on top
  (checked by the module before its first step, against its device's free memory).
"""
import os

from bridge import checks
from bridge.errors import DescriptionError
from bridge.names import record_key

FLOAT64 = 8


def system_available_bytes():
    """The system's MemAvailable (free memory a new allocation can use)."""
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def refuse_beyond(parts, available, where):
    """Refuse work whose estimate {part of the description: bytes} exceeds `available` bytes on `where`."""
    needed = sum(parts.values())
    if needed > available:
        part, most = max(parts.items(), key=lambda item: item[1])
        raise DescriptionError(part, f"the run needs about {needed:,} bytes ({most:,} for this part), more than "
                                     f"the {available:,} bytes available on {where}; lower the batch size, the "
                                     "duration, the network or what is recorded")


def record_part(key, recording, n_steps, n, batch, element_bytes):
    """{part: bytes} of a Recording of an owner with n elements: (batch, rows, width) values."""
    return {f"RunSettings.record[{key!r}]": recording.rows(n_steps) * batch * recording.width(n) * element_bytes}


def lowering_bytes(simulation):
    """{part: bytes} of the arrays a run of this description builds in either backend, at least (float64): per
    synapse its indices, delays and values; per step and neuron the Poisson draws and the recorded traces; per
    neuron its state; per step of max_delay the ring of spikes in flight of dynamic delays."""
    net, run = simulation.network, simulation.run
    n_steps, size, parts = run.n_steps, FLOAT64, {}
    for proj in net.projections:
        per_synapse = 2 + len(proj.synapse.pathways()) + len(proj.values)
        parts[f"Projection {proj.name!r}"] = net.width(proj.name) * per_synapse * size
        if proj.delay_mode == "dynamic":  # a ring of spikes in flight, one row per step up to max_delay
            parts[f"Projection {proj.name!r}.max_delay"] = run.timing.delay_rule(proj).ring_bytes
    for source in net.sources:
        per_step = source.n if hasattr(source, "rate") else 0  # a Poisson source draws every step
        parts[f"{type(source).__name__} {source.name!r}.n"] = (n_steps * per_step + source.n) * size
    for poisson in net.poisson_inputs:
        parts.update(poisson.memory_bytes(n_steps, net.size(poisson.target)))
    for population in net.populations:
        variables = len(checks.variable_dims(population.model)) + 2  # with lastspike, not_refractory
        parts[f"Population {population.name!r}.n"] = population.n * variables * size
    for key in run.record:
        n = net.width(record_key(key)[0])
        parts.update(record_part(key, run.recording(key, n), n_steps, n, 1, size))
    return parts


def torch_run_bytes(plan, batch, element_bytes, records, margins=True, gradients=False):
    """{part: bytes} a torch forward pass of `batch` holds: per population its state and the spikes (and, where
    `margins`, the threshold margins) of every step (and the custom events recorded); per projection its event
    buffers (past events per neuron, or a per-synapse ring where delays change) and per-synapse values; the traces
    of `records` {key: Recording} (gradients' saved tensors come on top). Spikes and events take a byte each,
    floats where the run records `gradients`."""
    size, n_steps = element_bytes, plan.n_steps
    spike = size if gradients else 1  # bytes per neuron and step of spikes and events
    per_step = spike + (size if margins else 0)
    parts = {f"Population {name!r}": batch * p.n * (len(plan.code.populations[name].variables) * size +
                                                    n_steps * per_step) for name, p in plan.populations.items()}
    for name, proj in plan.projections.items():
        n_syn, sides = len(proj.i), {"source": proj.n_source, "target": proj.n_target}
        buffers = sum(proj.slots(pathway) * (n_syn if proj.changing(pathway) else sides[pathway_plan.side])
                      for pathway, pathway_plan in proj.pathways.items())
        per_synapse = batch * (len(proj.values) + len(plan.code.projections[name].unset)) + 4 * len(proj.pathways) + 2
        parts[f"Projection {name!r}"] = (batch * buffers + n_syn * per_synapse) * size
    for key, recording in records.items():
        parts.update(record_part(key, recording, n_steps, plan.width(recording.owner), batch, size))
    for key in plan.simulation.run.events:  # custom events logged as spikes are
        parts[f"RunSettings.events[{key!r}]"] = batch * plan.width(record_key(key)[0]) * n_steps * spike
    return parts
