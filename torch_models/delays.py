"""Learnable transmission delays for spike trains, vectorized over batch, time and channels.

A delay of d steps turns a train x (batch, steps, channels) into y[t] = x[t - d] (zeros before the start).
Mode 'integer': the forward pass uses whole steps, floor(d + 1/2) (Brian2's rounding), and the backward pass
is straight-through: dy/dd = x[t - n - 1] - x[t - n], the slope of the linear interpolation at the rounded
delay n (seed 003's rounded delays with a straight-through gradient). Mode 'fractional': d = n + f with
n = floor(d) and y[t] = (1 - f) x[t - n] + f x[t - n - 1], exactly differentiable in d. Both are one formula,
y = x[t - n] + f (x[t - n - 1] - x[t - n]), with f = d - d.detach() (value 0, gradient 1) for 'integer'.

Delays live in [0, max_steps]; the forward pass clamps learned values into that range (gradient 0 outside).
Per-synapse delays are per-channel delays on the synapses' copies of their source trains (x[..., i]).
"""
import torch
import torch.nn.functional as F
from torch import nn

MODES = ("integer", "fractional")


def _check_steps(steps, max_steps, field):
    if not torch.isfinite(steps).all():
        raise ValueError(f"{field}: delays must be finite numbers of steps")
    if steps.numel() and (steps.min() < 0 or steps.max() > max_steps):
        raise ValueError(f"{field}: delays from {float(steps.min()):g} to {float(steps.max()):g} steps; "
                         f"allowed: [0, {max_steps}] (max_steps)")


def _split(steps, max_steps, mode):
    """Delays clamped to [0, max_steps] as whole steps n (detached) and the fraction f of the module's formula."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}; allowed: {MODES}")
    steps = steps.clamp(0, max_steps)
    whole = torch.floor(steps + 0.5 if mode == "integer" else steps).detach()
    return whole, (steps - steps.detach() if mode == "integer" else steps - whole)


def shift(x, steps, max_steps, mode="integer"):
    """x (batch, time, channels) delayed by `steps` (channels,), a float tensor that may require grad."""
    if x.dim() != 3 or x.shape[-1] != steps.shape[-1]:
        raise ValueError(f"shift: input shape {tuple(x.shape)}; expected (batch, time, {steps.shape[-1]}) "
                         "to match the delays")
    whole, fraction = _split(steps, max_steps, mode)
    batch, time, channels = x.shape
    dtype = torch.promote_types(x.dtype, steps.dtype)  # the result's, as for x + steps
    # x[t - n - 1] and x[t - n] (zeros before the start) for t = 0 .. time - 1: rows t = -1 .. time - 1 of x
    # delayed by n, gathered by one index_select along the flattened (time, channel) axis of x after max_steps + 1
    # zero steps. An input that is one train expanded along channels (and needs no gradient) is read once.
    source = x[..., :1] if x.stride(-1) == 0 and not x.requires_grad else x
    width = source.shape[-1]
    padded = F.pad(source.to(dtype), (0, 0, max_steps + 1, 0)).reshape(batch, -1)
    rows = torch.arange(-1, time, device=x.device)[:, None] - whole.long() + max_steps + 1
    at = rows * width + torch.arange(width, device=x.device).expand(channels)
    delayed = padded.index_select(1, at.reshape(-1)).reshape(batch, time + 1, channels)
    return torch.lerp(delayed[:, 1:], delayed[:, :-1], fraction.to(dtype))  # x[t-n] + fraction (x[t-n-1] - x[t-n])


def lagged_products(a, x, steps, max_steps, mode="integer"):
    """sum_t a[b, t] * shift(x[..., None] expanded to the channels, steps, max_steps, mode)[b, t, c]: the sums
    of products of a (batch, time) with one train x (batch, time) delayed by each channel's steps (channels,),
    value and gradients as shift's. Computed from the correlation of a and x at every lag 0 .. max_steps + 1
    (one grouped convolution), without the delayed copies."""
    if a.shape != x.shape or x.dim() != 2:
        raise ValueError(f"lagged_products: a {tuple(a.shape)} and x {tuple(x.shape)}; expected both (batch, time)")
    whole, fraction = _split(steps, max_steps, mode)
    dtype = torch.promote_types(torch.promote_types(a.dtype, x.dtype), steps.dtype)
    # output j of the cross-correlation: sum_t a[t] x[t - (max_steps + 1 - j)], i.e. lag max_steps + 1 - j
    padded = F.pad(x.to(dtype), (max_steps + 1, 0))[None]  # (1, batch, max_steps + 1 + time)
    correlation = F.conv1d(padded, a.to(dtype)[:, None], groups=len(a))[0].flip(1)  # (batch, lag 0 .. max_steps + 1)
    lag = whole.long()
    return torch.lerp(correlation[:, lag], correlation[:, lag + 1], fraction.to(dtype))


def delayed_weighted_sum(x, weight, steps, max_steps, mode="integer"):
    """sum_i weight[i, j] * shift(x, steps)[b, t, (i, j)]: the input to n_target neurons from n_source trains x
    (batch, time, n_source) through a dense projection with one delay per synapse, weight and steps
    (n_source, n_target); value and gradients as shift's. One convolution whose kernel holds each synapse's
    weight at its delay (split between two neighbouring lags by the fraction, as DCLS with a triangle of
    width one step), without the per-synapse copies of the trains."""
    if x.dim() != 3 or weight.dim() != 2 or x.shape[-1] != weight.shape[0] or steps.shape != weight.shape:
        raise ValueError(f"delayed_weighted_sum: x {tuple(x.shape)}, weight {tuple(weight.shape)}, steps "
                         f"{tuple(steps.shape)}; expected (batch, time, n_source), (n_source, n_target) twice")
    whole, fraction = _split(steps, max_steps, mode)
    dtype = torch.promote_types(torch.promote_types(x.dtype, weight.dtype), steps.dtype)
    lags = F.one_hot(whole.long(), max_steps + 2).to(dtype)  # (n_source, n_target, lag)
    at_lag = torch.lerp(lags, lags.roll(1, -1), fraction.to(dtype)[..., None])  # (1 - f) at n, f at n + 1
    kernel = (weight.to(dtype)[..., None] * at_lag).permute(1, 0, 2).flip(-1)  # conv1d correlates: lag reversed
    padded = F.pad(x.to(dtype).transpose(1, 2), (max_steps + 1, 0))  # (batch, n_source, max_steps + 1 + time)
    return F.conv1d(padded, kernel).transpose(1, 2)


class Delays(nn.Module):
    """Learnable delays (in steps) of `channels` spike trains; forward(x (batch, time, channels))."""

    def __init__(self, initial_steps, max_steps, mode="integer", learnable=True, dtype=torch.float64):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"Delays.mode {mode!r}; allowed: {MODES}")
        if int(max_steps) != max_steps or max_steps < 0:
            raise ValueError(f"Delays.max_steps {max_steps!r}; allowed: a whole number >= 0")
        steps = torch.as_tensor(initial_steps, dtype=dtype).reshape(-1)
        _check_steps(steps, max_steps, "Delays.initial_steps")
        self.max_steps, self.mode = int(max_steps), mode
        self.steps = nn.Parameter(steps, requires_grad=learnable)

    def forward(self, x):
        return shift(x, self.steps, self.max_steps, self.mode)

    def in_force(self):
        """The delays the forward pass applies (whole steps for 'integer'), detached."""
        steps = self.steps.detach().clamp(0, self.max_steps)
        return torch.floor(steps + 0.5) if self.mode == "integer" else steps


def exponential_filter(x, decay):
    """y[t] = decay * y[t-1] + x[t] with y[-1] = 0, along dim 1 of x (batch, time, ...), as one matmul with
    the lower-triangular matrix decay^(t - s) (linear dynamics integrated without a per-step loop)."""
    time = x.shape[1]
    lags = torch.arange(time, device=x.device)
    lag = (lags[:, None] - lags[None, :]).to(x.dtype)
    kernel = torch.where(lag >= 0, torch.as_tensor(decay, dtype=x.dtype, device=x.device) ** lag.clamp(min=0),
                         torch.zeros((), dtype=x.dtype, device=x.device))
    flat = x.reshape(x.shape[0], time, -1)
    return torch.matmul(kernel, flat).reshape(x.shape)
