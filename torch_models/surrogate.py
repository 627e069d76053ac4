"""Spikes with an exact Heaviside forward pass and a surrogate derivative backward.

A surrogate takes the spike condition (bool) and the margin past threshold (float); the forward value is
exactly the condition, the backward pass multiplies the incoming gradient by `derivative(margin)`, the
derivative of a smooth step. The derivative is a plain function of the margin, so torch_models/scan.py can
fuse it into its own backward pass."""
import torch


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, condition, margin, derivative):
        ctx.save_for_backward(margin)
        ctx.derivative = derivative
        return condition.to(margin.dtype)

    @staticmethod
    def backward(ctx, grad):
        (margin,) = ctx.saved_tensors
        return None, grad * ctx.derivative(margin), None


class Surrogate:
    def __init__(self, derivative):
        self.derivative = derivative

    def __call__(self, condition, margin, scale=1.0):
        """`scale`: the unit of margin the derivative reads (margin / scale); only a gradient needs it."""
        if not margin.requires_grad:
            return condition.to(margin.dtype)
        return _Spike.apply(condition, margin / scale, self.derivative)


def superspike_derivative(margin, slope=25.0):
    """SuperSpike (Zenke & Ganguli 2018): 1/(1 + slope*|margin|)^2."""
    return (1 + slope * margin.abs()) ** -2


def sigmoid_derivative(margin, beta=5.0):
    """Seed 003's surrogate: beta*sigmoid(beta*margin)*(1 - sigmoid(beta*margin))."""
    soft = torch.sigmoid(beta * margin)
    return beta * soft * (1 - soft)


superspike, sigmoid_spike = Surrogate(superspike_derivative), Surrogate(sigmoid_derivative)
SURROGATES = {"superspike": superspike, "sigmoid": sigmoid_spike}


def crossing_times(spikes, margins, dt):
    """(batch rows, neurons, times) of the spikes in `spikes` (batch, steps, n), `margins` the threshold margins
    of the same run: each time has the value of its step's time k·dt, and the gradient of the threshold crossing
    interpolated linearly between the margin of the step before and its own, k·dt - dt·m_k/(m_k - m_{k-1})
    (the exact spike time's derivative, -(dm/dθ)/(dm/dt), in one step's differences). A spike at step 0, or
    after a margin already past the threshold, has a time without gradient."""
    rows, steps, neurons = torch.nonzero(spikes.detach() > 0, as_tuple=True)
    step_times = steps.to(torch.float64) * dt
    now, before = (margins[rows, at, neurons].to(torch.float64) for at in (steps, (steps - 1).clamp(min=0)))
    crossed = (steps > 0) & (before < 0) & (now >= 0)
    fraction = torch.where(crossed, now / torch.where(crossed, now - before, torch.ones_like(now)), 0 * now)
    crossing = step_times - dt * fraction
    return rows, neurons, step_times + (crossing - crossing.detach())
