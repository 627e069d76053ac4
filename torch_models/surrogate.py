"""Spikes with an exact Heaviside forward pass and a surrogate derivative backward."""
import torch


def fast_sigmoid_spike(condition, margin, slope=25.0):
    """`condition` (bool) as float spikes; gradients flow through d/dmargin of a fast sigmoid
    (SuperSpike: 1/(1 + slope*|margin|)^2). The forward value is exactly the condition."""
    spikes = condition.to(margin.dtype)
    if not margin.requires_grad:
        return spikes
    soft = margin / (1 + slope * margin.abs())  # its derivative is the SuperSpike surrogate (up to 1/slope)
    return spikes + (soft - soft.detach())
