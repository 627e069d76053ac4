"""Many independent runs of one network as a single description: copy b of every population, source and
projection, with source b driven by its own spike input. Brian2 runs one network at a time; a batch of
inputs (e.g. a test set) then costs one Brian2 run instead of one per sample. Neuron k of copy b is neuron
b*n + k of the replicated population."""
import dataclasses

import numpy as np

from bridge.description import SpikeTrains
from bridge.errors import DescriptionError


def _tile(value, copies):
    return value if isinstance(value, str) else np.tile(np.asarray(value, dtype=float).reshape(-1), copies)


def replicate(simulation, inputs):
    """`inputs` maps each spike source to spikes (copies, steps, n) of bool; returns the Simulation of all
    copies. Static delays only, no current injections."""
    net, dt = simulation.network, simulation.dt
    if net.currents:
        raise DescriptionError("Network.currents", "replicate() takes networks without current injections")
    if set(inputs) != {s.name for s in net.sources}:
        raise ValueError(f"inputs: {sorted(inputs)}; expected one array per source {[s.name for s in net.sources]}")
    copies = len(next(iter(inputs.values())))
    sources = []
    for source in net.sources:
        spikes = np.asarray(inputs[source.name], dtype=bool)
        if spikes.shape[0] != copies or spikes.shape[2] != source.n:
            raise ValueError(f"inputs[{source.name!r}]: shape {spikes.shape}; expected ({copies}, steps, {source.n})")
        copy, steps, neuron = np.nonzero(spikes)
        sources.append(SpikeTrains(source.name, copies * source.n, copy * source.n + neuron, steps * dt))
    populations = [dataclasses.replace(p, n=copies * p.n,
                                       initial={k: _tile(v, copies) for k, v in p.initial.items()})
                   for p in net.populations]
    projections = []
    for proj in net.projections:
        if proj.delay_mode != "static":
            raise DescriptionError(f"Projection {proj.name!r}.delay_mode", "replicate() takes static delays")
        n_source, n_target = net.width(proj.source), net.width(proj.target)  # copy b of synapse k: b*n + k
        i, j = proj.synapses(n_source, n_target)
        offsets = np.arange(copies)[:, None]
        projections.append(dataclasses.replace(
            proj, i=(offsets * n_source + i).reshape(-1), j=(offsets * n_target + j).reshape(-1),
            values={k: _tile(v, copies) for k, v in proj.values.items()}, delays=_tile(proj.delays, copies)))
    network = dataclasses.replace(net, populations=tuple(populations), sources=tuple(sources),
                                  projections=tuple(projections))
    return dataclasses.replace(simulation, network=network)


def split(traces, copies):
    """A replicated run's traces (steps, copies*n) as (copies, steps, n)."""
    steps = traces.shape[0]
    return np.asarray(traces).reshape(steps, copies, -1).transpose(1, 0, 2)
