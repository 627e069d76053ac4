"""A Simulation compiled to a batched torch module that follows Brian2's schedule step by step: the
general strategy of torch_models.compile, for any description.

Per step (Brian2's default schedule): the (constant over dt) subexpressions, the operations of the 'start'
slot, record state ('start'); set injected currents; the populations' step (torch_models/population.py: state
update with the refractory check, thresholds, the synapses slot, resets, code on custom events); the
operations of the 'end' slot. In the synapses slot each pathway delivers the events that reach its synapses
now (PathwayStep); on_pre pathways, Poisson inputs, then on_post pathways, by name within each (Brian2's
order). Tensors are (batch, neurons) or (batch, synapses).
"""
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from tqdm import tqdm

from bridge.errors import DescriptionError
from bridge.learn import start_values, written_back
from bridge.memory import torch_run_bytes
from bridge.names import record_key
from torch_models.codegen import Compiled, apply_op, check_resolved, compile_block, functions, step_backend
from torch_models.delivery import ArrivedPerRow, EventLists, LearnedDelays, RingBuffer
from torch_models.delays import _split
from torch_models.learning import Learning, read_at, summing_reads
from torch_models.module import BackwardMemory, SimulationModule, TorchRun, check_memory, recorded
from torch_models.population import OperationStep, compile_populations, linked, step


class SynapticCode:
    """Code run over a projection's synapses (a pathway, the synaptic state update, a summed variable): its
    statements (a Block of the plan's SynapseCode, bridge/abstract_code.py; synaptic subexpressions as
    temporaries), where each name it uses lives, and the constants it reads."""

    def __init__(self, block, code, where, table):
        """`code`: the projection's SynapseCode; `table`: its function table (codegen.functions)."""
        self.statements = compile_block(block.text, where, table)
        names = block.names
        self.location = {name: code.locations[name] for name in names if name in code.locations}
        self.constants = {name: code.constants[name] for name in names if name in code.constants}
        check_resolved(self.statements, {*self.location, *self.constants, "t", "dt"}, where)

    @property
    def additive(self):
        """Whether the code is temporaries, then one `x += expression` (or -=) onto a neuron variable, reading
        only synaptic variables and constants: its events can be delivered per batch row (ProjectionStep.add)."""
        if not self.statements:
            return False
        *temporaries, write = self.statements
        reads = {name for statement in self.statements for name in statement.names if name in self.location}
        return (all(s.op == "=" and s.target not in self.location for s in temporaries) and write.op in ("+=", "-=")
                and self.location.get(write.target, ("",))[0] in ("source", "target")
                and all(self.location[name][0] == "synapse" for name in reads))

    @property
    def written_side(self):
        """The side ('source' or 'target') whose neuron variable additive code adds to."""
        return self.location[self.statements[-1].target][0]


class PathwayStep(nn.Module):
    """One pathway of a projection: the events that trigger it (the spikes, or a custom event, of the source's
    neurons for an on_pre pathway, of the target's for on_post), how they reach its synapses (`delivery`:
    torch_models/delivery.py), its code."""

    def __init__(self, pathway, code, delivery):
        """`pathway`: its PathwayPlan; `code`: its SynapticCode."""
        super().__init__()
        self.name, self.side, self.event, self.code, self.delivery = (pathway.name, pathway.side, pathway.event,
                                                                      code, delivery)

    def events(self, spikes, owner):
        """This pathway's events of its side's neurons now, (batch, neurons), from `spikes` {population: spikes,
        (population, event): custom events}."""
        if self.event == "spike":
            return spikes[owner]
        return spikes[(owner, self.event)].to(self.delivery.dtype)


class ProjectionStep(nn.Module):
    """A projection: per-synapse variables (learnable) and its pathways.

    Delays of the pathway 'pre' come from the projection's DelayRule (bridge/delays.py): fixed ('static'),
    re-read from the delay variable at segment starts ('between_runs') or at every push ('dynamic'; then they
    may differ per batch element)."""

    def __init__(self, proj, code, dtype, dt, delay_gradient=None, arrays_learn=False):
        """`proj`: the ProjectionPlan (bridge/plan.py); `code`: its SynapseCode (bridge/abstract_code.py);
        `delay_gradient`: the mode of torch_models/delays.py when the delays of its pathway 'pre' learn;
        `arrays_learn`: whether TimedArrays of its synapse learn (their values then differ per batch row, which
        events listed per row (ProjectionStep.add) do not hold)."""
        super().__init__()
        self.name, self.source, self.target = proj.name, proj.source, proj.target
        where = f"Projection {proj.name!r}.synapse"
        self.register_buffer("i", torch.as_tensor(proj.i))
        self.register_buffer("j", torch.as_tensor(proj.j))
        self.delay_mode, self.rule, self.delay_owner = proj.delay_mode, proj.rule, proj.delay_owner
        self.values = nn.ParameterDict({name: torch.as_tensor(values, dtype=dtype)
                                        for name, values in proj.values.items()})
        self.unset = code.unset  # synaptic state without initial values in the description, as Brian2 starts it: 0
        for name in self.unset:
            self.register_buffer(f"start_{name}", torch.zeros(len(proj.i), dtype=dtype))
        self.functions = functions(dtype, proj.arrays, dt, proj.synapse.parameters)
        synaptic = lambda block, field_name: SynapticCode(block, code, f"{where}.{field_name}", self.functions)
        self.pathways = nn.ModuleDict()
        for name, pathway in proj.pathways.items():
            index = self.i if pathway.side == "source" else self.j
            pathway_code = synaptic(code.pathways[name], f"pathway {name!r}")
            if name == "pre" and delay_gradient:
                if not pathway_code.additive:
                    raise DescriptionError(f"learn[{proj.name + '.delay'!r}]", "the pathway 'pre' does more than add "
                                           "to a neuron variable (its delays learn where its code is temporaries, "
                                           "then one `x_post += ...`)")
                delivery = LearnedDelays(index, proj.rule.max_steps, delay_gradient, dtype)
            elif proj.changing(name):
                delivery = RingBuffer(index, proj.slots(name), dtype)
            else:
                written = pathway_code.written_side if pathway_code.additive and not arrays_learn else None
                delivery = EventLists(index, pathway.delay_steps, proj.slots(name), dtype, written and (
                    (self.j, proj.n_target) if written == "target" else (self.i, proj.n_source)))
            self.pathways[name] = PathwayStep(pathway, pathway_code, delivery)
        # the 'groups' slot: clock-driven equations; (summed) variables, written to the source or target neuron
        self.update = synaptic(code.update, "model") if code.update is not None else None
        self.summed = {side_variable: synaptic(block, "model") for side_variable, block in code.summed.items()}
        self.slot_entries = ([(code.update.order, code.update.name, self.name, None)] if code.update else []) + \
                            [(block.order, block.name, self.name, summed) for summed, block in code.summed.items()]
        # the synapses slot: every pathway, as Brian2 orders them (on_pre -1, on_post +1; then by name)
        self.pathway_entries = [(block.order, block.name, self.name, name) for name, block in code.pathways.items()]
        self._every = {}

    def delays_now(self, states, syn_state):
        """Every synapse's delay in steps by the projection's rule, read from its delay variable now:
        (batch, synapses) for neuron variables, (synapses,) or (batch, synapses) for synaptic ones."""
        kind, var = self.delay_owner
        if kind == "synapse":
            values = syn_state[var]
        else:
            values = states[getattr(self, kind)][var][:, self.j if kind == "target" else self.i]
        return self.rule.steps(values.detach()).long()

    def deliver(self, pathway, arrived, syn_state, states, populations, t, dt):
        """A pathway's code for the events arrived (its delivery's arrivals). Changing delays can bring two
        spikes of one synapse in one step; they are delivered one after the other, as Brian2's queue does."""
        if isinstance(arrived, ArrivedPerRow):
            return self.add(pathway.code, arrived, syn_state, states, populations, t, dt)
        counts, chosen, repeats = arrived.counts, arrived.synapses, pathway.delivery.may_repeat
        while True:
            once = counts.clamp(max=1) if repeats else counts
            self.run_code(pathway.code, once, syn_state, states, populations, t, dt, chosen,
                          getattr(arrived, "active", None))
            counts = counts - once
            if not repeats or not bool((counts > 0).any()):
                return

    def add(self, code, arrived, syn_state, states, populations, t, dt):
        """An additive pathway's code for each entry of `arrived` (ArrivedPerRow): its increments added to the
        neuron variable in the order the events arrived (delivery.py), as Brian2 adds them; none to a neuron held
        by refractoriness."""
        scope = {"t": t, "dt": dt}
        for name, value in code.constants.items():  # a synaptic parameter's variants are (batch, 1)
            value = syn_state.get(name, value)
            scope[name] = value[arrived.rows, 0] if isinstance(value, torch.Tensor) else value
        for name, (kind, var) in code.location.items():
            if kind == "synapse":
                values, synapses = syn_state[var], arrived.synapses
                scope[name] = values.index_select(0, synapses) if values.dim() == 1 else \
                    read_at(values, arrived.rows, synapses)
        *temporaries, write = code.statements
        for statement in temporaries:
            scope[statement.target] = statement.evaluate(scope)
        increment = arrived.counts * write.evaluate(scope)
        side, var = code.location[write.target]
        owner = getattr(self, side)
        state, receptive = states[owner], populations[owner].receptive(states[owner], var)
        old = state[var]
        batch, n = old.shape
        flat = arrived.flat(batch, n)  # as one dimension, a spare element after: padding entries add there
        if receptive is not None and flat.shape[0] < old.numel():  # fewer entries than neurons: those reaching
            flat = torch.where(_with_spare(receptive).index_select(0, flat), flat, batch * n)  # held ones to the spare
            receptive = None
        signed = -increment if write.op == "-=" else increment
        added = _with_spare(old).index_add_(0, flat, signed.to(old.dtype))[:-1].view(batch, n)
        state[var] = added if receptive is None else torch.where(receptive, added, old)  # held: as they were

    def groups_slot(self, summed, syn_state, states, populations, t, dt, batch):
        """The projection's part of the 'groups' slot: its clock-driven update (summed None), or the sum over
        synapses written to the neuron variable `summed` (side, variable)."""
        key = (batch, populations[self.target].dtype, self.i.device)
        if key not in self._every:  # every synapse takes part: built once per batch size, not every step
            self._every[key] = torch.ones(batch, len(self.i), dtype=key[1], device=key[2])
        every = self._every[key]
        if summed is None:
            self.run_code(self.update, every, syn_state, states, populations, t, dt)
            return
        side, variable = summed
        values = self.run_code(self.summed[summed], every, syn_state, states, populations, t, dt)["_synaptic_var"]
        index, n = (self.j, populations[self.target].n) if side == "target" else (self.i, populations[self.source].n)
        states[getattr(self, side)][variable] = values.new_zeros(batch, n).index_add(1, index, values)

    def run_code(self, pathway, counts, syn_state, states, populations, t, dt, chosen=None, active=None):
        """Run synaptic code for the `active` synapses (default: those with counts > 0; counts > 1 repeat += and
        -=): `counts` of the synapses `chosen`, or of all (None), then the code is computed on the active ones
        only when not all take part; returns the temporaries it computed."""
        active = counts > 0 if active is None else active
        if chosen is None and not bool(active.all()):
            chosen = torch.nonzero(active.any(0)).squeeze(1)
            counts, active = counts[:, chosen], active[:, chosen]
        if chosen is not None and not len(chosen):
            return {}
        pick = (lambda values: values) if chosen is None else (lambda values: values[..., chosen])
        i, j = pick(self.i), pick(self.j)
        owners = {"source": (states.get(self.source), i, populations.get(self.source)),
                  "target": (states.get(self.target), j, populations.get(self.target))}
        synaptic = {var: pick(syn_state[var]) for kind, var in pathway.location.values() if kind == "synapse"}
        constants = {name: syn_state.get(name, value) for name, value in pathway.constants.items()}  # variants
        temporaries = {}
        for statement in pathway.statements:
            scope = {**constants, "t": t, "dt": dt, **temporaries}
            for name in statement.names:
                if name in pathway.location:
                    kind, var = pathway.location[name]
                    if kind == "synapse":
                        scope[name] = synaptic[var]
                    elif kind == "linked":
                        scope[name] = self.linked(var, states, populations, t, dt, pick)
                    else:
                        scope[name] = owners[kind][0][var][:, owners[kind][1]]
            value = torch.broadcast_to(torch.as_tensor(statement.evaluate(scope),
                                                       dtype=counts.dtype, device=counts.device), counts.shape)
            kind, var = pathway.location.get(statement.target, ("temporary", statement.target))
            if kind == "temporary":
                temporaries[var] = apply_op(statement.op, temporaries.get(var), value)
            elif kind == "synapse":
                synaptic[var] = torch.where(active, apply_op(statement.op, synaptic[var], value), synaptic[var])
                syn_state[var] = synaptic[var] if chosen is None else _put(syn_state[var], chosen, synaptic[var])
            else:
                state, index, population = owners[kind]
                receptive = population.receptive(state, var)
                allowed = active if receptive is None else active & receptive[:, index]
                state[var] = _scatter(statement, state[var], index, value, counts, allowed)
        return temporaries

    @staticmethod
    def linked(link, states, populations, t, dt, pick=lambda values: values):
        """A linked variable's values: (batch, 1) read from a population of one, or (batch, synapses) with
        synapse k reading neuron k (of those `pick` chooses)."""
        owner, variable = link
        value = populations[owner].value(states[owner], variable, t, dt)
        return value if value.shape[1] == 1 else pick(value)


def _clock(n_steps, dt, device):
    """Every step's n and t = n * dt (float64, the number Python computes) as tensors on the device."""
    steps = torch.arange(n_steps, device=device)
    return steps, steps.double() * dt


def _with_spare(values):
    """(batch, n) values as one dimension, then a spare element 0 (False), which padding entries reach."""
    return torch.cat((values.reshape(-1), values.new_zeros(1)))


def _put(values, chosen, chosen_values):
    """`values` (synapses,) or (batch, synapses) with the synapses `chosen` set to `chosen_values`."""
    values = values.expand(*chosen_values.shape[:-1], values.shape[-1])
    return values.index_copy(values.dim() - 1, chosen, chosen_values.to(values.dtype))


def _scatter(statement, old, index, value, counts, allowed):
    """Apply a synaptic write `x_post op value` for every allowed synapse, in the order `index` lists them."""
    if statement.op in ("+=", "-="):
        increment = torch.where(allowed, value * counts, torch.zeros_like(value))
        return old.index_add(1, index, increment if statement.op == "+=" else -increment)
    if statement.op == "=":
        rows, synapses = torch.nonzero(allowed, as_tuple=True)
        return old.index_put((rows, index[synapses]), value[rows, synapses].to(old.dtype))
    raise DescriptionError(statement.text, f"synaptic writes to neuron variables support =, += and -=, "
                                           f"not {statement.op}")


class SynapsesAsGroup:
    """A projection that is the source or target of another (synapses onto synapses): its synapses are that
    one's elements, their variables (batch, synapses); none is held by refractoriness."""

    def __init__(self, n, dtype):
        self.n, self.dtype = n, dtype

    def receptive(self, state, variable):
        return None


@dataclass(frozen=True)
class RunInputs:
    """What one forward pass is given: spike inputs and currents (batch, steps, n), records, the batch size, and
    where steps go through the compiled steps, every step's n and t as tensors on the device (`clock`; as
    Python numbers they may become constants of the compiled code, compiled again every step)."""
    inputs: dict
    currents: dict
    records: dict
    batch: int
    clock: tuple = None


class StepLog:
    """Values of every step by key, as (batch, steps, ...) tensors. Without gradients each key's tensor is
    allocated at its first step and written step by step (no list of steps, no copy at the end), as `dtype` where
    given (the copy converts); with gradients the steps are stacked at the end (writing into one tensor would make
    its backward pass copy it per step)."""

    def __init__(self, n_steps, rows=None, dtype=None):
        """`rows`: {key: rows} for keys logged at fewer rows than n_steps."""
        self.n_steps, self.rows, self.dtype, self.values = n_steps, rows or {}, dtype, {}

    def add(self, key, n, value):
        if torch.is_grad_enabled():
            self.values.setdefault(key, []).append(value)
            return
        if key not in self.values:
            self.values[key] = value.new_empty(value.shape[0], self.rows.get(key, self.n_steps), *value.shape[1:],
                                               dtype=self.dtype or value.dtype)
        self.values[key][:, n] = value

    def stacked(self):
        return {key: torch.stack(v, dim=1) if isinstance(v, list) else v for key, v in self.values.items()}


class StepwiseNetwork(SimulationModule):
    """The torch form of any Simulation, run step by step (the interface: torch_models/module.py)."""
    strategy = "stepwise"
    # steps per call of the compiled steps: a call's own cost (guards, wrappers: ~300 us on a 2-core CPU) shared;
    # CUBA 1000, float32, 2 cores: 400 us a step at 1, 100 at 4, 70 at 8, 55-80 at 32 (compiled in 15, 35, 110 s)
    STEPS_PER_CALL = 8

    def __init__(self, simulation, dtype=None, device=None, compile=False, learn=None, delay_gradient="integer",
                 starts=None):
        """`compile`: STEPS_PER_CALL steps at a time through torch.compile, as one graph where shapes allow it:
        pathways whose events are looked up in padded tables and added per batch row list a fixed number of events
        per step (EventLists.fix_shapes; a run in which more were due is run again with more), other pathways'
        events break the graph; the first call takes the compilation's seconds. Steps that fit no call (the last
        of a run segment, those of operations that run less often than every step: _fits_a_call) step eagerly,
        as does a run with gradients of synaptic values. `learn`: what learns (bridge/learn.py); the module's
        parameters that learn are then those of `learning` (torch_models/learning.py) alone, and it runs the
        description's learnable form. Delays that learn run as torch_models/delivery.LearnedDelays in mode
        `delay_gradient` (torch_models/delays.py: 'integer' runs whole steps, 'fractional' interpolates).
        `starts`: {key: values per start} where several starts learn at once (bridge/learn.start_values), a batch
        of one row each."""
        super().__init__(simulation, dtype, learn)
        plan = self.plan
        self.populations = compile_populations(plan, self.dtype)
        self.learned_delays = {item.owner: item.key for item in self.learned if item.what == "delay"}
        self.delay_gradient = delay_gradient
        arrays_learn = {item.owner for item in self.learned if item.what == "timed_array"}
        self.projections = nn.ModuleDict({name: ProjectionStep(plan.projections[name], plan.code.projections[name],
                                                               self.dtype, self.dt,
                                                               delay_gradient if name in self.learned_delays else None,
                                                               name in arrays_learn)
                                          for name in sorted(plan.projections)})
        self.deliveries = {(name, pathway.name): pathway.delivery for name, proj in self.projections.items()
                           for pathway in proj.pathways.values()}
        self.fixed_shapes = [key for key, delivery in self.deliveries.items()
                             if compile and isinstance(delivery, EventLists) and delivery.can_fix_shapes]
        for key in self.fixed_shapes:
            self.deliveries[key].fix_shapes()
        self.compiled_steps = Compiled(self._steps_as_floats, "the steps", step_backend) if compile else None
        self.learning = Learning(self.learned, self.dtype, start_values(self.learned, starts)) if self.learned \
            else None
        if self.learned:  # only what learns is a parameter
            self.projections.requires_grad_(False)
        endpoints = {name for proj in plan.projections.values() for name in (proj.source, proj.target)}
        self.synapse_groups = {name: SynapsesAsGroup(len(plan.projections[name].i), self.dtype)
                               for name in sorted(endpoints & set(plan.projections))}
        self.groups = {**self.populations, **self.synapse_groups}  # what projections connect
        self.operations = [OperationStep(operation, plan.code.operations[name], self.populations[operation.target],
                                         self.dtype, self.dt) for name, operation in plan.operations.items()]
        # operations run at every step of a call of the compiled steps; others' steps fit no call (_fits_a_call)
        self.in_every_call = [operation for operation in self.operations if operation.period == 1]
        # the synapses slot in Brian2's order (order, then name): pathways, and PoissonInputs at order 0
        self.synapses_order = sorted([entry for proj in self.projections.values() for entry in proj.pathway_entries] +
                                     [(poisson.order, name, None, name)
                                      for name, poisson in plan.poisson_inputs.items()])
        synaptic = [entry for proj in self.projections.values() for entry in proj.slot_entries]
        # the 'groups' slot in Brian2's order (order, then name) when synapses take part in it
        updates = {name: plan.code.populations[name].update for name in self.populations}
        self.groups_order = sorted(synaptic + [(update.order, update.name, name, "population")
                                               for name, update in updates.items()]) if synaptic else None
        self.to(device)

    def forward(self, inputs=None, currents=None, batch_size=None, record=None, progress=False, variants=None,
                recompute_every=None, margins=True):
        """`variants`: {"population.name" or "projection.name": values per batch element}: a model parameter
        or a state variable's initial value, (batch,) or (batch, n), replacing the description's; so that the
        batch runs that many variants of the network at once. `recompute_every`: with gradients, the steps after
        the first few run in stretches of that many (a few more where a call of the compiled steps would be cut)
        whose tensors the backward pass recomputes instead of keeping (torch.utils.checkpoint): the memory of
        about that many steps, for the time of one more forward pass.
        `margins`: whether to keep every step's threshold margins (spike times' gradients and the explanations
        of paired runs read them); without, the run holds one number per neuron and step less."""
        batch, inputs, currents = self.given(inputs, currents, batch_size or (self.learning and
                                                                              self.learning.n_starts))
        records, device, dt = self.records(record), self.device, self.dt
        if self.learning is not None:
            variants = {**self.learning.variants(batch), **(variants or {})}
        check_memory(torch_run_bytes(self.plan, batch, self.element_bytes, records, margins,
                                     torch.is_grad_enabled()), device)
        states = {name: population.initial_state(batch, device) for name, population in self.populations.items()}
        syn_states = {name: {**p.values, **{var: getattr(p, f"start_{var}") for var in p.unset}, "i": p.i,
                             "j": p.j} for name, p in self.projections.items()}  # i, j: read by synaptic code
        self.set_variants(variants or {}, states, syn_states, batch)
        if self.compiled_steps:  # laid out as the steps leave them, so that the compiled steps fit every call
            states = {name: {var: value.contiguous() for var, value in state.items()} for name, state in states.items()}
        summed = [item for item in self.learned if item.owner in self.projections
                  and item.name in syn_states[item.owner] and torch.is_grad_enabled()]
        for item in summed:  # per-synapse values that learn: their gradients summed in place, step by step
            syn_states[item.owner][item.name] = summing_reads(syn_states[item.owner][item.name])
        for name, population in self.populations.items():
            population.set_margin_scale(states[name], 0.0, dt)
        for name in self.synapse_groups:  # variables other projections write per batch row
            syn_states[name].update({var: value.expand(batch, -1) for var, value in syn_states[name].items()
                                     if var not in ("i", "j")})
        buffers = {key: delivery.buffer(batch, device) for key, delivery in self.deliveries.items()}
        # delays in steps: 'between_runs' delays in force, read at each segment's start; delays that learn
        delays = {name: self.learning.value(key) / dt for name, key in self.learned_delays.items()}
        self.set_learned_arrays()
        # summed reads add gradients in place in the backward pass, which torch.compile does not trace
        clock = _clock(self.n_steps, dt, device) if self.compiled_steps and not summed else None
        given = RunInputs(inputs, currents, records, batch, clock)
        carried = (states, syn_states, buffers, delays)
        spike_log, margin_log = StepLog(self.n_steps, dtype=torch.bool), StepLog(self.n_steps)  # TorchRun's rule
        trace_log = StepLog(self.n_steps, {key: recording.rows(self.n_steps) for key, recording in records.items()})
        copied = sum(part.nbytes for buffer in buffers.values() for part in buffer)
        with BackwardMemory(self.n_steps, device, recompute_every, copied) as backward, \
                tqdm(total=self.n_steps, desc="torch", unit="step", disable=not progress, mininterval=1) as bar:
            parts = lambda first: self._parts(first, self.n_steps, clock)
            for first, last, recomputed in backward.stretches(parts):
                if recomputed:
                    carried, logged = checkpoint(self._recomputed_steps, first, last, given, *carried,
                                                 use_reentrant=False)
                else:
                    carried, logged = self._steps(first, last, given, *carried)
                for n, (events, margins_now, traces) in enumerate(logged, first):
                    for name in self.populations:
                        spike_log.add(name, n, events[name])
                        if margins:
                            margin_log.add(name, n, margins_now[name])
                    for key in self.simulation.run.events:  # custom events recorded, as spikes are
                        spike_log.add(key, n, events[record_key(key)])
                    for key, value in traces.items():
                        trace_log.add(key, n // records[key].every, value)
                backward.done(last)
                bar.update(last - first)
        if any([self.deliveries[key].grown(buffers[key], batch) for key in self.fixed_shapes]):  # events left out
            return self(inputs, currents, batch_size, record, progress, variants, recompute_every, margins)
        return TorchRun(spike_log.stacked(), trace_log.stacked(), margin_log.stacked(), dt)

    def set_learned_arrays(self):
        """The values that TimedArrays which learn hold now, into the functions that read them, (starts, rows,
        1 or neurons)."""
        for item in self.learned:
            if item.what == "timed_array":
                function = (self.populations.get(item.owner) or self.projections[item.owner]).functions[item.name]
                values = self.learning.value(item.key)
                function.learned = values.reshape(len(values), len(function.table), -1)

    def _recomputed_steps(self, first, last, given, states, syn_states, buffers, delays):
        """_steps on copies of the state carried in (its dicts, and the delivery buffers that steps write in
        place), so that the backward pass recomputes the stretch from the values it started with."""
        buffers = {key: tuple(part.clone() for part in buffer) for key, buffer in buffers.items()}
        return self._steps(first, last, given, {name: dict(state) for name, state in states.items()},
                           {name: dict(state) for name, state in syn_states.items()}, buffers, dict(delays))

    def _steps(self, first, last, given, states, syn_states, buffers, delays):
        """Steps first to last - 1 (_parts); returns ((states, syn_states, buffers, delays) after them, [(events,
        margins, traces recorded) of each step])."""
        logged = []
        for n, steps in self._parts(first, last, given.clock):
            run = self._compiled_call if steps > 1 else self._step
            states, steps_logged = run(n, given, states, syn_states, buffers, delays)
            logged += steps_logged
        return (states, syn_states, buffers, delays), logged

    def _parts(self, first, last, clock):
        """(first step, steps) of what runs at once, of steps first to last - 1: where `clock` is given,
        STEPS_PER_CALL steps in one call of the compiled steps where they fit one (_fits_a_call); single steps,
        eagerly, elsewhere."""
        n = first
        while n < last:
            steps = self.STEPS_PER_CALL if clock and self._fits_a_call(n, last) else 1
            yield n, steps
            n += steps

    def _fits_a_call(self, n, last):
        """Whether steps n to n + STEPS_PER_CALL - 1 can run in one call of the compiled steps: all before
        `last`, none but the first starting a run segment, no operation due in any unless it runs every step."""
        steps = range(n, n + self.STEPS_PER_CALL)
        return (steps[-1] < last and not any(m in self.plan.segment_starts for m in steps[1:])
                and not any(operation.due(m) for operation in self.operations if operation not in self.in_every_call
                            for m in steps))

    def _step(self, n, given, states, syn_states, buffers, delays):
        """Step n, eagerly; returns (states, [(events, margins, {record key: value at the step's start} for the
        records due)])."""
        self._set_between_runs(n, states, syn_states, delays)
        records = {key: recording for key, recording in given.records.items() if recording.due(n)}
        operations = [operation for operation in self.operations if operation.due(n)]
        arriving = {name: spikes[:, n] for name, spikes in given.inputs.items()}
        currents = {name: values[:, n] for name, values in given.currents.items()}
        states, logged = self._after_changes(n, n * self.dt, given.batch, operations, records, arriving, currents,
                                             states, syn_states, buffers, delays)
        return states, [logged]

    def _compiled_call(self, n, given, states, syn_states, buffers, delays):
        """Steps n to n + STEPS_PER_CALL - 1 in one call of the compiled steps; returns (states, [(events,
        margins, traces recorded) of each step])."""
        self._set_between_runs(n, states, syn_states, delays)
        steps = slice(n, n + self.STEPS_PER_CALL)
        sliced = lambda values: {name: tensor[:, steps] for name, tensor in values.items()}
        states, logged = self.compiled_steps(given.clock[0][steps], given.clock[1][steps], given.batch, given.records,
                                             sliced(given.inputs), sliced(given.currents), states, syn_states,
                                             buffers, delays)
        booleans = lambda values: {key: value.bool() if isinstance(key, tuple) else value for key, value in
                                   values.items()}  # custom events
        logged = [(booleans(events), margins, {key: value for key, value in traces.items()
                                               if given.records[key].due(m)})
                  for m, (events, margins, traces) in enumerate(logged, n)]
        states = {name: {var: value.bool() if self.populations[name].variables.get(var) == "boolean" else value
                         for var, value in state.items()} for name, state in states.items()}
        return states, logged

    def _steps_as_floats(self, steps, times, batch, records, inputs, currents, states, syn_states, buffers, delays):
        """What the compiled steps run: the steps of step numbers `steps` and times `times` (tensors), every
        record's value at each, the operations that run every step; the booleans of the states after them and
        of the custom events returned as floats (inductor's vectorised stores of booleans took 10x eager torch's
        time on a CPU, 1.3 ms for (32, 4000); of floats about eager's)."""
        logged = []
        for k in range(len(steps)):
            at = lambda values: {name: tensor[:, k] for name, tensor in values.items()}
            states, step_logged = self._after_changes(steps[k], times[k], batch, self.in_every_call, records,
                                                      at(inputs), at(currents), states, syn_states, buffers, delays)
            logged.append(step_logged)
        floats = lambda values: {key: value.to(self.dtype) if value.dtype == torch.bool else value
                                 for key, value in values.items()}
        return ({name: floats(state) for name, state in states.items()},
                [(floats(events), margins, traces) for events, margins, traces in logged])

    def _set_between_runs(self, n, states, syn_states, delays):
        """At a run segment's first step n: the values set between runs, and 'between_runs' delays re-read."""
        for change in self.plan.changes.get(n, []):
            if change.owner in self.projections:
                syn_states[change.owner] = change.torch(syn_states[change.owner])
            else:
                states[change.owner] = change.torch(states[change.owner])
        if n in self.plan.segment_starts:
            for name, proj in self.projections.items():
                if proj.delay_mode == "between_runs":
                    delays[name] = proj.delays_now(states, syn_states[name])

    def _after_changes(self, n, t, batch, operations, records, arriving, currents, states, syn_states, buffers,
                       delays):
        """Step n at time t (numbers, or tensors where compiled) after _set_between_runs, with the `operations`
        due, `records` {key: Recording} due, the spikes `arriving` from inputs and the injected `currents` now;
        returns (states, (events, margins, {record key: value at the step's start}))."""
        dt = self.dt
        states = linked(self.populations, states)
        states = {name: population.set_constant_over_dt(states[name], t, dt)
                  for name, population in self.populations.items()}  # 'before_start'
        states = self.run_operations("start", operations, states, t)
        traces = {key: recorded(self._recorded_value(recording, states, syn_states, t, batch), recording)
                  for key, recording in records.items()}  # 'start': state as left by the previous step
        for name, current in self.plan.currents.items():
            states[current.target][current.variable] = currents[name]
        states, events, margins = self._from_updates_to_resets(n, t, batch, states, syn_states, buffers, delays,
                                                               arriving)
        states = self.run_operations("end", operations, states, t)
        return states, (events, margins, traces)

    def _recorded_value(self, recording, states, syn_states, t, batch):
        """The value of a recorded variable now: (batch, n), or (batch, synapses) for a synaptic one."""
        owner, variable = recording.owner, recording.variable
        link = self.plan.projections[owner].links.get(variable) if owner in self.projections else None
        if link:  # a linked synaptic variable
            value = self.projections[owner].linked(link, states, self.populations, t, self.dt)
            return value.expand(batch, self.plan.width(owner))
        if owner in self.projections:
            return syn_states[owner][variable].expand(batch, -1)
        return self.populations[owner].value(states[owner], variable, t, self.dt)

    def _from_updates_to_resets(self, n, t, batch, states, syn_states, buffers, delays, arriving):
        """Step n's part from the state updates to the resets (population.step, with this module's synapses
        and 'groups' slots): (states, events, margins)."""
        synapses = lambda spikes, states: self.synapses_slot(n, t, {**arriving, **spikes}, states, syn_states,
                                                             buffers, delays)
        groups = self.groups_order and (lambda states: self.groups_slot(t, states, syn_states, batch))
        return step(self.populations, states, t, self.dt, batch, synapses, groups)

    def to_simulation(self, start=0):
        """The description with this module's synaptic values and what `learning` learned (in the start `start`,
        where several learn)."""
        simulation = super().to_simulation()
        return written_back(simulation, self.learned, self.learned_values(start)) if self.learned else simulation

    def learned_values(self, start=0):
        """{key: values now (SI, numpy)} of what learns (bridge/learn.py's items) in one start, delays as the
        whole steps in force (seconds)."""
        values = self.learning.numpy_values(start)
        for item in self.learned:
            if item.what == "delay":
                values[item.key] = self.delays_in_force(item.owner, start).reshape(-1) * self.dt
        return values

    def delays_in_force(self, projection, start=0):
        """Delays that learn: the whole steps floor(d + 1/2) of their values d in steps (of one start), clamped
        to [0, max_steps] (mode 'fractional' runs between those steps)."""
        if projection not in self.learned_delays:
            return super().delays_in_force(projection)
        proj = self.plan.projections[projection]
        steps = self.learning.value(self.learned_delays[projection])[start].detach() / self.dt
        whole = _split(steps, proj.rule.max_steps, "integer")[0].expand(len(proj.i))
        return proj.in_layout(whole.cpu().double().numpy())

    def set_variants(self, variants, states, syn_states, batch):
        """Per batch element values into the states: a neuron's initial value as (batch, n), a neuron parameter
        as (batch, 1) or (batch, n), a synaptic parameter as (batch, 1) (read by the projection's code in place of
        its constant), a synaptic variable's initial values as (batch, 1) or (batch, synapses)."""
        for key, values in variants.items():
            owner, name = record_key(key)
            population = self.populations.get(owner)
            if population and (name in states[owner] or name in population.constants):
                widths = (1, population.n)
            elif owner in self.projections and name in self.plan.projections[owner].constants:
                widths = (1,)
            elif owner in self.projections and name in syn_states[owner] and name not in ("i", "j"):
                widths = (1, len(self.projections[owner].i))
            else:
                raise DescriptionError(f"variants[{key!r}]", "names no state variable or parameter of a population, "
                                                             "and no parameter or variable of a projection")
            values = torch.as_tensor(values, dtype=self.dtype, device=self.device)
            width = values.reshape(batch, -1).shape[1] if values.dim() in (1, 2) and values.shape[0] == batch else None
            if width not in widths:
                allowed = " or ".join(f"({batch}, {n})" for n in widths)
                raise DescriptionError(f"variants[{key!r}]", f"shape {tuple(values.shape)}; give ({batch},) or "
                                                             f"{allowed} values (batch = {batch})")
            values = values.reshape(batch, -1)
            if not population:
                syn_states[owner][name] = values if widths == (1,) else values.expand(batch, widths[1])
            elif name in states[owner]:
                states[owner][name] = values.expand(batch, population.n).to(states[owner][name].dtype)
            else:  # a parameter: (batch, 1) keeps loop-invariant work per batch element, not per neuron
                states[owner][name] = values

    def run_operations(self, when, operations, states, t):
        """Those of `operations` (due now, in name order) that run in the slot `when` ('start' or 'end')."""
        for operation in operations:
            if operation.when == when:
                states = operation.run(states, t, self.dt)
        return states

    def connected(self, states, syn_states):
        """The states of what projections connect: populations' and the synapses of those onto synapses."""
        if not self.synapse_groups:
            return states
        return {**states, **{name: syn_states[name] for name in self.synapse_groups}}

    def groups_slot(self, t, states, syn_states, batch):
        """The 'groups' slot when synapses take part in it: population and synaptic state updates and summed
        variables, in Brian2's order."""
        states = dict(states)
        for _, _, name, part in self.groups_order:
            if part == "population":
                states = linked(self.populations, states, [name])
                states[name] = self.populations[name].integrate(states[name], t, self.dt)
            else:
                self.projections[name].groups_slot(part, syn_states[name], self.connected(states, syn_states),
                                                   self.groups, t, self.dt, batch)
        return states

    def synapses_slot(self, n, t, spikes, states, syn_states, buffers, delays):
        """Step n's synapses slot, in Brian2's order: every on_pre pathway (order -1) pushes the events emitted
        now and delivers the events due now, then the Poisson inputs add their counts (order 0), then every
        on_post pathway (order +1); by name within each. `spikes`: {population: spikes, (population, event):
        custom events}."""
        connected = self.connected(states, syn_states)  # pathways replace entries of its state dicts only
        for _, _, name, part in self.synapses_order:
            if name is None:
                self.poisson_input(part, n, states)
                continue
            proj = self.projections[name]
            pathway = proj.pathways[part]
            events = pathway.events(spikes, getattr(proj, pathway.side))
            emitted_with = None  # the delays in force, for delays that change
            if pathway.delivery.reads_delays:
                dynamic = proj.delay_mode == "dynamic"
                emitted_with = proj.delays_now(states, syn_states[name]) if dynamic else delays[name]
            arrived = pathway.delivery.arrivals(buffers[(name, part)], events, n, emitted_with)
            if arrived is not None:
                proj.deliver(pathway, arrived, syn_states[name], connected, self.groups, t, self.dt)

    def poisson_input(self, name, n, states):
        """A PoissonInput's step (bridge/constructs/poisson_input.py): this step's increment added."""
        poisson = self.plan.poisson_inputs[name]
        state = states[poisson.target]
        receptive = self.populations[poisson.target].receptive(state, poisson.variable)
        counts = getattr(self, f"poisson_{name}")
        now = counts[n] if isinstance(n, int) else counts.index_select(0, n[None])[0]  # n a tensor: compiled, no item()
        state[poisson.variable] = poisson.add(state[poisson.variable], now, receptive)
