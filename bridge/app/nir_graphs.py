"""NIR graphs (the Neuromorphic Intermediate Representation, package `nir`) in and out of descriptions.

NIR states its neurons in continuous time and no time step. spikebridge reads and writes them in the
discretisation that snnTorch and Norse use when they run a NIR graph: forward Euler at the step dt, with
inputs constant over a step, a spike counting 1 in the step it is emitted, and a reset to v_reset:

  LIF      v <- v + dt/tau*((v_leak - v) + r*x)                           spike: v > v_threshold
  CubaLIF  i_syn <- i_syn + dt/tau_syn*(w_in*x - i_syn);
           v <- v + dt/tau_mem*((v_leak - v) + r*i_syn)                   spike: v > v_threshold
  LI       v <- v + dt/tau*((v_leak - v) + r*x)                           (no spikes: a read-out)

where x is the node's input in the step: the weighted spikes its Affine/Linear nodes bring, plus their biases.
In a description each node is a population whose update is an Operation run at the start of every step (the
statements above, then x = 0), and each Affine/Linear node one projection `x_post += w` per spiking node it
reads. Brian2's schedule delivers a step's spikes after every threshold of that step, so a node sees its input's
spikes one step later than snnTorch and Norse, which run feed-forward edges within the step: a node k neuron
nodes away from the input spikes k steps later (`depths`). A node's recurrence (an edge back to itself through
an Affine, as snnTorch's RLeaky) takes one step in both.

Not read (one line naming the node): IF (Norse adds the input per step, snnTorch runs it as a leaky neuron), a
Delay, convolutions, pooling, and LI nodes feeding other nodes (their output is a voltage, not spikes).
"""
from dataclasses import dataclass
import re

import numpy as np

from bridge.description import (Network, NeuronModel, Operation, Population, Projection, RunSettings, Simulation,
                                SpikeTrains, SynapseModel, Timing)
from bridge.errors import DescriptionError


@dataclass(frozen=True)
class NodeKind:
    """A NIR neuron node as a population: its parameters (per-neuron constants; `times` in seconds), the Euler
    step of the node (statements), and whether it spikes (v > v_threshold, then v = v_reset)."""
    parameters: tuple
    update: str
    spikes: bool
    times: tuple
    states: tuple = ("v",)

    def model(self):
        units = {name: "second" if name in self.times else "1" for name in self.parameters}
        lines = [f"{state} : 1" for state in self.states] + ["x : 1  # the step's input", "b : 1 (constant)",
                                                             "t_start : second (constant)"]
        lines += [f"{name} : {unit} (constant)" for name, unit in units.items()]
        return NeuronModel("\n".join(lines), threshold="v > v_threshold" if self.spikes else "",
                           reset="v = v_reset" if self.spikes else "", method="euler")


KINDS = {
    "LIF": NodeKind(("tau", "r", "v_leak", "v_threshold", "v_reset"),
                    "v = v + awake*dt/tau*((v_leak - v) + r*(x + b))", True, ("tau",)),
    "CubaLIF": NodeKind(("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
                        "i_syn = i_syn + awake*dt/tau_syn*(w_in*(x + b) - i_syn)\n"
                        "v = v + awake*dt/tau_mem*((v_leak - v) + r*i_syn)", True, ("tau_syn", "tau_mem"),
                        ("v", "i_syn")),
    "LI": NodeKind(("tau", "r", "v_leak"), "v = v + awake*dt/tau*((v_leak - v) + r*(x + b))", False, ("tau",)),
}
WEIGHTS = ("Affine", "Linear")
SYNAPSE = SynapseModel(model="w : 1", on_pre="x_post += w")
UPDATE_SUFFIX = "_step"


def _update(kind):
    """The node's step: from its first step on (t_start; before it, `awake` is 0), then its input cleared."""
    return "awake = int(t >= t_start)\n" + KINDS[kind].update + "\nx = 0"


def read(path):
    """The NIR graph in the file `path` (nested graphs flattened)."""
    import nir

    try:
        return _flat(nir.read(str(path)))
    except (OSError, KeyError, ValueError) as error:
        raise DescriptionError(str(path), f"not a NIR file nir {nir.__version__} reads ({error})") from None


def _flat(graph, prefix=""):
    """(nodes, edges) of a graph whose subgraphs are spliced in: a subgraph's Input and Output nodes vanish,
    their neighbours joined."""
    import nir

    nodes, edges = {}, []
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = _flat(node, f"{prefix}{name}.")
            nodes.update(sub_nodes)
            edges += sub_edges
        else:
            nodes[prefix + name] = node
    edges += [(prefix + a, prefix + b) for a, b in graph.edges]
    if not prefix:
        return nodes, edges
    for name in [n for n, node in nodes.items() if isinstance(node, (nir.Input, nir.Output))]:
        before = [a for a, b in edges if b == name]
        after = [b for a, b in edges if a == name]
        edges = [(a, b) for a, b in edges if name not in (a, b)] + [(a, b) for a in before for b in after]
        del nodes[name]
    return nodes, edges


def _identifier(name, taken):
    """A description name for the NIR node `name` ('3.lif' -> 'n3_lif')."""
    base = re.sub(r"\W", "_", name)
    base = base if base.isidentifier() and not base.startswith("_") else "n" + base
    candidate, k = base, 1
    while candidate in taken:
        candidate, k = f"{base}_{k}", k + 1
    return candidate


def _values(node, field, n, where):
    """A node's parameter as n per-neuron floats (a scalar is broadcast; any other shape refused)."""
    values = np.asarray(getattr(node, field), dtype=float).reshape(-1)
    if values.size not in (1, n):
        raise DescriptionError(f"{where}.{field}", f"{values.size} values for {n} neurons; give 1 or {n}")
    if not np.isfinite(values).all():
        raise DescriptionError(f"{where}.{field}", "values must be finite numbers")
    return np.broadcast_to(values, (n,)).copy()


def to_simulation(graph, dt="0.1*ms", duration="10*ms", spikes=None, where="NIR graph"):
    """A Simulation of the NIR graph (nodes, edges) run for `duration` at `dt` (quantity strings), its Input
    nodes driven by `spikes` {input node: (indices, times in seconds)} (none where not given); the v of every
    neuron node an Output reads is recorded (spikes always are)."""
    nodes, edges = graph
    kinds = {name: _kind(name, node, where) for name, node in nodes.items()}
    names = {}
    for name in nodes:
        names[name] = _identifier(name, set(names.values()))
    sizes = _sizes(nodes, edges, kinds)
    bias, projections = {name: np.zeros(sizes[name]) for name in nodes}, []
    taken = set(names.values())
    for a, b in edges:
        at = f"{where}: edge ({a!r}, {b!r})"
        if kinds[b] == "Output" and kinds[a] not in KINDS:
            raise DescriptionError(at, f"an Output reads a {kinds[a]} node; spikebridge records neuron nodes")
        if kinds[b] in WEIGHTS + tuple(KINDS) and not (kinds[a] == "Input" or KINDS.get(kinds[a], KINDS["LI"]).spikes
                                                      or kinds[a] in WEIGHTS and kinds[b] in KINDS):
            raise DescriptionError(at, f"a {kinds[a]} node feeds a {kinds[b]} node; spikebridge reads spikes (Input "
                                       "or spiking nodes) into Affine/Linear nodes, and those into neuron nodes")
        if kinds[b] in KINDS and kinds[a] in WEIGHTS:
            node = nodes[a]
            if getattr(node, "bias", None) is not None:
                bias[b] = bias[b] + _values(node, "bias", sizes[b], f"{where}: node {a!r}")
            for source in (s for s, t in edges if t == a):
                projections.append(Projection(_identifier(f"{names[source]}_to_{names[b]}", taken),
                                              names[source], names[b], SYNAPSE,
                                              values={"w": np.asarray(node.weight, dtype=float).T}))
                taken.add(projections[-1].name)
        elif kinds[b] in KINDS:  # spikes straight into a neuron node: weight 1, one to one
            if sizes[a] != sizes[b]:
                raise DescriptionError(at, f"{sizes[a]} elements into {sizes[b]} neurons without weights")
            projections.append(Projection(_identifier(f"{names[a]}_to_{names[b]}", taken), names[a], names[b],
                                          SYNAPSE, i=range(sizes[a]), j=range(sizes[a]), values={"w": "1"}))
            taken.add(projections[-1].name)
    spikes = spikes or {}
    sources = tuple(SpikeTrains(names[name], sizes[name], *spikes.get(name, ((), ()))) for name in nodes
                    if kinds[name] == "Input")
    first_steps, dt_seconds = depths(graph), Timing(dt=dt).dt_seconds
    populations = tuple(Population(names[name], KINDS[kind].model(), sizes[name],
                                   {**_parameters(nodes[name], kind, sizes[name], f"{where}: node {name!r}"),
                                    "b": bias[name], "t_start": np.full(sizes[name], (first_steps.get(name, 1) - 0.5) * dt_seconds)})
                        for name, kind in kinds.items() if kind in KINDS)
    operations = tuple(Operation(names[name] + UPDATE_SUFFIX, names[name], _update(kind))
                       for name, kind in kinds.items() if kind in KINDS)
    record = tuple(f"{names[a]}.v" for a, b in edges if kinds[b] == "Output")
    network = Network(populations=populations, sources=sources, projections=tuple(projections),
                      operations=operations)
    return Simulation(network, RunSettings(duration, record=record, timing=Timing(dt=dt)))


def _kind(name, node, where):
    kind = type(node).__name__
    if kind not in ("Input", "Output") + WEIGHTS + tuple(KINDS):
        raise DescriptionError(f"{where}: node {name!r}", f"{kind} is not read; spikebridge reads Input, Output, "
                               f"{', '.join(WEIGHTS)} and {', '.join(KINDS)} (bridge/app/nir_graphs.py says why)")
    return kind


def _sizes(nodes, edges, kinds):
    """{node: elements}: from the weights of the Affine/Linear nodes beside it, else from its parameters or
    its input's shape (an Affine/Linear node: its output's)."""
    sizes = {}
    for name, kind in kinds.items():
        if kind in WEIGHTS:
            out_size, in_size = np.shape(nodes[name].weight)
            sizes.update({a: in_size for a, b in edges if b == name})
            sizes.update({b: out_size for a, b in edges if a == name})
    for name, kind in kinds.items():
        if name not in sizes:
            sizes[name] = max(np.size(getattr(nodes[name], field)) for field in KINDS[kind].parameters) \
                if kind in KINDS else int(np.prod(nodes[name].input_type["input"]))
    return sizes


def _parameters(node, kind, n, where):
    return {field: _values(node, field, n, where) for field in KINDS[kind].parameters}


def depths(graph):
    """{node: how many neuron nodes a spike crosses from an Input to it, itself included, along the shortest
    path}: the steps by which a node's spikes in a description come after snnTorch's and Norse's (where no
    other path is longer: a graph with skips has no single lag)."""
    nodes, edges = graph
    found = {name: 0 for name, node in nodes.items() if type(node).__name__ == "Input"}
    queue = list(found)
    for name in queue:  # breadth first: the queue grows as it is read
        for target in (b for a, b in edges if a == name and b not in found):
            found[target] = found[name] + (type(nodes[target]).__name__ in KINDS)
            queue.append(target)
    return found
