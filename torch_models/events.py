"""Event-driven synaptic input: spikes (batch, steps, n_source) times weights (n_source, n_target), computed
from the spikes alone, as Brian2's synapses do.

Input spike trains are sparse (a few percent of entries), so summing the weight rows of the events that
occurred does a few percent of a dense matmul's work, forward and backward (the weight gradient is the
transposed event matrix times the incoming gradient, a sparse CSR product). The spikes must not need a
gradient (source trains); spikes of populations keep the dense product, which carries their surrogate
gradient. Events with a value other than 1 (several spikes of one source in a step) are weighted by it.
"""
import warnings

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
        order, n_source = torch.argsort(sources, stable=True), ctx.n_source
        starts = torch.zeros(n_source + 1, dtype=torch.int64, device=grad.device)
        starts[1:] = torch.cumsum(torch.bincount(sources, minlength=n_source), 0)
        with warnings.catch_warnings():  # torch marks its CSR layout "beta"; this product is tested
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
            transposed = torch.sparse_csr_tensor(starts, rows[order], counts[order], (n_source, ctx.n_rows),
                                                 check_invariants=False)  # valid by construction
        return None, transposed @ grad.reshape(ctx.n_rows, -1)


def event_product(spikes, weight):
    """spikes (..., n_source) @ weight (n_source, n_target), summing the rows of the events; differentiable
    in weight only."""
    if spikes.requires_grad:
        raise ValueError("event_product: spikes that need a gradient (population spikes) take the dense product")
    if spikes.shape[-1] != weight.shape[0]:
        raise ValueError(f"event_product: spikes have {spikes.shape[-1]} sources, weight {tuple(weight.shape)}")
    return _EventProduct.apply(spikes, weight)
