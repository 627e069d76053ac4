"""A feed-forward Simulation compiled for fast training: time is batched wherever the description allows.

Each population's synaptic input is computed for all steps at once: the source spikes (batch, steps, n)
are delayed by the delay layer (torch_models/delays.py; learnable, per synapse or per source neuron) and
summed with the weights (sparse source spikes event by event, torch_models/events.py; a dense projection
with per-synapse delays as one convolution, delays.delayed_weighted_sum). Then the
population's own dynamics run, Brian2's abstract code step by step (integrate, threshold, input arrives,
reset: Brian2's schedule, as CompiledNetwork): as one autograd node with a hand-written backward pass when
they are affine between spikes (torch_models/scan.py), through autograd otherwise; a population without
threshold whose update is linear in its one state variable runs as one linear filter.

Requires: no recurrent loops between populations, no current injections, static delays, and synapses whose
on_pre is one `x_post += w` with w a synaptic parameter. With integer delays the result equals
CompiledNetwork's (same spikes in float64); `simulation_with_learned()` writes the learned weights and
delays back into a description for Brian2.
"""
import ast
import dataclasses

import numpy as np
import torch
from torch import nn

from bridge import brian_parse
from bridge.errors import DescriptionError
from torch_models.delays import Delays, delayed_weighted_sum, exponential_filter
from torch_models.events import event_product
from torch_models.network import GroupStep, TorchRun, check_given, module_device, register_input_spikes
from torch_models.scan import AffineScan, linear_decay, schedule
from torch_models.surrogate import SURROGATES

DELAY_KINDS = ("synapse", "axonal")


def additive_target(proj):
    """(target variable, weight name) of an on_pre `x_post += w`; DescriptionError otherwise."""
    where = f"Projection {proj.name!r}.synapse.on_pre"
    body = ast.parse(proj.synapse.on_pre.strip()).body if proj.synapse.on_pre.strip() else []
    parameters = brian_parse.equations(proj.synapse.model).parameter_names
    node = body[0] if len(body) == 1 else None
    if (isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add) and isinstance(node.target, ast.Name)
            and node.target.id.endswith("_post") and isinstance(node.value, ast.Name)
            and node.value.id in parameters and not proj.synapse.on_post):
        return node.target.id[:-len("_post")], node.value.id
    raise DescriptionError(where, f"{proj.synapse.on_pre!r}: the layered torch module needs one statement "
                                  "`x_post += w` (w a synaptic parameter) and no on_post; use CompiledNetwork")


def feed_forward_order(network):
    """Population names so that every projection's source comes before its target."""
    sources = {s.name for s in network.sources}
    inputs = {p.name: {q.source for q in network.projections if q.target == p.name} for p in network.populations}
    order, done = [], set(sources)
    while len(order) < len(inputs):
        ready = [name for name in inputs if name not in done and inputs[name] <= done]
        if not ready:
            loop = sorted(set(inputs) - done)
            raise DescriptionError("Network.projections", f"populations {loop} form a loop; the layered torch "
                                                          "module needs a feed-forward network (use CompiledNetwork)")
        order += ready
        done |= set(ready)
    return order


class LayeredProjection(nn.Module):
    """Weights and delays of one projection: forward(source spikes) -> input to the target (batch, steps, n)."""

    def __init__(self, proj, simulation, dtype, delay_kind, delay_mode, learn_delays):
        super().__init__()
        if proj.delay_mode != "static":
            raise DescriptionError(f"Projection {proj.name!r}.delay_mode",
                                   f"{proj.delay_mode!r}; the layered torch module takes 'static' delays")
        if delay_kind not in DELAY_KINDS:
            raise ValueError(f"delays[{proj.name!r}]: {delay_kind!r}; allowed: {DELAY_KINDS}")
        self.proj, self.dense = proj, proj.dense
        self.variable, weight = additive_target(proj)
        i, j = simulation.synapses(proj)
        self.n_source, self.n_target = simulation.network.size(proj.source), simulation.network.size(proj.target)
        self.register_buffer("i", torch.as_tensor(i))
        self.register_buffer("j", torch.as_tensor(j))
        self.weight_name = weight
        self.weight = nn.Parameter(torch.as_tensor(proj.value_array(weight, len(i)), dtype=dtype))
        steps = simulation.delay_steps(proj)
        self.axonal = delay_kind == "axonal"
        if self.axonal:
            per_source = np.zeros(self.n_source)
            per_source[i] = steps
            if not np.array_equal(per_source[i], steps):
                raise DescriptionError(f"Projection {proj.name!r}.delays", "axonal delays need one delay per "
                                                                           "source neuron: all its synapses equal")
            steps = per_source
        self.delays = Delays(steps, simulation.delay_rule(proj).max_steps, delay_mode, learn_delays, dtype)

    def forward(self, spikes):
        undelayed = not self.delays.steps.requires_grad and not self.delays.steps.any()
        if undelayed or self.axonal:
            delayed = spikes if undelayed else self.delays(spikes)
            if self.dense:
                weight = self.weight.view(self.n_source, self.n_target)
                return delayed @ weight if delayed.requires_grad else event_product(delayed, weight)
            delayed = delayed[..., self.i]
        elif self.dense:
            return delayed_weighted_sum(spikes, self.weight.view(self.n_source, self.n_target),
                                        self.delays.steps.view(self.n_source, self.n_target),
                                        self.delays.max_steps, self.delays.mode)
        else:
            delayed = self.delays(spikes[..., self.i])
        weighted = delayed * self.weight
        if self.dense:
            return weighted.view(*weighted.shape[:2], self.n_source, self.n_target).sum(2)
        return weighted.new_zeros(*weighted.shape[:2], self.n_target).index_add(2, self.j, weighted)

    def delays_seconds(self, dt):
        """Every synapse's delay in force, in seconds (one per synapse, the description's layout)."""
        steps = self.delays.in_force()
        steps = steps[self.i] if self.axonal else steps
        return steps.cpu().double().numpy() * dt


class LayeredNetwork(nn.Module):
    """forward(inputs=None, batch_size=None) -> TorchRun, as CompiledNetwork's. `delays` maps projection names
    to 'synapse' (default) or 'axonal' (one learnable delay per source neuron); `delay_mode` 'integer' or
    'fractional'; `learn_delays` True, False or the names of the projections whose delays learn; `surrogate`
    one of torch_models.surrogate.SURROGATES. Populations whose dynamics are affine between spikes run as one
    autograd node with a hand-written backward pass (torch_models/scan.py); `compile=True` puts their chunks
    of steps through torch.compile (fused kernels instead of ~15 small operations per step; the same numbers;
    a compilation per population and input shape)."""

    def __init__(self, simulation, dtype=None, device=None, delays=None, delay_mode="integer",
                 learn_delays=True, surrogate="superspike", compile=False):
        super().__init__()
        net = simulation.network
        if net.currents:
            raise DescriptionError("Network.currents", "the layered torch module takes no current injections; "
                                                       "use CompiledNetwork")
        if surrogate not in SURROGATES:
            raise ValueError(f"surrogate {surrogate!r}; allowed: {sorted(SURROGATES)}")
        delays = dict(delays or {})
        unknown = set(delays) - {p.name for p in net.projections}
        if unknown:
            raise ValueError(f"delays: unknown projections {sorted(unknown)}; known: "
                             f"{sorted(p.name for p in net.projections)}")
        self.simulation, self.dt, self.n_steps = simulation, simulation.dt, simulation.run.n_steps
        self.dtype = getattr(torch, dtype or simulation.run.dtype)
        self.order = feed_forward_order(net)
        self.groups = {}
        for pop in net.populations:
            group = GroupStep(pop, brian_parse.neuron_group(pop.model, pop.n, pop.name, self.dt), self.dtype)
            group.surrogate = SURROGATES[surrogate]
            self.groups[pop.name] = group
        learned = {p.name for p in net.projections} if learn_delays is True else set(learn_delays or ())
        self.projections = nn.ModuleDict({p.name: LayeredProjection(p, simulation, self.dtype,
                                                                    delays.get(p.name, "synapse"), delay_mode,
                                                                    p.name in learned)
                                          for p in net.projections})
        self.decays = {name: linear_decay(group, self.dt) for name, group in self.groups.items()}
        self.scans = {name: AffineScan.of(group, self.dt) for name, group in self.groups.items()}
        if compile:
            for scan in filter(None, self.scans.values()):
                scan.compile()
        register_input_spikes(self, simulation)
        self.to(device)

    def forward(self, inputs=None, batch_size=None, record=None):
        net, device = self.simulation.network, module_device(self)
        inputs = dict(inputs or {})
        batch = batch_size or (next(iter(inputs.values())).shape[0] if inputs else 1)
        check_given(inputs, {source.name: source.n for source in net.sources}, "inputs", batch, self.n_steps)
        for source in net.sources:
            inputs.setdefault(source.name, getattr(self, f"input_{source.name}").expand(batch, -1, -1))
        record = self.simulation.run.record if record is None else record
        spikes, traces, margins = {k: v.to(device, self.dtype) for k, v in inputs.items()}, {}, {}
        for name in self.order:
            drive = {}
            for proj in net.projections:
                if proj.target == name:
                    layer = self.projections[proj.name]
                    current = layer(spikes[proj.source])
                    drive[layer.variable] = drive[layer.variable] + current if layer.variable in drive else current
            keep = {key.split(".")[1]: key for key in record if key.split(".")[0] == name}
            spikes[name], margins[name], history = self._run_population(name, drive, batch, device, keep)
            traces.update({key: history[var] for var, key in keep.items()})
        return TorchRun({n: spikes[n] for n in self.order}, traces, margins, self.dt)

    def _run_population(self, name, drive, batch, device, keep):
        """(spikes, margins, {variable in keep: values at the start of each step}) of one population."""
        group = self.groups[name]
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

    def simulation_with_learned(self):
        """The description with this module's weights and delays (integer delays: whole steps of dt)."""
        net = self.simulation.network
        projections = []
        for proj in net.projections:
            layer = self.projections[proj.name]
            shape = (layer.n_source, layer.n_target) if proj.dense else (len(layer.i),)
            weights = layer.weight.detach().cpu().double().numpy().reshape(shape)
            delays = layer.delays_seconds(self.dt).reshape(shape)
            projections.append(dataclasses.replace(proj, values={**proj.values, layer.weight_name: weights},
                                                   delays=delays))
        network = dataclasses.replace(net, projections=tuple(projections))
        return dataclasses.replace(self.simulation, network=network)
