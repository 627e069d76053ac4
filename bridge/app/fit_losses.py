"""The losses `spikebridge fit` minimises (bridge/app/fit.py), and the Gamma factor it reports.

A trace's term: its mean squared difference over the target's variance. A spike train's: the squared van Rossum
distance in continuous time (the kernels' tails counted whole) over the target's spike count, from spike times
(their gradient moves each spike with its threshold crossing, torch_models.surrogate.crossing_times) or from a
raster (its gradient: the surrogate of whether each step spikes), the same value either way. Computed on the CPU
in float64.
"""
import math

import numpy as np
import torch

SPIKE_GRADIENTS = ("timing", "existence")
GAMMA_DELTA = 4e-3  # s: the coincidence window of the Gamma factor (Jolivet et al. 2008)


def losses(traces, spikes, target, fit, batch):
    """The loss of each of `batch` elements, (batch,): traces as torch tensors (batch, steps, n), spikes by
    population as (batch rows, neurons, times in s) (torch_models.surrogate.crossing_times for a torch run,
    spike_times for a record: their gradient moves spikes in time) or as a raster (batch, steps, n) (its
    gradient: whether each step spikes), against the target (FIT.json's loss). Both give the same value."""
    total = torch.zeros(batch, dtype=torch.float64)
    for key, weight in fit.traces.items():
        wanted = torch.as_tensor(target.traces[key], dtype=traces[key].dtype, device=traces[key].device)
        scale = float(wanted.var()) or float((wanted ** 2).mean()) or 1.0
        total = total + weight * ((traces[key] - wanted) ** 2).mean(dim=(1, 2)).cpu() / scale
    for population, weight in fit.spikes.items():
        n, dt, tau = fit.simulation.network.width(population), fit.simulation.dt, fit.van_rossum_tau
        wanted_neurons, wanted_steps = (torch.as_tensor(values) for values in target.spikes[population])
        if isinstance(spikes[population], torch.Tensor):
            wanted = _raster(wanted_neurons, wanted_steps, spikes[population].shape[1], n)
            distance = van_rossum_squared_of_rasters(spikes[population].cpu().double(), wanted, math.exp(-dt / tau))
        else:
            rows, neurons, times = spikes[population]
            every_row = torch.arange(batch).repeat_interleave(len(wanted_neurons))
            distance = van_rossum_squared(rows.cpu() * n + neurons.cpu(), times.cpu(),
                                          every_row * n + wanted_neurons.repeat(batch),
                                          (wanted_steps.to(torch.float64) * dt).repeat(batch), batch * n, tau)
        total = total + weight * distance.reshape(batch, n).sum(1) / max(1, len(wanted_steps))
    return total


def run_losses(run, fit, batch, spike_gradient="timing"):
    """`losses` of a torch run (TorchRun), its spikes as times that move with their threshold crossings
    (`spike_gradient` "timing"), or as the raster ("existence", the surrogate's gradient)."""
    from torch_models.surrogate import crossing_times
    spikes = {population: crossing_times(run.spikes[population], run.margins[population], run.dt)
              if spike_gradient == "timing" else run.spikes[population] for population in fit.spikes}
    return losses(run.traces, spikes, fit.target, fit, batch)


def record_loss(record, fit, keys):
    """The loss of one run's record (Brian2's or torch's), its spikes as times."""
    traces = {key: torch.as_tensor(np.asarray(record.traces[key]))[None] for key in keys}
    spikes = {name: spike_times(record, name) for name in fit.spikes}
    return float(losses(traces, spikes, fit.target, fit, 1)[0])


def spike_times(record, population):
    """(batch rows, neurons, times) of a record's spikes, as `losses` takes them: one batch row."""
    neurons, steps = (torch.as_tensor(values) for values in record.spikes[population])
    return torch.zeros_like(neurons), neurons, steps.to(torch.float64) * record.dt


def _raster(neurons, steps, n_steps, n):
    """Spikes (neuron, step) as a raster (n_steps, n)."""
    raster = torch.zeros(n_steps, n, dtype=torch.float64)
    raster[torch.as_tensor(steps), torch.as_tensor(neurons)] = 1
    return raster


def van_rossum_squared(rows, times, target_rows, target_times, n_rows, tau):
    """The squared van Rossum distance of each of `n_rows` spike trains to its target, in continuous time:
    (1/τ)∫(f - g)² dt with f, g the trains filtered by exp(-t/τ), which is ½ Σ exp(-|a - b|/τ) over the pairs of
    the train's spikes, plus over the target's pairs, minus twice over the pairs between them. `rows`, `times`:
    each spike's train and time (s); (n_rows,)."""
    trains, targets = _padded(rows, times, n_rows), _padded(target_rows, target_times, n_rows)
    return (_kernel_sum(trains, trains, tau) + _kernel_sum(targets, targets, tau) -
            2 * _kernel_sum(trains, targets, tau)) / 2


def van_rossum_squared_of_rasters(trains, target, decay):
    """van_rossum_squared of spike trains on the time grid, rasters (batch, steps, n) against target (steps, n),
    decay = exp(-dt/τ): with f the causal filter (f_t = decay f_{t-1} + x_t) and g the anticausal one, Σ over
    pairs of decay^|a - b| x_a y_b = Σ_t x_t (f_y + g_y - y)_t; (batch * n,)."""
    forward, backward = _filtered(target[None], decay)[0], _filtered(target.flip(0)[None], decay)[0].flip(0)
    own = (trains * (2 * _filtered(trains, decay) - trains)).sum(1)
    crossed = (trains * (forward + backward - target)).sum(1)
    return ((own + (target * (2 * forward - target)).sum(0) - 2 * crossed) / 2).reshape(-1)


def _filtered(trains, decay):
    """trains (batch, steps, n) filtered causally by decay**k (k >= 0): f[t] = decay f[t - 1] + x[t]."""
    steps = trains.shape[1]
    kernel = decay ** torch.arange(steps, dtype=trains.dtype)
    product = torch.fft.rfft(trains, 2 * steps, dim=1) * torch.fft.rfft(kernel, 2 * steps)[None, :, None]
    return torch.fft.irfft(product, 2 * steps, dim=1)[:, :steps]


def _padded(rows, times, n_rows):
    """(times (n_rows, most spikes in a row), mask): each row's spikes, padded."""
    order = torch.argsort(rows, stable=True)
    rows, times = rows[order], times[order]
    counts = torch.bincount(rows, minlength=n_rows)
    position = torch.arange(len(rows)) - (torch.cumsum(counts, 0) - counts)[rows]
    shape = (n_rows, int(counts.max()) if len(rows) else 0)
    padded = torch.zeros(shape, dtype=torch.float64).index_put((rows, position), times.to(torch.float64))
    return padded, torch.zeros(shape, dtype=torch.float64).index_put((rows, position), torch.ones(len(rows),
                                                                                                dtype=torch.float64))


def _kernel_sum(a, b, tau):
    """Σ exp(-|x - y|/τ) over the pairs of a row of `a` and the same row of `b` (padded (times, mask))."""
    (x, x_mask), (y, y_mask) = a, b
    kernel = torch.exp(-(x[:, :, None] - y[:, None, :]).abs() / tau)
    return (kernel * x_mask[:, :, None] * y_mask[:, None, :]).sum(dim=(1, 2))


def population_gamma_factor(model, target, n, dt, duration):
    """The mean Gamma factor over the neurons of a population: model and target spikes as (neurons, steps)."""
    return float(np.mean([gamma_factor(model[1][model[0] == k], target[1][target[0] == k], dt, duration)
                          for k in range(n)]))


def gamma_factor(model_steps, target_steps, dt, duration, delta=GAMMA_DELTA):
    """The Gamma factor of one neuron, Jolivet et al. (2008), as brian2modelfitting defines it:
    Γ = 2/(1 - 2 δ r) (N_coinc - 2 δ N_target r)/(N_target + N_model), r = N_target/duration the target's rate,
    N_coinc the target spikes with a model spike within δ (each model spike matched once). 1: every spike
    matched; 0: as many coincidences as chance gives."""
    model, target = np.sort(np.asarray(model_steps)) * dt, np.sort(np.asarray(target_steps)) * dt
    if not len(model) + len(target):
        return 1.0
    used, coincidences = np.zeros(len(model), bool), 0
    for spike in target:
        near = np.nonzero(~used & (np.abs(model - spike) <= delta + 1e-12))[0]
        if len(near):
            used[near[np.argmin(np.abs(model[near] - spike))]] = True
            coincidences += 1
    rate = len(target) / duration
    return float(2 / (1 - 2 * delta * rate) * (coincidences - 2 * delta * len(target) * rate) /
                 (len(target) + len(model)))
