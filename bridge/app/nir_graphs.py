"""NIR graphs (the Neuromorphic Intermediate Representation, package `nir`) in and out of descriptions.

NIR states its neurons in continuous time and no time step. spikebridge reads and writes them in the
discretisation that snnTorch and Norse use when they run a NIR graph: forward Euler at the step dt, with
inputs constant over a step, a spike counting 1 in the step it is emitted, and a reset to v_reset:

  LIF      v <- v + dt/tau*((v_leak - v) + r*x)                           spike: v > v_threshold
  CubaLIF  i_syn <- i_syn + dt/tau_syn*(w_in*x - i_syn);
           v <- v + dt/tau_mem*((v_leak - v) + r*i_syn)                   spike: v > v_threshold
  IF       v <- v + dt*r*x                                                spike: v > v_threshold
  LI       v <- v + dt/tau*((v_leak - v) + r*x)                           (no spikes: a read-out)

where x is the node's input in the step: the weighted spikes its Affine/Linear nodes bring, plus their biases.
In a description each node is a population whose update is an Operation run at the start of every step (the
statements above, then x = 0), and each Affine/Linear node one projection `x_post += w` per spiking node it
reads. Brian2's schedule delivers a step's spikes after every threshold of that step, so a node sees its input's
spikes one step later than snnTorch and Norse, which run feed-forward edges within the step: a node k neuron
nodes away from the input spikes k steps later (`depths`), and runs only from then on (its t_start), so that
biases and leaks do not act early. A node's recurrence (an edge back to itself through
an Affine, as snnTorch's RLeaky) takes one step in both.

Delay nodes before an Affine/Linear node delay each source neuron's spikes, after it each target's: the
projection's synaptic delays, rounded to whole steps as Brian2 rounds them; written back the same way (delays
that vary otherwise per synapse are refused). Not read (one line naming the node): convolutions, pooling, and
LI nodes feeding other nodes (their output is a voltage, not spikes). Norse reads an IF node as v <- v + x
whatever dt and r (the rule above at dt = 1 and r = 1), snnTorch 1.0.0 as a leaky neuron.
"""
from dataclasses import dataclass
import re

import numpy as np

from bridge.description import (Network, NeuronModel, Operation, Population, Projection, RunSettings, Simulation,
                                SpikeTrains, SynapseModel, Timing)
from bridge.errors import DescriptionError


@dataclass(frozen=True)
class NodeKind:
    """A NIR neuron node as a population: its parameters (per-neuron constants; `times` in seconds, `rates` in
    hertz), the Euler step of the node (statements), and whether it spikes (v > v_threshold, then v = v_reset)."""
    parameters: tuple
    update: str
    spikes: bool
    times: tuple
    states: tuple = ("v",)
    rates: tuple = ()

    def model(self):
        units = {name: "second" if name in self.times else "hertz" if name in self.rates else "1"
                 for name in self.parameters}
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
    "IF": NodeKind(("r", "v_threshold", "v_reset"), "v = v + awake*dt*r*(x + b)", True, (), rates=("r",)),
    "LI": NodeKind(("tau", "r", "v_leak"), "v = v + awake*dt/tau*((v_leak - v) + r*(x + b))", False, ("tau",)),
}
WEIGHTS = ("Affine", "Linear")
BRIAN2_LIF_NOTE = ("a LIF in Brian2's terms, written as the NIR LIF whose Euler step is its own; Brian2's reset "
                   "(after the synapses) erases input that reaches a neuron in the step it spikes, which NIR "
                   "keeps for the next step: the spikes agree until such a coincidence")
SYNAPSE = SynapseModel(model="w : 1", on_pre="x_post += w")
UPDATE_SUFFIX = "_step"


def _update(kind):
    """The node's step: from its first step on (t_start; before it, `awake` is 0), then its input cleared."""
    return "awake = int(t >= t_start)\n" + KINDS[kind].update + "\nx = 0"


def read(path):
    """The NIR graph in the file `path` (nested graphs flattened)."""
    import nir

    try:
        return _flat(nir.read(str(path), type_check=False))  # sizes are checked here, batch dimensions or not
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
    sizes = _sizes(nodes, edges, kinds, where)
    for a, b in edges:
        _check_edge(a, b, kinds, f"{where}: edge ({a!r}, {b!r})")
    projections, bias = _projections(nodes, edges, kinds, names, sizes, where)
    spikes = spikes or {}
    sources = tuple(SpikeTrains(names[name], sizes[name], *spikes.get(name, ((), ()))) for name in nodes
                    if kinds[name] == "Input")
    node_depths, dt_seconds = depths(graph), Timing(dt=dt).dt_seconds
    populations = tuple(_population(names[name], nodes[name], kind, sizes[name], bias[name],
                                    _t_start(node_depths[name], dt_seconds), f"{where}: node {name!r}")
                        for name, kind in kinds.items() if kind in KINDS)
    operations = tuple(Operation(names[name] + UPDATE_SUFFIX, names[name], _update(kind))
                       for name, kind in kinds.items() if kind in KINDS)
    record = tuple(f"{names[a]}.v" for a, b in edges if kinds[b] == "Output")
    network = Network(populations=populations, sources=sources, projections=projections,
                      operations=operations)
    return Simulation(network, RunSettings(duration, record=record, timing=Timing(dt=dt)))


def _population(name, node, kind, n, bias, t_start, where):
    """A NIR neuron node as a population in NIR form: at rest (v = v_leak; 0 without one), running from t_start."""
    initial = {field: _values(node, field, n, where) for field in KINDS[kind].parameters}
    initial.update(b=bias, t_start=np.full(n, t_start))
    if "v_leak" in initial:
        initial["v"] = initial["v_leak"]
    return Population(name, KINDS[kind].model(), n, initial)


FOLLOWERS = {"Input": ("Delay",) + WEIGHTS + tuple(KINDS), "spikes": ("Delay", "Output") + WEIGHTS + tuple(KINDS),
             "Delay": ("Delay",) + WEIGHTS + tuple(KINDS), "Affine": ("Delay",) + tuple(KINDS),
             "Linear": ("Delay",) + tuple(KINDS), "LI": ("Output",), "Output": ()}


def _check_edge(a, b, kinds, where):
    """Spikes (of an Input or a spiking node) go through Delay nodes, at most one Affine/Linear node, Delay
    nodes, into a neuron node; an Output reads a neuron node."""
    role = "spikes" if kinds[a] in KINDS and KINDS[kinds[a]].spikes else kinds[a]
    if kinds[b] not in FOLLOWERS[role]:
        raise DescriptionError(where, f"a {kinds[a]} node feeds a {kinds[b]} node; spikebridge reads spikes (Input "
                                      "or spiking nodes) through Delay nodes and one Affine/Linear node into neuron "
                                      "nodes, and Output nodes reading neuron nodes")


def _paths(edges, kinds, where):
    """(source, Delay nodes before the weights, weight node or None, Delay nodes after, target) for every way
    spikes go from an Input or spiking node to a neuron node."""
    paths = []

    def walk(source, node, before, weights, after):
        for target in (b for a, b in edges if a == node):
            if target in before + after:
                raise DescriptionError(f"{where}: node {target!r}", "a cycle of Delay nodes, with no neuron in it")
            if kinds[target] == "Delay":
                walk(source, target, before + (target,) * (weights is None), weights,
                     after + (target,) * (weights is not None))
            elif kinds[target] in WEIGHTS:
                walk(source, target, before, target, after)
            elif kinds[target] in KINDS:
                paths.append((source, before, weights, after, target))

    for source, kind in kinds.items():
        if kind == "Input" or kind in KINDS and KINDS[kind].spikes:
            walk(source, source, (), None, ())
    return paths


def _projections(nodes, edges, kinds, names, sizes, where):
    """The projections `x_post += w` of the graph, one per path (`_paths`; named as its weight node where it is
    that node's only one; weight 1 one to one where it has none), its delays the sums of the Delay nodes'
    before (per source) and after (per target) the weights, and {neuron node: the biases of the Affine nodes
    feeding it}."""
    bias = {name: np.zeros(sizes[name]) for name in nodes}
    paths = _paths(edges, kinds, where)
    for weights, target in {(weights, target) for _, _, weights, _, target in paths}:
        if getattr(nodes.get(weights), "bias", None) is not None:
            bias[target] = bias[target] + _values(nodes[weights], "bias", sizes[target], f"{where}: node {weights!r}")
    projections, taken = [], set(names.values())
    for source, before, weights, after, target in paths:
        n_source, n_target = sizes[source], sizes[target]
        if weights is None and n_source != n_target:
            raise DescriptionError(f"{where}: node {target!r}", f"{n_source} elements of {source!r} into {n_target} "
                                   "neurons without weights")
        alone = weights is not None and sum(path[2] == weights for path in paths) == 1
        name = names[weights] if alone else _identifier(f"{names[source]}_{names[weights or target]}", taken)
        taken.add(name)
        i, j = np.divmod(np.arange(n_source * n_target), n_target) if weights else (np.arange(n_source),) * 2
        delays = sum((_values(nodes[d], "delay", n_source, f"{where}: node {d!r}")[i] for d in before), 0 * i) + \
            sum((_values(nodes[d], "delay", n_target, f"{where}: node {d!r}")[j] for d in after), 0 * j)
        shaped = delays.reshape(n_source, n_target) if weights else delays  # a dense projection's layout
        timing = dict(delays=shaped, max_delay=f"{float(delays.max())!r}*second") if np.any(delays) else {}
        connection = dict(values={"w": np.asarray(nodes[weights].weight, dtype=float).T}) if weights else \
            dict(i=i, j=j, values={"w": "1"})
        projections.append(Projection(name, names[source], names[target], SYNAPSE, **connection, **timing))
    return tuple(sorted(projections, key=lambda projection: projection.name)), bias


def _kind(name, node, where):
    kind = type(node).__name__
    if kind not in ("Input", "Output", "Delay") + WEIGHTS + tuple(KINDS):
        raise DescriptionError(f"{where}: node {name!r}", f"{kind} is not read; spikebridge reads Input, Output, "
                               f"Delay, {', '.join(WEIGHTS)} and {', '.join(KINDS)} (bridge/app/nir_graphs.py)")
    return kind


def _sizes(nodes, edges, kinds, where):
    """{node: elements}: from the weights of the Affine/Linear nodes beside it (through Delay nodes), else from
    its parameters or its input's shape (an Affine/Linear node: its output's)."""
    sizes = {}

    def give(node, size, by):
        if sizes.setdefault(node, size) != size:
            raise DescriptionError(f"{where}: node {node!r}", f"{sizes[node]} elements by one node beside it, "
                                                              f"{size} by {by!r}")

    for name, kind in kinds.items():
        if kind in WEIGHTS:
            out_size, in_size = np.shape(nodes[name].weight)
            for a, b in edges:
                if b == name:
                    give(a, in_size, name)
                if a == name:
                    give(b, out_size, name)
    for _ in edges:  # a Delay node passes its size on, both ways (a weight node has one on each side)
        for a, b in edges:
            for delay, other in ((a, b), (b, a)):
                if kinds[delay] == "Delay" and delay in sizes and kinds[other] not in WEIGHTS:
                    give(other, sizes[delay], delay)
    for name, kind in kinds.items():
        if name not in sizes:
            sizes[name] = max(np.size(getattr(nodes[name], field)) for field in KINDS[kind].parameters) \
                if kind in KINDS else int(np.prod(nodes[name].input_type["input"]))
    return sizes


def _t_start(depth, dt):
    """A node's t_start: half a step before the first step it runs (its depth), clear of rounding."""
    return (depth - 0.5) * dt


def depths(graph):
    """{node: how many neuron nodes a spike crosses from an Input to it, itself included, along the shortest
    path (1 where none reaches it)}: the steps by which a node's spikes in a description come after snnTorch's
    and Norse's (where no other path is longer: a graph with skips has no single lag)."""
    nodes, edges = graph
    found = {name: 0 for name, node in nodes.items() if type(node).__name__ == "Input"}
    queue = list(found)
    for name in queue:  # breadth first: the queue grows as it is read
        for target in (b for a, b in edges if a == name and b not in found):
            found[target] = found[name] + (type(nodes[target]).__name__ in KINDS)
            queue.append(target)
    return {name: found.get(name, 1) for name in nodes}


def from_simulation(simulation):
    """The NIR graph of a description (anything NIR cannot hold refused in one line naming it): SpikeTrains as
    Input nodes; each population as its node, in NIR form (`to_simulation`'s) or a LIF in Brian2's own terms
    (`_brian2_lifs`, noted in the graph's metadata); each projection as a Linear node (an Affine where it carries
    its target's biases; a Delay node beside it where it has delays); an Output for each population that feeds
    no other."""
    import nir

    net, dt = simulation.network, simulation.run.timing.dt_seconds
    populations = {population.name: population for population in net.populations}
    nir_form = {name: _nir_form(population, net.operations) for name, population in populations.items()}
    brian2_lifs = _brian2_lifs(simulation, [name for name, kind in nir_form.items() if kind is None])
    _check_inputs_and_operations(net, [name for name, kind in nir_form.items() if kind])
    nodes = {source.name: nir.Input(input_type={"input": np.array([source.n])}) for source in net.sources}
    nodes.update({name: _node(populations[name], kind) if kind else nir.LIF(**brian2_lifs[name][1])
                  for name, kind in nir_form.items()})
    variables = {name: brian2_lifs[name][0] if name in brian2_lifs else "v" for name in populations}
    _check_at_rest(populations, variables, nodes)
    biases = {name: populations[name].initial_array("b") for name, kind in nir_form.items() if kind}
    edges = []
    for proj in net.projections:  # a target's biases go with the first projection into it
        chain = _projection_nodes(proj, net, nir_form, "x" if nir_form[proj.target] else variables[proj.target],
                                  biases.pop(proj.target, None), nodes)
        edges += list(zip(chain, chain[1:]))
    unfed = [name for name, bias in biases.items() if np.any(bias)]
    if unfed:
        raise DescriptionError(f"Population {unfed[0]!r}.initial['b']", "a bias without an input: NIR keeps biases "
                                                                         "in the Affine node that feeds a neuron node")
    for name, population in populations.items():
        if not any(proj.source == name != proj.target for proj in net.projections):
            nodes[name + "_output"] = nir.Output(output_type={"output": np.array([population.n])})
            edges.append((name, name + "_output"))
    _check_first_steps({name: populations[name] for name, kind in nir_form.items() if kind}, (nodes, edges), dt)
    notes = [f"population {name!r}: {BRIAN2_LIF_NOTE}" for name in brian2_lifs]
    return nir.NIRGraph(nodes, edges, metadata={"dt": dt, "discretisation": "\n\n".join(__doc__.split("\n\n")[1:4]),
                                                **({"notes": notes} if notes else {})})


def _check_inputs_and_operations(net, steps):
    """Inputs other than spike trains, and operations other than the steps of the populations `steps` (in NIR
    form), refused."""
    for field in ("currents", "poisson_inputs"):
        if getattr(net, field):
            raise DescriptionError(f"Network.{field}", f"{getattr(net, field)[0].name!r}: NIR has no such input; "
                                   "spikebridge writes spike trains (SpikeTrains) as NIR Input nodes")
    trains = [source.name for source in net.sources if not isinstance(source, SpikeTrains)]
    if trains:
        raise DescriptionError("Network.sources", f"{trains[0]!r}: NIR has no Poisson source; spikebridge writes "
                                                   "spike trains (SpikeTrains) as NIR Input nodes")
    extra = [op.name for op in net.operations if op.name not in {name + UPDATE_SUFFIX for name in steps}]
    if extra:
        raise DescriptionError(f"Operation {extra[0]!r}", "NIR has no code run on a schedule; spikebridge writes "
                                                          "only each node's own step")


def _nir_form(population, operations):
    """The NIR node kind whose form the population has (with its step among `operations`), or None."""
    for kind, node_kind in KINDS.items():
        step = Operation(population.name + UPDATE_SUFFIX, population.name, _update(kind))
        if population.model == node_kind.model() and step in operations:
            return kind
    return None


def _brian2_lifs(simulation, names):
    """{population: (variable, NIR LIF fields)} for the populations `names` written in Brian2's own terms
    whose step is v <- a v + c (a and c per neuron, the same at every step; any of Brian2's integrators), that
    spike at v > threshold and reset v = v_reset: the LIF whose Euler step is that update, tau = dt/(1 - a),
    v_leak = c/(1 - a), and r = a tau/dt, so that the jump w its synapses add after the threshold, which the next
    step decays by a, is NIR's input w in the step after. Any other population refused, named."""
    import torch

    from bridge.plan import lower
    from torch_models.population import compile_populations

    if not names:
        return {}
    dt = simulation.run.timing.dt_seconds
    groups = compile_populations(lower(simulation), torch.float64)
    lifs = {}
    for name in names:
        lifs[name] = _affine_lif(groups[name], dt)
        if lifs[name] is None:
            raise DescriptionError(f"Population {name!r}", "its model is none of NIR's nodes: NIR holds a LIF "
                                   "(one variable whose step is affine, a threshold v > value, a reset v = value) "
                                   f"and, in the form `spikebridge import NET.nir` writes, {', '.join(KINDS)}; not "
                                   "other equations, conductances, refractoriness or plasticity")
    return lifs


def _affine_lif(group, dt):
    """(variable, NIR LIF fields) of a PopulationStep as `_brian2_lifs` says, probed at v = 0, 1 and -3 at two
    times; None where it is not one."""
    import torch

    model = group.population.model
    if model.refractory or model.events or group.margin is None:
        return None
    state = group.initial_state(1, "cpu")
    moved = {var: value + 1 if group.variables.get(var) == "float" else value for var, value in state.items()}
    changed = [var for var, value in group.integrate(dict(moved), 0.0, dt).items()
               if not torch.equal(value, moved[var])]  # probed off any rest
    if len(changed) != 1:
        return None
    (var,) = changed
    at = lambda value: {**state, var: torch.full_like(state[var], value)}
    after = {(t, x): group.integrate(at(x), t, dt)[var][0].numpy() for t in (0.0, 3 * dt) for x in (0.0, 1.0, -3.0)}
    c, a = after[0.0, 0.0], after[0.0, 1.0] - after[0.0, 0.0]
    margin = lambda x: torch.as_tensor(group.margin(group._scope(at(x), 0.0, dt)), dtype=torch.float64).expand(1, -1)
    slope, threshold = (margin(1.0) - margin(0.0))[0].numpy(), -margin(0.0)[0].numpy()
    reset = [group.apply_reset(at(x), 0.0, dt, torch.ones_like(state[var], dtype=torch.bool))[var][0].numpy()
             for x in (0.0, 1.0)]
    affine = all(np.allclose(value, c + a * x, rtol=1e-9, atol=0) for (_, x), value in after.items())
    if not (affine and np.all(a > 0) and np.all(a < 1) and np.all(slope == 1) and np.array_equal(*reset)
            and model.threshold.replace(" ", "").startswith(f"{var}>") and ">=" not in model.threshold):
        return None
    tau = dt / (1 - a)
    return var, {"tau": tau, "r": a * tau / dt, "v_leak": c / (1 - a), "v_threshold": threshold,
                 "v_reset": reset[0]}


def _node(population, kind):
    import nir

    values = {field: population.initial_array(field) for field in KINDS[kind].parameters}
    return getattr(nir, kind)(**values)


def _projection_nodes(proj, net, nir_form, variable, bias, nodes):
    """A projection `<variable>_post += w` from a source or spiking node as a Linear node (an Affine with `bias`)
    named as it, and a Delay node before it (delays per source) or after it (per target) where it has delays,
    added to `nodes`; returns the chain of node names from its source to its target."""
    import nir

    where = f"Projection {proj.name!r}"
    synapse = proj.synapse
    if (not isinstance(synapse.on_pre, str) or synapse.on_pre.strip() != f"{variable}_post += w" or synapse.on_post
            or synapse.on_event
            or re.fullmatch(r"\s*w\s*:\s*\w+\s*", synapse.model) is None):
        raise DescriptionError(f"{where}.synapse", f"NIR's Affine/Linear nodes add weights to the input: give "
                               f"model 'w : <unit>' and on_pre '{variable}_post += w', nothing else")
    if nir_form.get(proj.source) and not KINDS[nir_form[proj.source]].spikes:
        raise DescriptionError(f"{where}.source", f"{proj.source!r} is an LI node: its output is a voltage")
    n_source, n_target = net.width(proj.source), net.width(proj.target)
    i, j = proj.synapses(n_source, n_target)
    if len(set(zip(i.tolist(), j.tolist()))) < len(i):
        raise DescriptionError(f"{where}.i", "two synapses join one pair; a NIR weight matrix holds one")
    weight = np.zeros((n_target, n_source))
    weight[j, i] = proj.value_array("w", len(i))
    nodes[proj.name] = nir.Linear(weight) if bias is None else nir.Affine(weight, bias)
    chain = [proj.source, proj.name, proj.target]
    delays = _delays(proj, i, j, n_source, n_target)
    if delays:
        side, per_element = delays
        nodes[proj.name + "_delay"] = nir.Delay(per_element)
        chain.insert(1 if side == "before" else 2, proj.name + "_delay")
    return chain


def _delays(proj, i, j, n_source, n_target):
    """('before', per-source delays) or ('after', per-target delays) of a projection's synapses (i, j); None
    where it has none; delays that vary otherwise refused."""
    where = f"Projection {proj.name!r}.delays"
    if proj.delay_mode != "static":
        raise DescriptionError(where, f"delay_mode {proj.delay_mode!r}: a NIR Delay node holds static delays")
    delays = proj.delay_array(len(i))
    if not np.any(delays):
        return None
    for side, index, n in (("before", i, n_source), ("after", j, n_target)):
        per_element = np.zeros(n)
        per_element[index] = delays
        if np.array_equal(per_element[index], delays):
            return side, per_element
    raise DescriptionError(where, "they vary from synapse to synapse; a NIR Delay node delays each element of its "
                                  "input: one delay per source neuron or one per target neuron")


def _check_at_rest(populations, variables, nodes):
    """Each neuron must start at v_leak (rest; 0 for an IF node), where a NIR graph starts (it holds no state)."""
    for name, population in populations.items():
        rest = getattr(nodes[name], "v_leak", 0.0)
        if not np.allclose(population.initial_array(variables[name]), rest, rtol=1e-12, atol=0):
            raise DescriptionError(f"Population {name!r}.initial[{variables[name]!r}]", "a NIR graph holds no state "
                                   "and starts each node at rest; give v_leak")


def _check_first_steps(populations, graph, dt):
    """Each node's t_start must be the one its depth gives: NIR cannot hold another."""
    node_depths = depths(graph)
    for name, population in populations.items():
        expected = _t_start(node_depths[name], dt)
        if not np.all(population.initial_array("t_start") == expected):
            raise DescriptionError(f"Population {name!r}.initial['t_start']", f"NIR reads it back as {expected!r} s "
                                   "(half a step before the node's depth in the graph), for every neuron")


def write(path, graph):
    """A NIR graph written atomically (nir.write's HDF5 file)."""
    import nir

    from bridge.app.files import atomic

    with atomic(path) as temporary:
        nir.write(str(temporary), graph)


def input_spikes(path, graph, dt):
    """{Input node: (indices, times in seconds)} from the .npz file `path`, one (steps, elements) raster of 0s and
    1s per Input node (as snnTorch and Norse take input, time first), named as the node."""
    nodes, _ = graph
    with np.load(path) as arrays:
        rasters = dict(arrays)
    unknown = sorted(set(rasters) - {name for name, node in nodes.items() if type(node).__name__ == "Input"})
    if unknown:
        raise DescriptionError(f"{path}: arrays {unknown}", "name no Input node of the graph")
    spikes = {}
    for name, raster in rasters.items():
        if raster.ndim != 2 or not np.isin(raster, (0, 1)).all():
            raise DescriptionError(f"{path}: array {name!r}", f"shape {raster.shape}: give (steps, elements) of 0s "
                                                              "and 1s (spikes; graded inputs are not read)")
        steps, indices = np.nonzero(raster)
        spikes[name] = (indices.tolist(), (steps * dt).tolist())
    return spikes, max((len(raster) for raster in rasters.values()), default=0)


def load(path, dt, duration=None, spikes_path=None):
    """The Simulation of the NIR file `path` at `dt` (a quantity string), driven by the rasters of
    `spikes_path` (.npz, `input_spikes`), run for `duration` (default: the rasters' steps, plus the steps the
    deepest node lags behind them)."""
    graph = read(path)
    dt_seconds = Timing(dt=dt).dt_seconds
    spikes, steps = input_spikes(spikes_path, graph, dt_seconds) if spikes_path else ({}, 0)
    if duration is None:
        if not steps:
            raise DescriptionError(f"{path}: duration", "give --duration (no input rasters to take it from)")
        duration = f"{(steps + max(depths(graph).values())) * dt_seconds!r}*second"
    return to_simulation(graph, dt, duration, spikes, where=str(path))
