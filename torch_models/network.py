"""A Simulation compiled to a batched torch module that follows Brian2's schedule step by step.

Per step (Brian2's default schedule): record state ('start'); set injected currents; state update with the
refractory check ('groups', formulas from Brian2's own state updaters); thresholds and spike sources;
synapses (each pre pathway pushes this step's spikes into a ring buffer at slot step + delay, then
delivers the current slot; post pathways after); resets. Tensors are (batch, neurons) or (batch, synapses).
"""
import ast
import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from bridge import brian_parse
from bridge.errors import DescriptionError
from bridge.quantities import si_value
from bridge.record import Record
from torch_models.codegen import apply_op, compile_block, compile_expression, functions, unit_constants
from torch_models.surrogate import superspike

LASTSPIKE_NEVER = -1e4  # seconds: Brian2's initial lastspike


def _constants(parameters, names):
    """SI values of the named parameters and units an expression reads."""
    values = {name: si_value(parameters[name], name) for name in names if name in parameters}
    values.update(unit_constants(set(names) - set(values)))
    return values


def _names(statements):
    return set().union(*[s.names for s in statements])


def _margin_expression(threshold):
    """For a threshold `a > b` (or >=, <, <=): how far past it the neuron is, as expression text."""
    node = ast.parse(threshold.strip(), mode="eval").body
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, right = ast.unparse(node.left), ast.unparse(node.comparators[0])
        if isinstance(node.ops[0], (ast.Gt, ast.GtE)):
            return f"({left}) - ({right})"
        if isinstance(node.ops[0], (ast.Lt, ast.LtE)):
            return f"({right}) - ({left})"
    return None


class GroupStep:
    """One population: its state update, threshold and reset, compiled from Brian2's abstract code."""

    def __init__(self, population, brian_group, dtype):
        self.name, self.n, self.dtype, self.population = population.name, population.n, dtype, population
        model = population.model
        runners = [brian_group.state_updater]
        if model.threshold:
            runners.append(brian_group.thresholder["spike"])
        if model.threshold and model.reset:
            runners.append(brian_group.resetter["spike"])
        for runner in runners:
            runner.update_abstract_code(run_namespace={})
        where, table = f"population {self.name!r}", functions(dtype)
        blocks = [compile_block(r.abstract_code, where, table) for r in runners] + [[], []]
        self.update, self.threshold, self.reset = blocks[:3]
        margin = _margin_expression(model.threshold) if model.threshold else None
        self.margin, self.margin_names = compile_expression(margin, where, table) if margin else (None, frozenset())
        self.variables = {name: brian_group.variables[name] for name in brian_group.equations.names}
        self.conditional = {n for n, v in self.variables.items() if v.conditional_write is not None}
        self.constants = _constants(model.parameters,
                                    _names(self.update + self.threshold + self.reset) | self.margin_names)
        self.index = None  # the neuron index i, on the device of the state
        self.surrogate = superspike  # spike function with a surrogate gradient (torch_models/surrogate.py)

    def initial_state(self, batch, device):
        self.index = torch.arange(self.n, device=device, dtype=self.dtype)  # the neuron index i
        state = {}
        for name, var in self.variables.items():
            if var.dtype == bool:  # not_refractory
                state[name] = torch.ones(batch, self.n, dtype=torch.bool, device=device)
            elif name == "lastspike":
                state[name] = torch.full((batch, self.n), LASTSPIKE_NEVER, dtype=torch.float64, device=device)
            else:
                dtype = torch.int64 if np.issubdtype(var.dtype, np.integer) else self.dtype
                init = torch.as_tensor(self.population.initial_array(name), dtype=torch.float64)
                state[name] = init.to(dtype).expand(batch, self.n).to(device)
        return state

    def _scope(self, state, t, dt):
        device = state[next(iter(state))].device
        if self.index is None or self.index.device != device:  # built once, not three times per step
            self.index = torch.arange(self.n, device=device, dtype=self.dtype)
        return {**self.constants, **state, "t": t, "dt": dt, "N": self.n, "i": self.index}

    def integrate(self, state, t, dt):
        scope = self._scope(state, t, dt)
        for statement in self.update:
            value = apply_op(statement.op, scope.get(statement.target), statement.evaluate(scope))
            if statement.target in self.conditional:  # (unless refractory): held exactly while refractory
                value = torch.where(scope["not_refractory"], value, scope[statement.target])
            scope[statement.target] = value
        return {name: scope[name] for name in state}

    def threshold_crossings(self, state, t, dt, batch):
        """(spikes as float with a surrogate gradient, margin past threshold); marks spiking neurons
        refractory as Brian2's thresholder does."""
        if not self.threshold:
            zeros = torch.zeros(batch, self.n, dtype=self.dtype, device=state[next(iter(state))].device)
            return zeros, zeros
        scope = self._scope(state, t, dt)
        condition = torch.as_tensor(self.threshold[0].evaluate(scope))
        condition = condition.expand(batch, self.n)
        margin = self.margin(scope) if self.margin is not None else condition.to(self.dtype)
        margin = torch.as_tensor(margin, dtype=self.dtype).expand(batch, self.n)
        if "lastspike" in state:
            state["lastspike"] = torch.where(condition, torch.full_like(state["lastspike"], t), state["lastspike"])
            state["not_refractory"] = state["not_refractory"] & ~condition
        return self.surrogate(condition, margin), margin

    def apply_reset(self, state, spiked, t, dt):
        scope = self._scope(state, t, dt)
        for statement in self.reset:
            value = apply_op(statement.op, scope[statement.target], statement.evaluate(scope))
            scope[statement.target] = torch.where(spiked, value, scope[statement.target])
        return {name: scope[name] for name in state}


class Pathway:
    """One synaptic pathway ('pre' or 'post') of a projection: statements and where each name lives."""

    def __init__(self, brian_synapses, role, parameters, where, dtype):
        runner = getattr(brian_synapses, role)
        runner.update_abstract_code(run_namespace={})
        self.role = role
        self.statements = compile_block(runner.abstract_code, f"{where}.on_{role}", functions(dtype))
        self.location = {}  # name -> ('synapse' | 'source' | 'target', variable name in that owner)
        names = _names(self.statements) | {s.target for s in self.statements}
        for name in names & set(brian_synapses.variables):
            var, index = brian_synapses.variables[name], brian_synapses.variables.indices[name]
            if index == "_presynaptic_idx":
                self.location[name] = ("source", _variable_name(var, brian_synapses.source))
            elif index == "_postsynaptic_idx":
                self.location[name] = ("target", _variable_name(var, brian_synapses.target))
            elif index == "_idx" and getattr(var.owner, "name", None) == brian_synapses.name:
                self.location[name] = ("synapse", name)
        self.constants = _constants(parameters, names - set(self.location))


def _delay_location(delay_variable):
    """('target' | 'source' | 'synapse', variable name) of a projection's delay variable, or (None, None)."""
    for suffix, kind in (("_post", "target"), ("_pre", "source")):
        if delay_variable.endswith(suffix):
            return kind, delay_variable[:-len(suffix)]
    return ("synapse", delay_variable) if delay_variable else (None, None)


def _variable_name(var, group):
    return next(name for name, candidate in group.variables.items() if candidate is var)


class ProjectionStep(nn.Module):
    """A projection: per-synapse variables (learnable), integer delays and a ring buffer of spike counts.

    Delays in steps come from the projection's DelayRule (bridge/delays.py): fixed ('static'), re-read
    from the delay variable at segment starts ('between_runs') or at every push ('dynamic'; then they may
    differ per batch element). A spike enters slot step + delay when emitted, so later delay changes do not
    move it (emission-time semantics)."""

    def __init__(self, proj, simulation, brian_groups, dtype):
        super().__init__()
        self.name, self.source, self.target = proj.name, proj.source, proj.target
        where = f"Projection {proj.name!r}.synapse"
        syn_eqs = brian_parse.equations(proj.synapse.model)
        if syn_eqs.diff_eq_names:
            raise DescriptionError(f"{where}.model", "differential equations in synapses are not supported by "
                                                     "the torch backend yet; keep synaptic state in the neurons")
        brian_synapses = brian_parse.synapses(proj.synapse, brian_groups[proj.source], brian_groups[proj.target],
                                              proj.name, simulation.dt)
        i, j = simulation.synapses(proj)
        brian_synapses.connect(i=i, j=j)
        self.register_buffer("i", torch.as_tensor(i))
        self.register_buffer("j", torch.as_tensor(j))
        self.register_buffer("delay_steps", torch.as_tensor(simulation.delay_steps(proj)))
        self.delay_mode, self.rule = proj.delay_mode, simulation.delay_rule(proj)
        self.delay_variable = _delay_location(proj.delay_variable)
        static_slots = int(self.delay_steps.max()) + 1 if len(i) else 1
        self.slots = static_slots if self.delay_mode == "static" else self.rule.slots
        self._grids = {}
        self.weights = nn.ParameterDict({name: torch.as_tensor(proj.value_array(name, len(i)), dtype=dtype)
                                         for name in syn_eqs.parameter_names})
        self.pathways = {role: Pathway(brian_synapses, role, proj.synapse.parameters, where, dtype)
                         for role in ("pre", "post") if getattr(proj.synapse, f"on_{role}")}

    def delays_now(self, states, syn_state):
        """Every synapse's delay in steps by the projection's rule, read from its delay variable now:
        (batch, synapses) for neuron variables, (synapses,) or (batch, synapses) for synaptic ones."""
        kind, var = self.delay_variable
        if kind == "synapse":
            values = syn_state[var]
        else:
            values = states[getattr(self, kind)][var][:, self.j if kind == "target" else self.i]
        return self.rule.steps(values.detach()).long()

    def push(self, buffer, source_spikes, step, delay_steps):
        """Spikes emitted now enter the ring buffer at slot step + delay (emission-time delays)."""
        batch, n_syn = source_spikes.shape[0], len(self.i)
        slots = ((step + delay_steps) % self.slots).expand(batch, n_syn)
        key = (batch, buffer.device)
        if key not in self._grids:  # (batch row, synapse column) of every entry, built once per batch size
            self._grids[key] = (torch.arange(batch, device=buffer.device)[:, None].expand(batch, n_syn),
                                torch.arange(n_syn, device=buffer.device).expand(batch, n_syn))
        rows, columns = self._grids[key]
        buffer.index_put_((slots, rows, columns), source_spikes[:, self.i], accumulate=True)

    def pop(self, buffer, step):
        slot = step % self.slots
        arrived = buffer[slot].clone()
        buffer[slot] = 0
        return arrived

    def deliver(self, counts, syn_state, states, groups, t, dt):
        """on_pre for the arrived spikes. Changing delays can bring two spikes of one synapse in one step;
        they are delivered one after the other, as Brian2's queue delivers them."""
        while True:
            once = counts if self.delay_mode == "static" else counts.clamp(max=1)
            self.run_pathway("pre", once, syn_state, states, groups, t, dt)
            counts = counts - once
            if self.delay_mode == "static" or not bool((counts > 0).any()):
                return

    def run_pathway(self, role, counts, syn_state, states, groups, t, dt):
        """Run a pathway's statements for the synapses with counts > 0 (counts > 1 repeat += and -=)."""
        pathway = self.pathways[role]
        active = counts > 0
        owners = {"source": (states.get(self.source), self.i, groups.get(self.source)),
                  "target": (states[self.target], self.j, groups[self.target])}
        temporaries = {}
        for statement in pathway.statements:
            scope = {**pathway.constants, "t": t, "dt": dt, **temporaries}
            for name in statement.names:
                if name in pathway.location:
                    kind, var = pathway.location[name]
                    scope[name] = syn_state[var] if kind == "synapse" else owners[kind][0][var][:, owners[kind][1]]
            value = torch.broadcast_to(torch.as_tensor(statement.evaluate(scope),
                                                       dtype=counts.dtype, device=counts.device), counts.shape)
            kind, var = pathway.location.get(statement.target, ("temporary", statement.target))
            if kind == "temporary":
                temporaries[var] = apply_op(statement.op, temporaries.get(var), value)
            elif kind == "synapse":
                syn_state[var] = torch.where(active, apply_op(statement.op, syn_state[var], value), syn_state[var])
            else:
                state, index, group = owners[kind]
                allowed = active & state["not_refractory"][:, index] if var in group.conditional else active
                state[var] = _scatter(statement, state[var], index, value, counts, allowed)


def _scatter(statement, old, index, value, counts, allowed):
    """Apply a synaptic write `x_post op value` for every allowed synapse, in synapse order."""
    if statement.op in ("+=", "-="):
        increment = torch.where(allowed, value * counts, torch.zeros_like(value))
        return old.index_add(1, index, increment if statement.op == "+=" else -increment)
    if statement.op == "=":
        rows, synapses = torch.nonzero(allowed, as_tuple=True)
        return old.index_put((rows, index[synapses]), value[rows, synapses].to(old.dtype))
    raise DescriptionError(statement.text, f"synaptic writes to neuron variables support =, += and -=, "
                                           f"not {statement.op}")


def register_input_spikes(module, simulation):
    """Each spike source's input from the description as a dense (steps, n) buffer `input_NAME` of module."""
    for name, (indices, steps) in simulation.input_spikes().items():
        dense = torch.zeros(simulation.run.n_steps, simulation.network.size(name), dtype=module.dtype)
        dense[torch.as_tensor(steps), torch.as_tensor(indices)] = 1
        module.register_buffer(f"input_{name}", dense)


def check_given(given, sizes, field, batch, n_steps):
    """forward()'s tensors by name: known names, shapes (batch, steps, n)."""
    for name, tensor in given.items():
        if name not in sizes:
            raise ValueError(f"forward({field}=...): unknown name {name!r}; allowed: {sorted(sizes)}")
        if tuple(tensor.shape) != (batch, n_steps, sizes[name]):
            raise ValueError(f"forward({field}=...)[{name!r}]: shape {tuple(tensor.shape)}; expected "
                             f"(batch, steps, n) = {(batch, n_steps, sizes[name])}")


def module_device(module):
    return next(itertools.chain(module.parameters(), module.buffers()), torch.zeros(0)).device


@dataclass
class TorchRun:
    """Outputs of one forward pass: tensors (batch, steps, neurons)."""
    spikes: dict
    traces: dict
    margins: dict
    dt: float

    def record(self, batch_index=0):
        """The common record of one batch element (SI units)."""
        spikes = {}
        for name, tensor in self.spikes.items():
            steps, neurons = np.nonzero(tensor[batch_index].detach().cpu().numpy() > 0)
            spikes[name] = (neurons.astype(np.int64), steps.astype(np.int64))
        to_numpy = lambda d: {k: v[batch_index].detach().cpu().double().numpy() for k, v in d.items()}
        n_steps = next(iter(self.spikes.values())).shape[1]
        return Record("torch", self.dt, n_steps, spikes, to_numpy(self.traces), to_numpy(self.margins))


class CompiledNetwork(nn.Module):
    """The torch form of a Simulation. forward(inputs=None, currents=None, batch_size=1) runs all steps and
    returns a TorchRun; inputs maps spike-source names and currents maps CurrentInjection names to
    (batch, steps, n) tensors (default: the description's, the same for every batch element)."""

    def __init__(self, simulation, dtype=None, device=None):
        super().__init__()
        self.simulation = simulation
        self.dtype = getattr(torch, dtype or simulation.run.dtype)
        self.dt, self.n_steps = simulation.dt, simulation.run.n_steps
        net = simulation.network
        brian_groups = {p.name: brian_parse.neuron_group(p.model, p.n, p.name, self.dt) for p in net.populations}
        brian_groups.update({s.name: brian_parse.spike_source(s.n, s.name, dt=self.dt) for s in net.sources})
        self.groups = {p.name: GroupStep(p, brian_groups[p.name], self.dtype) for p in net.populations}
        self.projections = nn.ModuleList(ProjectionStep(p, simulation, brian_groups, self.dtype)
                                         for p in sorted(net.projections, key=lambda p: p.name))  # Brian2's order
        register_input_spikes(self, simulation)
        for current in net.currents:
            self.register_buffer(f"current_{current.name}",
                                 torch.as_tensor(current.array(self.n_steps), dtype=self.dtype))
        self.to(device)

    def synaptic(self, projection, variable):
        """The learnable per-synapse values of a projection's variable (e.g. its weights)."""
        return next(p for p in self.projections if p.name == projection).weights[variable]

    def forward(self, inputs=None, currents=None, batch_size=None, record=None, progress=False):
        net, device = self.simulation.network, module_device(self)
        inputs, currents = dict(inputs or {}), dict(currents or {})
        given = [*inputs.values(), *currents.values()]
        batch = batch_size or (given[0].shape[0] if given else 1)
        for current in net.currents:
            currents.setdefault(current.name, getattr(self, f"current_{current.name}").expand(batch, -1, -1))
        check_given(inputs, {src.name: src.n for src in net.sources}, "inputs", batch, self.n_steps)
        check_given(currents, {c.name: net.size(c.target) for c in net.currents}, "currents", batch, self.n_steps)
        for source in net.sources:
            inputs.setdefault(source.name, getattr(self, f"input_{source.name}").expand(batch, -1, -1))
        record = self.simulation.run.record if record is None else record
        states = {name: group.initial_state(batch, device) for name, group in self.groups.items()}
        syn_states = {p.name: {**p.weights, "i": p.i, "j": p.j} for p in self.projections}  # i, j: synaptic code
        buffers = {p.name: torch.zeros(p.slots, batch, len(p.i), dtype=self.dtype, device=device)
                   for p in self.projections if "pre" in p.pathways}
        spike_log = {name: [] for name in self.groups}
        margin_log = {name: [] for name in self.groups}
        trace_log = {key: [] for key in record}
        delays = {p.name: p.delay_steps for p in self.projections}  # in force for 'static' and 'between_runs'
        for step in tqdm(range(self.n_steps), desc="torch", unit="step", disable=not progress, mininterval=1):
            t = step * self.dt
            if step % self.simulation.run.segment_steps == 0:  # a new run segment: between_runs delays re-read
                for proj in self.projections:
                    if proj.delay_mode == "between_runs":
                        delays[proj.name] = proj.delays_now(states, syn_states[proj.name])
            for key in record:  # 'start': state as left by the previous step
                population, variable = key.split(".")
                trace_log[key].append(states[population][variable])
            for current in net.currents:
                states[current.target][current.variable] = currents[current.name][:, step]
            for name, group in self.groups.items():
                states[name] = group.integrate(states[name], t, self.dt)
            spikes = {name: inputs[name][:, step] for name in inputs}
            for name, group in self.groups.items():
                spikes[name], margin = group.threshold_crossings(states[name], t, self.dt, batch)
                spike_log[name].append(spikes[name])
                margin_log[name].append(margin)
            for role in ("pre", "post"):  # Brian2: pre pathways (order -1) before post pathways (order +1)
                for proj in self.projections:
                    syn_state = syn_states[proj.name]
                    if role not in proj.pathways:
                        continue
                    if role == "post":
                        proj.run_pathway(role, spikes[proj.target][:, proj.j], syn_state, states, self.groups, t,
                                         self.dt)
                        continue
                    emitted_with = (proj.delays_now(states, syn_state) if proj.delay_mode == "dynamic"
                                    else delays[proj.name])
                    proj.push(buffers[proj.name], spikes[proj.source], step, emitted_with)
                    proj.deliver(proj.pop(buffers[proj.name], step), syn_state, states, self.groups, t, self.dt)
            for name, group in self.groups.items():
                states[name] = group.apply_reset(states[name], spikes[name] > 0, t, self.dt)
        stack = lambda log: {k: torch.stack(v, dim=1) for k, v in log.items()}
        return TorchRun(stack(spike_log), stack(trace_log), stack(margin_log), self.dt)


def run(simulation, dtype=None, device=None, progress=False):
    """Run a Simulation once (batch 1, no gradients) and return the common Record."""
    module = CompiledNetwork(simulation, dtype=dtype, device=device)
    with torch.no_grad():
        return module(progress=progress).record()
