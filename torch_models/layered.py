"""A feed-forward Simulation compiled for fast training: time is batched wherever the description allows.

Each population's synaptic input is computed for all steps at once: the source spikes (batch, steps, n)
are delayed by the delay layer (torch_models/delays.py; learnable, per synapse or per source neuron) and
summed with the weights (sparse source spikes event by event, torch_models/events.py; a dense projection
with per-synapse delays as one convolution, delays.delayed_weighted_sum). Then the
population's own dynamics run, Brian2's abstract code step by step (integrate, threshold, input arrives,
reset: Brian2's schedule, torch_models.population.step): as one autograd node with a hand-written backward pass when
they are affine between spikes (torch_models/scan.py), through autograd otherwise; a population without
threshold whose update is linear in its one state variable runs as one linear filter.

Requires (`refusals` says what a description lacks): no recurrent loops between populations, no current
injections, static delays, and synapses whose on_pre is one `x_post += w` with w a synaptic parameter. With
integer delays the result equals StepwiseNetwork's (same spikes in float64); `to_simulation()` writes the
learned weights and delays back into a description for Brian2.
"""
import ast

import numpy as np
import torch
from torch import nn

from bridge.errors import DescriptionError
from bridge.names import neuron_variable
from bridge.plan import lower
from torch_models.delays import Delays, delayed_weighted_sum, exponential_filter
from torch_models.events import event_product
from torch_models.module import SimulationModule, TorchRun, recorded
from torch_models.population import compile_populations
from torch_models.scan import AffineScan, linear_decay, schedule
from torch_models.surrogate import SURROGATES

DELAY_KINDS = ("synapse", "axonal")


def additive_target(proj, parameters):
    """(target variable, weight name) of an on_pre `x_post += w`, w one of the synaptic `parameters`;
    DescriptionError otherwise."""
    where, pathways = f"Projection {proj.name!r}.synapse.on_pre", proj.synapse.pathways()
    _, code, event = pathways.get("pre", (None, "", None))
    body = ast.parse("\n".join(line.strip() for line in code.splitlines() if line.strip())).body
    node = body[0] if len(body) == 1 and set(pathways) == {"pre"} and event == "spike" else None
    if (isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add) and isinstance(node.target, ast.Name)
            and isinstance(node.value, ast.Name) and node.value.id in parameters):
        side, variable = neuron_variable(node.target.id) or (None, None)
        if side == "target":
            return variable, node.value.id
    raise DescriptionError(where, f"{proj.synapse.on_pre!r}: the layered torch module needs one pathway on spikes "
                                  "with one statement `x_post += w` (w a synaptic parameter); use strategy 'stepwise'")


def feed_forward_order(plan):
    """Population names so that every projection's source comes before its target."""
    inputs = {name: {q.source for q in plan.projections.values() if q.target == name} for name in plan.populations}
    order, done = [], set(plan.sources)
    while len(order) < len(inputs):
        ready = [name for name in inputs if name not in done and inputs[name] <= done]
        if not ready:
            loop = sorted(set(inputs) - done)
            raise DescriptionError("Network.projections", f"populations {loop} form a loop; the layered torch "
                                                          "module needs a feed-forward network (use strategy "
                                                          "'stepwise')")
        order += ready
        done |= set(ready)
    return order


def refusals(simulation):
    """Why the layered module cannot run a description: DescriptionErrors, none when it can."""
    plan, reasons = lower(simulation), []
    if plan.currents:
        reasons.append(DescriptionError("Network.currents", "the layered torch module takes no current injections; "
                                                            "use strategy 'stepwise'"))
    for population in plan.populations.values():
        if plan.code.populations[population.name].before_start.statements:
            reasons.append(DescriptionError(f"Population {population.name!r}.model.equations", "(constant over dt) "
                                            "subexpressions run step by step; use strategy 'stepwise'"))
        if population.model.events:
            reasons.append(DescriptionError(f"Population {population.name!r}.model.events", "the layered torch "
                                            "module knows spikes only; use strategy 'stepwise'"))
    for kind, element in [*(("Population", p) for p in plan.populations.values()),
                          *(("Projection", p) for p in plan.projections.values())]:
        if element.links:
            reasons.append(DescriptionError(f"{kind} {element.name!r}.links", "linked variables read other "
                                            "populations step by step; use strategy 'stepwise'"))
    if plan.operations:
        reasons.append(DescriptionError("Network.operations", "the layered torch module runs no operations "
                                                              "(run_regularly); use strategy 'stepwise'"))
    if plan.changes:
        reasons.append(DescriptionError("RunSettings.changes", "the layered torch module runs without values set "
                                                               "between runs; use strategy 'stepwise'"))
    if plan.poisson_inputs:
        reasons.append(DescriptionError("Network.poisson_inputs", "the layered torch module takes no Poisson "
                                                                  "inputs; use strategy 'stepwise'"))
    for proj in plan.projections.values():
        if proj.delay_mode != "static":
            reasons.append(DescriptionError(f"Projection {proj.name!r}.delay_mode", f"{proj.delay_mode!r}; the "
                                            "layered torch module takes 'static' delays"))
    checks = [lambda: feed_forward_order(plan)] + [
        lambda p=p: additive_target(p, plan.code.projections[p.name].parameters) for p in plan.projections.values()]
    for check in checks:
        try:
            check()
        except DescriptionError as reason:
            reasons.append(reason)
    return reasons


class LayeredProjection(nn.Module):
    """Weights and delays of one projection: forward(source spikes) -> input to the target (batch, steps, n)."""

    def __init__(self, proj, parameters, dtype, delay_kind, delay_mode, learn_delays):
        """`proj`: the ProjectionPlan (bridge/plan.py), with static delays and an additive on_pre; `parameters`:
        its synaptic parameters."""
        super().__init__()
        if delay_kind not in DELAY_KINDS:
            raise ValueError(f"delays[{proj.name!r}]: {delay_kind!r}; allowed: {DELAY_KINDS}")
        self.dense, self.n_source, self.n_target = proj.dense, proj.n_source, proj.n_target
        self.variable, self.weight_name = additive_target(proj, parameters)
        self.register_buffer("i", torch.as_tensor(proj.i))
        self.register_buffer("j", torch.as_tensor(proj.j))
        self.values = nn.ParameterDict({self.weight_name: torch.as_tensor(proj.values[self.weight_name],
                                                                          dtype=dtype)})
        steps = proj.delay_steps
        self.axonal = delay_kind == "axonal"
        if self.axonal:
            per_source = np.zeros(self.n_source)
            per_source[proj.i] = steps
            if not np.array_equal(per_source[proj.i], steps):
                raise DescriptionError(f"Projection {proj.name!r}.delays", "axonal delays need one delay per "
                                                                           "source neuron: all its synapses equal")
            steps = per_source
        self.delays = Delays(steps, proj.rule.max_steps, delay_mode, learn_delays, dtype)

    def forward(self, spikes):
        weight = self.values[self.weight_name]
        undelayed = not self.delays.steps.requires_grad and not self.delays.steps.any()
        if undelayed or self.axonal:
            delayed = spikes if undelayed else self.delays(spikes)
            if self.dense:
                weight = weight.view(self.n_source, self.n_target)
                return delayed @ weight if delayed.requires_grad else event_product(delayed, weight)
            delayed = delayed[..., self.i]
        elif self.dense:
            return delayed_weighted_sum(spikes, weight.view(self.n_source, self.n_target),
                                        self.delays.steps.view(self.n_source, self.n_target),
                                        self.delays.max_steps, self.delays.mode)
        else:
            delayed = self.delays(spikes[..., self.i])
        weighted = delayed * weight
        if self.dense:
            return weighted.view(*weighted.shape[:2], self.n_source, self.n_target).sum(2)
        return weighted.new_zeros(*weighted.shape[:2], self.n_target).index_add(2, self.j, weighted)

    def delays_in_force(self):
        """Every synapse's delay in force in steps (float64; whole steps in mode 'integer'), one per synapse."""
        steps = self.delays.in_force()
        return (steps[self.i] if self.axonal else steps).cpu().double().numpy()


class LayeredNetwork(SimulationModule):
    """The interface of torch_models/module.py. `delays` maps projection names to 'synapse' (default) or
    'axonal' (one learnable delay per source neuron); `delay_mode` 'integer' or 'fractional'; `learn_delays`
    True, False or the names of the projections whose delays learn; `surrogate` one of
    torch_models.surrogate.SURROGATES. Populations whose dynamics are affine between spikes run as one
    autograd node with a hand-written backward pass (torch_models/scan.py); `compile=True` puts their chunks
    of steps through torch.compile (fused kernels instead of ~15 small operations per step; the same numbers;
    a compilation per population and input shape)."""
    strategy = "layered"

    def __init__(self, simulation, dtype=None, device=None, delays=None, delay_mode="integer",
                 learn_delays=True, surrogate="superspike", compile=False):
        super().__init__(simulation, dtype)
        plan = self.plan
        reasons = refusals(plan)
        if reasons:
            raise reasons[0]
        if surrogate not in SURROGATES:
            raise ValueError(f"surrogate {surrogate!r}; allowed: {sorted(SURROGATES)}")
        delays = dict(delays or {})
        unknown = set(delays) - set(plan.projections)
        if unknown:
            raise ValueError(f"delays: unknown projections {sorted(unknown)}; known: {sorted(plan.projections)}")
        self.order = feed_forward_order(plan)
        self.populations = compile_populations(plan, self.dtype)
        for population in self.populations.values():
            population.surrogate = SURROGATES[surrogate]
        learned = set(plan.projections) if learn_delays is True else set(learn_delays or ())
        self.projections = nn.ModuleDict({name: LayeredProjection(proj, plan.code.projections[name].parameters,
                                                                  self.dtype, delays.get(name, "synapse"),
                                                                  delay_mode, name in learned)
                                          for name, proj in plan.projections.items()})
        self.decays = {name: linear_decay(group, self.dt) for name, group in self.populations.items()}
        self.scans = {name: AffineScan.of(group, self.dt) for name, group in self.populations.items()}
        if compile:
            for scan in filter(None, self.scans.values()):
                scan.compile()
        self.to(device)

    def learnable_delays(self):
        return {name: layer.delays.steps for name, layer in self.projections.items()
                if layer.delays.steps.requires_grad}

    def delays_in_force(self, projection):
        return self.plan.projections[projection].in_layout(self.projections[projection].delays_in_force())

    def forward(self, inputs=None, currents=None, batch_size=None, record=None):
        batch, inputs, _ = self.given(inputs, currents, batch_size)
        records, device = self.records(record), self.device
        spikes, traces, margins = {k: v.to(device, self.dtype) for k, v in inputs.items()}, {}, {}
        for name in self.order:
            drive = {}
            for proj in self.plan.projections.values():
                if proj.target == name:
                    layer = self.projections[proj.name]
                    current = layer(spikes[proj.source])
                    drive[layer.variable] = drive[layer.variable] + current if layer.variable in drive else current
            keep = {key: recording for key, recording in records.items() if recording.owner == name}
            spikes[name], margins[name], history = self._run_population(
                name, drive, batch, device, {recording.variable for recording in keep.values()})
            traces.update({key: recorded(history[recording.variable][:, ::recording.every], recording)
                           for key, recording in keep.items()})
        return TorchRun({n: spikes[n] for n in self.order}, traces, margins, self.dt)

    def _run_population(self, name, drive, batch, device, keep):
        """(spikes, margins, {variable in keep: values at the start of each step}) of one population."""
        group = self.populations[name]
        state = group.initial_state(batch, device)
        if self.decays[name] is not None:
            (var,) = state
            initial = state[var][:, None]
            after = exponential_filter(drive[var], self.decays[name]) if var in drive else initial.expand(
                batch, self.n_steps, group.n)
            zeros = torch.zeros(batch, self.n_steps, group.n, dtype=self.dtype, device=device)
            return zeros, zeros, {var: torch.cat([initial, after[:, :-1]], dim=1)}
        if self.scans[name] is not None:
            return self.scans[name](state, drive, batch, self.n_steps, self.dt, keep)
        return self._steps(group, state, drive, batch, keep)

    def _steps(self, group, state, drive, batch, keep):
        """Brian2's schedule step by step, in autograd: as _run_population."""
        spikes, margins, history = [], [], {var: [] for var in keep}
        for before, spiked, margin in schedule(group, state, drive, batch, self.n_steps, self.dt):
            for var in keep:
                history[var].append(before[var])
            spikes.append(spiked)
            margins.append(margin)
        stack = lambda values: torch.stack(values, dim=1)
        return stack(spikes), stack(margins), {var: stack(values) for var, values in history.items()}
