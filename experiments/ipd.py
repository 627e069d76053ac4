"""Interaural phase difference (IPD) stimuli, seed 003 / COMOB style.

A tone of frequency f reaches two ears with phases differing by the IPD alpha; each ear has `fibres` auditory
nerve fibres firing Poisson spikes (Bernoulli per step) at rate_max * (0.5 (1 + sin theta))^envelope_power,
theta = 2 pi f t + phi (+ alpha for the second ear), phi a random starting phase per sample. Classes are
`n_classes` equal bins over [-90, 90) degrees. IPDs are drawn uniformly over the range ('continuous', COMOB)
or set to the bin midpoints ('discrete', as seed 003's delay-only task uses one value per class).
Inputs are (samples, steps, 2 * fibres): ear 0's fibres first. Also here: both MAE conventions (`errors`),
the Bayes-optimal classifier for discrete tasks (`ideal_observer`) and the spiking classifier's description
(`classifier`, trained in torch_models.layered and re-run in Brian2 by experiments/ipd_cotrain.py).
"""
from dataclasses import dataclass

import numpy as np

from bridge.description import (NeuronModel, Network, Population, Projection, RunSettings, Simulation, SpikeTrains,
                                SynapseModel, Timing)

IPD_RANGE = (-90.0, 90.0)  # degrees


@dataclass(frozen=True)
class IPDTask:
    n_classes: int = 12
    frequency: float = 20.0  # Hz
    duration: float = 0.1  # s
    dt: float = 1e-3  # s
    fibres: int = 100  # per ear
    rate_max: float = 600.0  # Hz
    envelope_power: float = 2.0
    discrete: bool = False

    def __post_init__(self):
        for name in ("n_classes", "fibres"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"IPDTask.{name}: {getattr(self, name)!r}; allowed: an integer >= 1")
        for name in ("frequency", "duration", "dt", "rate_max", "envelope_power"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"IPDTask.{name}: {value!r}; allowed: a finite number > 0")
        if self.rate_max * self.dt > 1:
            raise ValueError(f"IPDTask.rate_max: {self.rate_max} Hz gives a spike probability "
                             f"{self.rate_max * self.dt:g} > 1 per step of dt = {self.dt} s")

    @property
    def n_steps(self):
        return int(round(self.duration / self.dt))

    @property
    def bin_width(self):
        return (IPD_RANGE[1] - IPD_RANGE[0]) / self.n_classes

    def midpoints(self):
        """Each class's bin midpoint in degrees."""
        return IPD_RANGE[0] + (np.arange(self.n_classes) + 0.5) * self.bin_width

    def labels(self, ipd_degrees):
        return np.clip(((np.asarray(ipd_degrees) - IPD_RANGE[0]) // self.bin_width).astype(np.int64),
                       0, self.n_classes - 1)

    def envelope(self, ipd_degrees, phase):
        """Spike probability per step (samples, steps, 2): each ear's Bernoulli p at each step."""
        t = np.arange(self.n_steps) * self.dt
        alpha = np.radians(np.asarray(ipd_degrees, dtype=float))
        theta = 2 * np.pi * self.frequency * t[None, :, None] + np.asarray(phase)[:, None, None]
        theta = theta + np.stack([np.zeros_like(alpha), alpha], axis=-1)[:, None, :]
        return self.rate_max * self.dt * (0.5 * (1 + np.sin(theta))) ** self.envelope_power

    def draw(self, n, rng):
        """n samples: (spikes bool (n, steps, 2*fibres), ipd degrees (n,), labels (n,))."""
        if self.discrete:
            ipd = self.midpoints()[rng.integers(0, self.n_classes, n)]
        else:
            ipd = rng.uniform(*IPD_RANGE, n)
        p = self.envelope(ipd, rng.uniform(0, 2 * np.pi, n))
        spikes = rng.random((n, self.n_steps, 2, self.fibres)) < p[..., None]
        return spikes.reshape(n, self.n_steps, 2 * self.fibres), ipd, self.labels(ipd)


def errors(task, predicted, ipd_degrees):
    """Both MAE conventions in degrees: between bin midpoints (0 when correct), and from the continuous IPD
    to the predicted bin's midpoint (at least bin_width / 4 on average even when every label is right)."""
    mids = task.midpoints()
    predicted = np.asarray(predicted)
    return {"mae_bin_midpoints": float(np.mean(np.abs(mids[predicted] - mids[task.labels(ipd_degrees)]))),
            "mae_continuous": float(np.mean(np.abs(mids[predicted] - np.asarray(ipd_degrees))))}


def ideal_observer(task, spikes, n_phases=360, chunk=512):
    """The Bayes-optimal class of each sample (n,) for a discrete task: the Bernoulli log-likelihood of both
    ears' spikes under each class's IPD, marginalized over the uniform starting phase (a grid of n_phases,
    log-sum-exp), with a uniform prior over classes."""
    if not task.discrete:
        raise ValueError("ideal_observer: task.discrete is False; allowed: a discrete task (one IPD per class)")
    if not isinstance(n_phases, int) or n_phases < 1:
        raise ValueError(f"ideal_observer.n_phases: {n_phases!r}; allowed: an integer >= 1")
    spikes = np.asarray(spikes)
    if spikes.ndim != 3 or spikes.shape[1:] != (task.n_steps, 2 * task.fibres):
        raise ValueError(f"ideal_observer.spikes: shape {spikes.shape}; expected (samples, {task.n_steps}, "
                         f"{2 * task.fibres})")
    phases = np.arange(n_phases) * 2 * np.pi / n_phases
    ipd = np.repeat(task.midpoints(), n_phases)
    p = np.clip(task.envelope(ipd, np.tile(phases, task.n_classes)), np.finfo(float).tiny, 1 - 1e-12)
    # log L = sum_k,e counts * log(p / (1 - p)) + fibres * sum_k,e log(1 - p): one matmul per chunk
    spike_weight = np.log(p / (1 - p)).reshape(len(ipd), -1).T  # (steps * 2, classes * phases)
    silent = task.fibres * np.log1p(-p).sum(axis=(1, 2))
    counts = spikes.reshape(len(spikes), task.n_steps, 2, task.fibres).sum(axis=-1).reshape(len(spikes), -1)
    predicted = []
    for start in range(0, len(spikes), chunk):
        log_l = (counts[start:start + chunk] @ spike_weight + silent).reshape(-1, task.n_classes, n_phases)
        top = log_l.max(axis=2, keepdims=True)
        predicted.append(np.argmax(np.log(np.exp(log_l - top).sum(axis=2)) + top[..., 0], axis=1))
    return np.concatenate(predicted)


def classifier(task, weights, delays, n_hidden, tau_hidden="5*ms", tau_output="5*ms", tau_synapse=None,
               max_delay="25*ms", dt=None):
    """The IPD classifier: the ears' fibres ('ears', 2*fibres) reach `n_hidden` LIF neurons (leak tau_hidden,
    fire above 1, reset to 0) through weights and delays (seconds, shape (2*fibres, n_hidden)); a spike makes
    v jump by w, or, with tau_synapse, a synaptic current I jump by w (dI/dt = -I/tau_synapse, driving v);
    hidden spikes reach one leaky integrator per class (no threshold). The class is the largest
    time-averaged output v (`logits`). dt defaults to the task's."""
    jump = SynapseModel(model="w : 1", on_pre="v_post += w")
    if tau_synapse is None:
        hidden = NeuronModel("dv/dt = -v/tau : 1", threshold="v > 1", reset="v = 0", parameters={"tau": tau_hidden})
        to_hidden = jump
    else:
        hidden = NeuronModel("dv/dt = (I - v)/tau : 1\ndI/dt = -I/tau_s : 1", threshold="v > 1", reset="v = 0",
                             parameters={"tau": tau_hidden, "tau_s": tau_synapse})
        to_hidden = SynapseModel(model="w : 1", on_pre="I_post += w")
    output = NeuronModel("dv/dt = -v/tau : 1", parameters={"tau": tau_output})
    network = Network(
        populations=(Population("hidden", hidden, n_hidden), Population("output", output, task.n_classes)),
        sources=(SpikeTrains("ears", 2 * task.fibres),),
        projections=(Projection("ears_hidden", "ears", "hidden", to_hidden, values={"w": weights["ears_hidden"]},
                                delays=delays, max_delay=max_delay),
                     Projection("hidden_output", "hidden", "output", jump, values={"w": weights["hidden_output"]})))
    step = f"{dt or task.dt}*second"
    return Simulation(network, RunSettings(f"{task.duration}*second", record=("output.v",), timing=Timing(dt=step)))


def logits(output_v):
    """Class scores from recorded output v (..., steps, classes): the mean over time."""
    return output_v.mean(-2)
