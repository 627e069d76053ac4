"""Spikes with an exact Heaviside forward pass and a surrogate derivative backward.

Each function takes the spike condition (bool) and the margin past threshold (float); the forward value is
exactly the condition, the gradient flows through d/dmargin of a smooth function."""
import torch


def superspike(condition, margin, slope=25.0):
    """SuperSpike (Zenke & Ganguli 2018): derivative 1/(1 + slope*|margin|)^2."""
    spikes = condition.to(margin.dtype)
    if not margin.requires_grad:
        return spikes
    soft = margin / (1 + slope * margin.abs())  # its derivative is the SuperSpike surrogate
    return spikes + (soft - soft.detach())


def sigmoid_spike(condition, margin, beta=5.0):
    """Seed 003's surrogate: derivative beta*sigmoid(beta*margin)*(1 - sigmoid(beta*margin))."""
    spikes = condition.to(margin.dtype)
    if not margin.requires_grad:
        return spikes
    soft = torch.sigmoid(beta * margin)
    return spikes + (soft - soft.detach())


SURROGATES = {"superspike": superspike, "sigmoid": sigmoid_spike}
