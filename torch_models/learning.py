"""The parameters of what learns (bridge/learn.py: Learned items) and the values they give, in SI units.

Each item learns through a raw nn.Parameter on the scale of its start values, so that one learning rate suits
quantities as different as 10 ms, 1 nS and -70 mV; bounds hold by reparametrisation:
- low and high: low + (high - low) * sigmoid(raw);
- low only: low + scale * exp(raw) (high only: high - scale * exp(raw)), scale the mean distance of the start
  values from the bound;
- neither: scale * raw, scale the power of two nearest the largest |start value| (1 when all are 0).
Unbounded, the values at the start are the description's exactly (scaled by a power of two); bounded, up to the
rounding of the round trip through the bounds' functions.
"""
import math

import torch
from torch import nn


class Learning(nn.Module):
    """The raw parameters of Learned items (`raw`, by "owner:name"), one row per start, and their values."""

    def __init__(self, items, dtype, starts=None):
        """`starts`: {key: (starts, 1 or elements) SI values} (bridge/learn.start_values) where several starts
        learn at once, as a batch; items not named start at the description's values."""
        super().__init__()
        starts = starts or {}
        self.n_starts = len(next(iter(starts.values()))) if starts else 1
        self.items = {item.key: item for item in items}
        self.scales = {item.key: _scale(item) for item in items}
        self.raw = nn.ParameterDict()
        for key, item in self.items.items():
            values = torch.as_tensor(starts.get(key, item.start[None]), dtype=dtype)
            self.raw[_name(key)] = nn.Parameter(self._raw(item, values.expand(self.n_starts, len(item.start))))

    def _raw(self, item, values):
        scale = self.scales[item.key]
        if item.low is not None and item.high is not None:
            return torch.logit((values - item.low) / (item.high - item.low))
        if item.low is not None:
            return torch.log((values - item.low) / scale)
        if item.high is not None:
            return torch.log((item.high - values) / scale)
        return values / scale

    def value(self, key):
        """An item's values now, (starts, 1) when shared, (starts, elements) otherwise (SI)."""
        item, raw, scale = self.items[key], self.raw[_name(key)], self.scales[key]
        if item.low is not None and item.high is not None:
            return item.low + (item.high - item.low) * torch.sigmoid(raw)
        if item.low is not None:
            return item.low + scale * torch.exp(raw)
        if item.high is not None:
            return item.high - scale * torch.exp(raw)
        return scale * raw

    def set_value(self, key, values):
        """Set an item's values (SI; a number, one per element, or (starts, elements))."""
        raw = self.raw[_name(key)]
        with torch.no_grad():
            raw.copy_(self._raw(self.items[key], torch.as_tensor(values, dtype=raw.dtype).expand_as(raw)))

    def variants(self, batch):
        """{key: values for every batch element}, as StepwiseNetwork.forward's variants take them (delays
        and TimedArrays excepted: they reach the pathway's delivery and the functions that read them); with
        several starts, a batch of one row per start."""
        if self.n_starts not in (1, batch):
            raise ValueError(f"batch_size {batch}; {self.n_starts} starts learn: run a batch of {self.n_starts}")
        return {key: self.value(key).expand(batch, -1) for key, item in self.items.items()
                if item.what not in ("delay", "timed_array")}

    def numpy_values(self, start=0):
        """{key: values of one start now, as float64 numpy arrays}."""
        return {key: self.value(key)[start].detach().cpu().double().numpy() for key in self.items}


def _name(key):
    return key.replace(".", ":")  # parameter names may not hold '.'


def _scale(item):
    bound = item.low if item.low is not None else item.high
    if bound is not None:
        return float(abs(item.start - bound).mean())
    largest = float(abs(item.start).max())
    return 2.0 ** round(math.log2(largest)) if largest else 1.0


class _SummedReads(torch.autograd.Function):
    """The run's one node of a value read by index at many steps (read_at): its gradient is what other uses
    give plus what the reads summed into `total` (emptied, so that a second backward pass sums afresh)."""

    @staticmethod
    def forward(ctx, values, total):
        ctx.total = total
        return values.view_as(values)

    @staticmethod
    def backward(ctx, grad):
        summed = grad + ctx.total
        ctx.total.zero_()
        return summed, None


class _Read(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, total, flat, shared):
        ctx.save_for_backward(flat)
        ctx.total, ctx.shared = total, shared
        return _flat(values, shared).index_select(0, flat)

    @staticmethod
    def backward(ctx, grad):
        _flat(ctx.total, ctx.shared).index_add_(0, ctx.saved_tensors[0], grad)
        return None, None, None, None


def summing_reads(values):
    """`values` (batch, elements) that learn, for a run that reads them by index at many steps (read_at): the
    reads' gradients are summed into one tensor in place, where each read's backward would otherwise make a zero
    gradient the size of `values` and add it to the others (most of a recurrent network's backward pass)."""
    total = torch.zeros(values.shape, dtype=values.dtype, device=values.device)
    summed = _SummedReads.apply(values, total)
    summed.read_total = total
    return summed


def read_at(values, rows, columns):
    """values[rows, columns] of (batch, elements) values by a one-dimensional gather (three times faster than
    indexing by two tensors), its gradient summed in place where `values` came from summing_reads."""
    shared = values.stride(0) == 0  # every batch row the same values (one start's, expanded): row 0 stands for all
    flat = columns if shared else rows * values.shape[1] + columns
    total = getattr(values, "read_total", None)
    if total is None or not (torch.is_grad_enabled() and values.requires_grad):
        return _flat(values, shared).index_select(0, flat)
    return _Read.apply(values, total, flat, shared)


def _flat(values, shared):
    """(batch, elements) values as one dimension: row 0 where `shared`, else rows one after the other."""
    return values[0] if shared else values.reshape(-1)
