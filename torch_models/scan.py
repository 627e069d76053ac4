"""A population whose dynamics are affine between spikes, run over all steps as one autograd node.

When a population's state update, threshold margin and reset are affine in its state variables, with the
same coefficients for every neuron and step (LIF neurons without a refractory period, with any of Brian2's
integrators, for example), the backward pass needs only three small Jacobians: A (k x k) of the update,
M (k) of the margin, R (k x k) of the reset. The forward pass executes Brian2's abstract code exactly as
the eager loop does (same statements, same order: bitwise the same numbers) without building a graph. The
backward pass is the adjoint recursion, a few (batch, n) operations per variable and step, with the zero
entries of A, M and R skipped:

    dL/dw_t = where(spiked_t, lambda_{t+1} R, lambda_{t+1})      w_t: state after integration and input
    dL/dinput_t = dL/dw_t (driven variables)
    dL/du_t = dL/dw_t + M (dL/dspike_t * surrogate'(margin_t) + dL/dmargin_t)
    lambda_t = dL/du_t A + dL/dhistory_t                           lambda_t = dL/dx_t, x_t: state at step start

It equals autograd through the eager loop up to float rounding (the gradient of the reset condition is not
propagated, as in the eager loop, where the reset takes the spike condition as a boolean). Both passes run in
chunks of CHUNK_STEPS steps, which torch.compile can fuse into a few kernels each.
"""
import warnings

import torch

from torch_models import population
from torch_models.codegen import Compiled

PROBE_SCALES = (1.0, 1e3)
CHUNK_STEPS = 10  # steps per call of a chunk function: what torch.compile unrolls and fuses


def _tolerance(dtype):
    return 1e-4 if dtype == torch.float32 else 1e-10


def _jacobian(function, variables, n, dtype):
    """The Jacobian (outputs x variables) of `function` (dict of (probes, n) tensors -> list of (probes, n)
    tensors) when it is affine with the same coefficients for all n neurons; None otherwise."""
    k = len(variables)
    generator = torch.Generator().manual_seed(0)
    points = [torch.zeros(k, dtype=dtype), *torch.eye(k, dtype=dtype)]
    points += [scale * torch.randn(k, generator=generator, dtype=dtype) for scale in PROBE_SCALES for _ in range(2)]
    probes = torch.stack(points)  # (probes, k)
    outputs = torch.stack([torch.as_tensor(out, dtype=dtype).expand(len(points), n) for out in
                           function({v: probes[:, [a]].expand(len(points), n) for a, v in enumerate(variables)})],
                          dim=-1)  # (probes, n, outputs)
    offset, unit = outputs[0], outputs[1:k + 1] - outputs[0]
    jacobian = unit.permute(1, 2, 0)  # (n, outputs, k)
    if not torch.allclose(jacobian, jacobian[:1].expand_as(jacobian), rtol=_tolerance(dtype), atol=0):
        return None
    predicted = offset + torch.einsum("pk,nok->pno", probes[k + 1:], jacobian)
    scale = 1 + outputs[k + 1:].abs()
    if not ((predicted - outputs[k + 1:]).abs() <= _tolerance(dtype) * scale).all():
        return None
    return jacobian[0]


def step(group, state, arrived, t, dt, batch):
    """One step of Brian2's schedule (population.step) for one population (PopulationStep) whose synaptic
    input `arrived` {variable: (batch, n)} is added in the synapses slot. Returns (state, spikes, margin)."""
    def arrive(spikes, states):
        state = states[group.name]
        for var, current in arrived.items():
            receptive = group.receptive(state, var)
            state[var] = state[var] + (current if receptive is None else
                                       torch.where(receptive, current, torch.zeros_like(current)))
    states, spikes, margins = population.step({group.name: group}, {group.name: state}, t, dt, batch, arrive)
    return states[group.name], spikes[group.name], margins[group.name]


def schedule(group, state, drive, batch, n_steps, dt):
    """Brian2's schedule for one population fed `drive` {variable: (batch, steps, n)}: yields (state at the
    start of the step, spikes, margin) for each step. A loop of its own, beside StepwiseNetwork.forward's: the
    layered strategy computes every population's input before its dynamics, so this loop runs one population
    with no synapses, operations or records; both run population.step."""
    per_step = {var: current.unbind(1) for var, current in drive.items()}  # one backward node, not one per step
    for n in range(n_steps):
        before = state
        state, spiked, margin = step(group, state, {var: c[n] for var, c in per_step.items()}, n * dt, dt, batch)
        yield before, spiked, margin


def _combine(vectors, matrix):
    """[sum_i vectors[i] * matrix[i][j] for each j], skipping zero terms: the row vector `vectors` (a list of
    tensors) times a small matrix of floats. A unit column gives that tensor itself, a zero column None."""
    combined = []
    for j in range(len(matrix[0])):
        terms = [(x, matrix[i][j]) for i, x in enumerate(vectors) if matrix[i][j] != 0]
        total = None if not terms else terms[0][0] if terms[0][1] == 1 else terms[0][0] * terms[0][1]
        for x, factor in terms[1:]:
            total = torch.add(total, x, alpha=factor)
        combined.append(total)
    return combined


def linear_decay(group, dt):
    """a, for a population without threshold whose update is v <- a*v (one state variable, no initial values
    of its own, a the same for every neuron and step, no offset); None otherwise (it runs step by step)."""
    if group.threshold or len(group.variables) != 1 or group.population.initial:
        return None
    (var,) = variables = tuple(group.variables)
    update = lambda t: lambda state: list(group.integrate(state, t, dt).values())
    first, second = (_jacobian(update(t), variables, group.n, group.dtype) for t in (0.0, 3 * dt))
    at_zero = group.integrate({var: torch.zeros(1, group.n, dtype=group.dtype)}, 0.0, dt)[var]
    if first is None or second is None or not torch.equal(first, second) or torch.as_tensor(at_zero).any():
        return None
    return float(first[0, 0])


class AffineScan:
    """The Jacobians of a population (PopulationStep) whose update, margin and reset are affine; `of` returns
    None for any other population (refractoriness, a nonlinear update, a threshold without margin).
    Calling it runs the population (forward and backward) in chunks of CHUNK_STEPS steps; `compile()` puts
    the chunk functions through torch.compile (the same numbers; a compilation of each chunk function per
    input shape, ~10 s with an empty cache; eager again, with a warning, where compiling fails)."""

    def __init__(self, group, update, margin, reset):
        self.group, self.variables = group, tuple(group.variables)
        self.update, self.margin, self.reset = update, margin, reset
        code = [*group.update, *group.threshold, *group.reset]
        self.reads_time = "t" in set().union(*[s.names for s in code]) | group.margin_names
        self.chunks = {"forward": self._forward_chunk, "backward": self._backward_chunk}

    @classmethod
    def of(cls, group, dt):
        variables = tuple(group.variables)
        if (not group.threshold or group.margin is None or group.conditional
                or any(group.variables[v] != "float" for v in variables)):
            return None
        n, dtype = group.n, group.dtype
        jacobians = []
        for t in (0.0, 3 * dt):
            probes = {
                "update": lambda s: list(group.integrate(s, t, dt).values()),
                "margin": lambda s: [group.margin(group._scope(s, t, dt))],
                "reset": lambda s: list(group.apply_reset(s, t, dt, torch.ones_like(s[variables[0]],
                                                                                   dtype=torch.bool)).values())}
            jacobians.append({name: _jacobian(f, variables, n, dtype) for name, f in probes.items()})
        first, second = jacobians
        if any(first[name] is None or second[name] is None or not torch.equal(first[name], second[name])
               for name in first):
            return None
        return cls(group, first["update"].tolist(), first["margin"][0].tolist(), first["reset"].tolist())

    def compile(self):
        if self.reads_time:  # its chunks would be compiled again for every start time
            warnings.warn(f"AffineScan: population {self.group.name!r} reads t; it runs eagerly")
            return
        self.chunks = {name: Compiled(function, f"AffineScan of population {self.group.name!r}")
                       for name, function in self.chunks.items()}

    def __call__(self, state, drive, batch, n_steps, dt, keep):
        """(spikes, margins, {variable in keep: values at the start of each step}), each (batch, steps, n)."""
        kept = tuple(var for var in self.variables if var in keep)
        outputs = _Scan.apply(self, state, batch, n_steps, dt, kept, tuple(drive), *drive.values())
        return outputs[0], outputs[1], dict(zip(kept, outputs[2:]))

    def _forward_chunk(self, state, drives, t, dt, batch, kept):
        """CHUNK_STEPS steps from `state` with drives {variable: (steps, batch, n)}: (state, spikes, margins,
        [values of each kept variable at the start of each step]), time first. A loop of its own, beside
        `schedule`: a fixed number of steps in one plain function is what torch.compile traces into one graph
        (no generator, fixed shapes); the step is population.step, as everywhere."""
        spikes, margins, history = [], [], {var: [] for var in kept}
        for n in range(CHUNK_STEPS):
            for var in kept:
                history[var].append(state[var])
            state, spiked, margin = step(self.group, state, {var: d[n] for var, d in drives.items()},
                                         t + n * dt, dt, batch)
            spikes.append(spiked)
            margins.append(margin)
        stack = lambda values: torch.stack(values)
        return state, stack(spikes), stack(margins), [stack(history[var]) for var in kept]

    def _backward_chunk(self, adjoint, margins, fired, grad_spikes, grad_margins, grad_history, driven):
        """The adjoint recursion over CHUNK_STEPS steps, last first: (adjoint at the chunk's first step,
        gradients of the driven variables' inputs (driven, steps, batch, n))."""
        grad_u = 0  # dL/dmargin in all: through the spikes' surrogate, and directly
        if grad_spikes is not None:
            grad_u = grad_spikes * self.group.surrogate.derivative(margins)
        if grad_margins is not None:
            grad_u = grad_u + grad_margins
        grad_w = [None] * CHUNK_STEPS
        for n in reversed(range(CHUNK_STEPS)):
            w = [a.masked_fill(fired[n], 0) if r is None else a if r is a else torch.where(fired[n], r, a)
                 for a, r in zip(adjoint, _combine(adjoint, self.reset))]
            grad_w[n] = [w[a] for a in driven]
            u = [x if m == 0 else torch.add(x, grad_u[n], alpha=m) for x, m in zip(w, self.margin)]
            adjoint = [torch.zeros_like(x) if a is None else a for x, a in zip(u, _combine(u, self.update))]
            for a, g in grad_history.items():
                adjoint[a] = adjoint[a] + g[n]
        return adjoint, torch.stack([torch.stack(steps) for steps in zip(*grad_w)])


def _padded(x, steps):
    """x (steps', ...) time first, zero-padded at the end to `steps`."""
    return torch.cat([x, x.new_zeros(steps - len(x), *x.shape[1:])]) if len(x) < steps else x


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scan, state, batch, n_steps, dt, kept, driven, *drives):
        padded = -(-n_steps // CHUNK_STEPS) * CHUNK_STEPS  # the steps past n_steps are discarded
        drives = {var: _padded(d.transpose(0, 1), padded) for var, d in zip(driven, drives)}
        outputs = []
        for start in range(0, padded, CHUNK_STEPS):
            chunk = {var: d[start:start + CHUNK_STEPS] for var, d in drives.items()}
            t = start * dt if scan.reads_time else 0.0  # a chunk that does not read t is compiled once
            state, spikes, margins, history = scan.chunks["forward"](state, chunk, t, dt, batch, kept)
            outputs.append((spikes, margins, *history))
        spikes, margins, *history = (torch.cat(x)[:n_steps] for x in zip(*outputs))
        ctx.scan, ctx.driven, ctx.kept, ctx.padded = scan, driven, kept, padded
        ctx.save_for_backward(spikes, margins)
        ctx.set_materialize_grads(False)
        return tuple(x.transpose(0, 1) for x in (spikes, margins, *history))

    @staticmethod
    def backward(ctx, grad_spikes, grad_margins, *grad_history):
        scan, (spikes, margins) = ctx.scan, ctx.saved_tensors
        n_steps, padded = len(margins), ctx.padded
        pad = lambda x: _padded(x, padded)
        time_first = lambda g: None if g is None else pad(g.transpose(0, 1))
        margins, fired = pad(margins), pad(spikes > 0)
        grad_spikes, grad_margins = time_first(grad_spikes), time_first(grad_margins)
        history = {scan.variables.index(var): time_first(g) for var, g in zip(ctx.kept, grad_history)
                   if g is not None}
        driven = [scan.variables.index(var) for var in ctx.driven]
        adjoint, grad_w = [torch.zeros_like(margins[0]) for _ in scan.variables], []
        for start in reversed(range(0, padded, CHUNK_STEPS)):
            window = slice(start, start + CHUNK_STEPS)
            part = lambda x: None if x is None else x[window]
            adjoint, grad = scan.chunks["backward"](adjoint, margins[window], fired[window], part(grad_spikes),
                                                    part(grad_margins), {a: g[window] for a, g in history.items()},
                                                    driven)
            grad_w.append(grad)
        grad_w = torch.cat(grad_w[::-1], dim=1)[:, :n_steps]
        return (None,) * 7 + tuple(grad_w.transpose(1, 2))
