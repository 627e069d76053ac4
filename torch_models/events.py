"""Event-driven synaptic input: spikes (batch, steps, n_source) times weights (n_source, n_target), computed
from the spikes alone, as Brian2's synapses do.

Input spike trains are sparse (a few percent of entries), so summing the weight rows of the events that
occurred does a few percent of a dense matmul's work, forward and backward (the weight gradient of a source
sums the incoming gradient over the steps where it fired: one embedding_bag with the events sorted by
source). The spikes must not need a gradient (source trains); spikes of populations keep the dense product,
which carries their surrogate gradient. Events with a value other than 1 (several spikes of one source in a
step) are weighted by it.
"""
import torch
import torch.nn.functional as F


class _EventProduct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spikes, weight):
        n_source = spikes.shape[-1]
        flat = spikes.reshape(-1)
        events = flat.nonzero().squeeze(1)  # in (row, source) order
        rows, sources, counts = events // n_source, events % n_source, flat[events].to(weight.dtype)
        n_rows = flat.numel() // n_source
        per_row = torch.bincount(rows, minlength=n_rows)
        ctx.save_for_backward(rows, sources, counts)
        ctx.n_rows, ctx.n_source = n_rows, n_source
        summed = F.embedding_bag(sources, weight, torch.cumsum(per_row, 0) - per_row, mode="sum",
                                 per_sample_weights=counts)
        return summed.reshape(*spikes.shape[:-1], weight.shape[1])

    @staticmethod
    def backward(ctx, grad):
        rows, sources, counts = ctx.saved_tensors
        order = torch.sort(sources.int(), stable=True).indices  # the same events, by source
        per_source = torch.bincount(sources, minlength=ctx.n_source)
        grad = grad.reshape(ctx.n_rows, -1).contiguous()  # an expanded gradient would be read slowly
        summed = F.embedding_bag(rows[order], grad, torch.cumsum(per_source, 0) - per_source, mode="sum",
                                 per_sample_weights=counts[order])
        return None, summed


def event_product(spikes, weight):
    """spikes (..., n_source) @ weight (n_source, n_target), summing the rows of the events; differentiable
    in weight only."""
    if spikes.requires_grad:
        raise ValueError("event_product: spikes that need a gradient (population spikes) take the dense product")
    if spikes.shape[-1] != weight.shape[0]:
        raise ValueError(f"event_product: spikes have {spikes.shape[-1]} sources, weight {tuple(weight.shape)}")
    return _EventProduct.apply(spikes, weight)
