"""One population of neurons in torch, and the one step of Brian2's schedule that every torch loop runs.

A PopulationStep executes the abstract code of Brian2's own state updater, thresholder and resetter for the
population (torch_models/codegen.py), so both backends integrate with the same formulas. `step` is Brian2's
order within a time step for a set of populations: state update with the refractory check ('groups'),
thresholds, the synapses slot (given as a function), resets. Refractoriness: a neuron is refractory while
timestep(t - lastspike) < timestep(refractory) (Brian2's thresholder marks it); variables marked
(unless refractory) are held exactly meanwhile, and synaptic writes to them are dropped (`receptive`).
"""
import ast
import math

import torch

from torch_models.codegen import (Program, apply_op, check_resolved, compile_block, compile_expression,
                                  execute_block, functions)
from torch_models.surrogate import superspike

LASTSPIKE_NEVER = -1e4  # seconds: Brian2's initial lastspike


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


class PopulationStep:
    """One population: its state update, threshold and reset, compiled from Brian2's abstract code."""

    def __init__(self, population, code, dt, dtype):
        """`population`: its PopulationPlan (bridge/plan.py); `code`: its NeuronCode (bridge/abstract_code.py)."""
        self.name, self.n, self.dtype, self.population = population.name, population.n, dtype, population
        where = f"population {self.name!r}"
        self.functions = table = functions(dtype, population.arrays, dt, population.model.parameters)
        block = lambda block: compile_block(block.text, where, table)
        self.variables = code.variables  # variable -> 'float', 'integer' or 'boolean'
        self.conditional, self.shared = code.conditional, code.shared
        self.invariant = {*code.constants, "dt", "N"}  # what code reads that is fixed during a run
        program = lambda block: Program(compile_block(block.text, where, table, self.conditional), self.conditional,
                                        where, self.invariant)  # its writes to variables held while refractory are held
        self.links = population.links  # linked variable -> (population, variable) it reads
        self.update_key = (code.update.order, code.update.name)  # its place in the 'groups' slot
        self.update = program(code.update)
        self.threshold, self.reset = block(code.threshold), block(code.reset)  # threshold: ends in `_cond = ...`
        # custom events: conditions checked in 'after_thresholds', their code run in 'after_resets'
        self.events = {event: block(condition) for event, condition in code.events.items()}
        self.on_event = {event: block(statements) for event, statements in code.on_event.items()}
        # (constant over dt) subexpressions: variables Brian2 sets once per step, before the state is recorded
        self.before_start = program(code.before_start)
        margin = _margin_expression(population.threshold) if population.threshold else None
        self.margin, self.margin_names = compile_expression(margin, where, table) if margin else (None, frozenset())
        # each subexpression's value (`_value`), computed where it is read (records, links); the blocks above, and
        # the margin on the threshold's scope, compute those they read themselves, as Brian2's code does
        self.subexpressions = {name: program(block) for name, block in code.subexpressions.items()}
        self.constants = code.constants
        self.provided = {*self.constants, *self.variables, "t", "dt", "N", "i"}
        for statements in (self.update, self.threshold, self.reset, self.before_start, *self.events.values(),
                           *self.on_event.values(), *self.subexpressions.values()):
            check_resolved(statements, self.provided, where)
        self.index = None  # the neuron index i, on the device of the state
        self.surrogate = superspike  # spike function with a surrogate gradient (torch_models/surrogate.py)
        self.margin_scale = 1.0  # the surrogate's unit of margin (set_margin_scale)

    def initial_state(self, batch, device):
        self.index = torch.arange(self.n, device=device, dtype=self.dtype)  # the neuron index i
        state = {}
        for name, kind in self.variables.items():
            if kind == "boolean":  # not_refractory
                state[name] = torch.ones(batch, self.n, dtype=torch.bool, device=device)
            elif name == "lastspike":
                state[name] = torch.full((batch, self.n), LASTSPIKE_NEVER, dtype=torch.float64, device=device)
            else:
                dtype = torch.int64 if kind == "integer" else self.dtype
                init = torch.as_tensor(self.population.initial_array(name), dtype=torch.float64)
                state[name] = init.to(dtype).expand(batch, self.n).to(device)
        return state

    def _scope(self, state, t, dt, neurons=None):
        """The names code can read: constants, state, t, dt, N, i; on the neurons of the slice `neurons` only (i and
        N then count within it, as in a Brian2 subgroup)."""
        device = next(iter(state.values())).device if state else self.index.device  # no state: initial_state's
        if self.index is None or self.index.device != device:  # built once, not three times per step
            self.index = torch.arange(self.n, device=device, dtype=self.dtype)
        index = self.index
        if neurons is not None:
            state = {name: value[:, neurons] if self.per_neuron(value) else value for name, value in state.items()}
            index = index[neurons] - neurons.start
        return {**self.constants, **state, "t": t, "dt": dt, "N": len(index), "i": index}

    def value(self, state, variable, t, dt):
        """A state variable, or a subexpression evaluated on `state` at time t, (batch, n)."""
        if variable in state:
            return state[variable]
        value = self.subexpressions[variable].run(self._scope(state, t, dt))["_value"]
        shape = state[next(iter(self.variables))].shape
        return torch.as_tensor(value, dtype=self.dtype, device=self.index.device).expand(*shape)

    def receptive(self, state, variable):
        """Which neurons' `variable` may change now, (batch, n) bool, or None for all: a variable marked
        (unless refractory) is held exactly while its neuron is refractory, in the state update and against
        synaptic writes (Brian2's rule)."""
        return state["not_refractory"] if variable in self.conditional else None

    def integrate(self, state, t, dt):
        """The state update ('groups')."""
        return self.execute(self.update, state, t, dt)

    def set_constant_over_dt(self, state, t, dt):
        """The (constant over dt) subexpressions, set once per step ('before_start')."""
        return self.execute(self.before_start, state, t, dt) if self.before_start else state

    def execute(self, program, state, t, dt, neurons=None, constants=None):
        """Run a Program on the state (of the neurons in the slice `neurons`); `constants` it reads besides the
        population's."""
        scope = {**(constants or {}), **self._scope(state, t, dt, neurons)}
        scope.update(program.run(scope))
        if neurons is None:
            return {name: scope[name] for name in state}
        return {name: self._merged(name, value, scope[name], neurons) for name, value in state.items()}

    def _merged(self, name, value, written, neurons):
        """A variable after code ran on the neurons of a slice: the slice's values in place, a shared
        variable's value for every neuron."""
        if not self.per_neuron(value):
            return written
        if name in self.shared:
            return written[:, :1].expand_as(value)
        return torch.cat([value[:, :neurons.start], written, value[:, neurons.stop:]], dim=1)

    def per_neuron(self, value):
        """Whether a (batch, ...) value of the state holds one value per neuron; a parameter's variants may be
        (batch, 1), one value for every neuron of a batch element."""
        return value.shape[1] == self.n

    def threshold_crossings(self, state, t, dt, batch):
        """(spikes as float with a surrogate gradient, margin past threshold, the spikes as (batch, n) bool,
        {custom event: (batch, n) bool}); marks spiking neurons refractory as Brian2's thresholder does. Custom
        events are checked after that (Brian2's 'after_thresholds' slot)."""
        if not self.threshold:
            zeros = torch.zeros(batch, self.n, dtype=self.dtype, device=self.index.device)
            spikes, margin, crossed = zeros, zeros, zeros.bool()
        else:
            spikes, margin, crossed = self._spikes(state, t, dt, batch)
        return spikes, margin, crossed, {event: self._event(event, state, t, dt, batch) for event in self.events}

    def _event(self, event, state, t, dt, batch):
        condition = execute_block(self.events[event], self._scope(state, t, dt))["_cond"]
        return torch.as_tensor(condition).expand(batch, self.n)

    def _spikes(self, state, t, dt, batch):
        scope = execute_block(self.threshold, self._scope(state, t, dt))
        condition = torch.as_tensor(scope["_cond"]).expand(batch, self.n)
        margin = self.margin(scope) if self.margin is not None else condition.to(self.dtype)
        margin = torch.as_tensor(margin, dtype=self.dtype).expand(batch, self.n)
        if "lastspike" in state:
            state["lastspike"] = torch.where(condition, t, state["lastspike"])
            state["not_refractory"] = state["not_refractory"] & ~condition
        return self.surrogate(condition, margin, self.margin_scale), margin, condition

    def set_margin_scale(self, state, t, dt):
        """The surrogate's unit of margin: how far the reset puts a neuron from its threshold (mean over the
        neurons of `state`), so that the surrogate's width is the same fraction of that distance whatever the
        units (-50 mV against a reset to -70 mV: 20 mV, as a threshold of 1 and a reset to 0 is 1); 1 where there
        is no reset or it leaves no distance."""
        self.margin_scale = 1.0
        if self.margin is None or not self.reset:
            return
        with torch.no_grad():
            like = next(iter(state.values()))
            every = torch.ones(like.shape[0], self.n, dtype=torch.bool, device=like.device)
            scope = execute_block(self.threshold, self._scope(self.apply_reset(dict(state), t, dt, every), t, dt))
            distance = float(torch.as_tensor(self.margin(scope)).abs().mean())
        if math.isfinite(distance) and distance > 0:
            self.margin_scale = distance

    def apply_reset(self, state, t, dt, spiked, statements=None):
        """The reset (or `statements`) for the neurons where `spiked`."""
        scope = self._scope(state, t, dt)
        for statement in self.reset if statements is None else statements:
            old = scope.get(statement.target)
            value = apply_op(statement.op, old, statement.evaluate(scope))
            scope[statement.target] = torch.where(spiked, value, old) if statement.target in state else value
        return {name: scope[name] for name in state}

    def after_resets(self, state, events, t, dt):
        """run_on_event code of the custom events that happened (Brian2's 'after_resets' slot)."""
        for event, statements in self.on_event.items():
            state = self.apply_reset(state, t, dt, events[event], statements)
        return state


class OperationStep:
    """An Operation (Brian2's run_regularly) on its population: its statements, run on its neurons at the
    steps that are multiples of its period (bridge/plan.py lowered its random draws to drawn values)."""

    def __init__(self, operation, code, population, dtype, dt):
        """`operation`: its OperationPlan; `code`: its OperationCode; `population`: the target's PopulationStep."""
        self.name, self.target, self.when = operation.name, operation.target, operation.operation.when
        self.population, self.period = population, operation.period_steps
        whole = (operation.start, operation.stop) == (0, population.n)
        self.neurons = None if whole else slice(operation.start, operation.stop)  # `i` counts within the slice
        table = functions(dtype, operation.arrays, operation.period_steps * dt,
                          population.population.model.parameters)
        where = f"Operation {self.name!r}"
        self.statements = Program(compile_block(code.block.text, where, table), population.conditional, where,
                                  population.invariant | set(code.constants))
        self.constants = code.constants
        check_resolved(self.statements, population.provided | set(self.constants), where)

    def due(self, n):
        """Whether the operation runs at step n."""
        return not n % self.period

    def run(self, states, t, dt):
        """The states after this operation at time t."""
        state = self.population.execute(self.statements, states[self.target], t, dt, self.neurons, self.constants)
        return {**states, self.target: state}


def linked(populations, states, names=None):
    """`states` with the linked variables of the populations `names` (None: all) read from the populations
    they link to, as they are now (Brian2 reads them where they live)."""
    names = [name for name in (populations if names is None else names) if populations[name].links]
    if not names:  # the common case: no copy of the states
        return states
    states = dict(states)
    for name in names:
        states[name] = {**states[name], **{variable: states[owner][source]  # (batch, 1) broadcasts
                                           for variable, (owner, source) in populations[name].links.items()}}
    return states


def step(populations, states, t, dt, batch, synapses, groups=None):
    """One step of Brian2's schedule for `populations` {name: PopulationStep} in `states` {name: {variable:
    (batch, n)}}: state updates ('groups': every population's, or `groups(states) -> states` where synapses
    update there too), thresholds, then `synapses(events, states)` (the synapses slot, given {population:
    spikes, (population, event): custom events}; it replaces entries of the state dicts it writes to), resets,
    then the code run on custom events. Returns (states, events, margins): events {population: spikes,
    (population, event): custom events}, margins by population."""
    if groups:
        states = groups(states)
    else:  # in Brian2's order: a population reading a linked variable sees the updates before its own
        for name in sorted(populations, key=lambda name: populations[name].update_key):
            states = linked(populations, states, [name])
            states[name] = populations[name].integrate(states[name], t, dt)
    states = linked(populations, states)
    crossings = {name: population.threshold_crossings(states[name], t, dt, batch)
                 for name, population in populations.items()}
    spikes, margins, crossed, custom = ({name: parts[k] for name, parts in crossings.items()} for k in range(4))
    events = {**spikes, **{(name, event): happened for name, of_population in custom.items()
                           for event, happened in of_population.items()}}
    synapses(events, states)
    states = linked(populations, states)
    states = {name: population.apply_reset(states[name], t, dt, crossed[name])
              for name, population in populations.items()}
    states = {name: population.after_resets(states[name], custom[name], t, dt)
              for name, population in populations.items()}
    return states, events, margins


def compile_populations(plan, dtype):
    """{name: PopulationStep} of a Plan's populations."""
    return {name: PopulationStep(population, plan.code.populations[name], plan.dt, dtype)
            for name, population in plan.populations.items()}
