"""Seed 003's inhibitory delay-adjustment circuit, written once for both backends.

A reference source and a plastic source send the same 10 ms random pattern (p = 0.5, 1 ms grid, repeated
with 3 ms gaps) to N competing coincidence neurons (library.coincidence: the two input traces multiply,
the threshold decays and is reset by the neuron's own spike). The reference arrives with a fixed delay;
the plastic source reaches neuron k with its own delay d_k, a neuron variable read whenever the plastic
source spikes (delay_mode 'dynamic'). The first neuron to fire inhibits the others: their v and
thresholds reset and their delay moves by `delay_step`. The plastic source fires the pattern `offset`
earlier than the reference, so the aligning delay is reference_delay + offset (modulo the pattern period).
Delays wrap modulo max_delay + dt, one period by default, so a delay pushed past the range starts again.

Rules ('rule'): 'seed' is the seed's inhibitory code (v, threshold reset; d_post += delay_step for every
inhibiting spike). 'yield_by_index' is the smallest change we found that makes it work: of neurons that fire
in the same step only the higher-indexed yield (move); the seed lets them all move, and two neurons that
share a delay then stay in lockstep forever. It needs `lastspike`, so the neuron gets refractory = 0 ms.
"""
import dataclasses
from dataclasses import dataclass

import numpy as np

from bridge.description import (Network, Population, Projection, RunSettings, Simulation, SpikeTrains, SynapseModel,
                                Timing)
from bridge.library import coincidence

RULES = {
    "seed": "v_post = 0\nv_th_post = v_th0\nd_post += delay_step",
    "yield_by_index": "moved = int(lastspike_post < t or j > i)\nv_post = 0\nv_th_post = v_th0\n"
                      "d_post += moved*delay_step",
}


@dataclass(frozen=True)
class CircuitParameters:
    """Seed 003's values are the defaults (times in ms). `initial_delays` default to 0, 1, 2, ... steps."""
    n_neurons: int = 2
    offset: float = 0.0
    pattern_seed: int = 0
    rule: str = "seed"
    tau: float = 1000.0
    tau_threshold: float = 50.0
    threshold: float = 8.0
    tau_trace: float = 0.5
    dt: float = 0.1
    reference_delay: float = 1.0
    delay_step: float = 1.0
    pattern_length: int = 10
    gap: int = 3
    repetitions: int = 80
    p_spike: float = 0.5
    initial_delays: tuple = ()

    @property
    def period(self):
        return self.pattern_length + self.gap

    @property
    def aligning_delay(self):
        return self.reference_delay + self.offset

    @property
    def max_delay(self):
        """One period minus one step: with wrap-around, delays live on a circle of one period."""
        return self.period - self.dt

    def delays_at_start(self):
        return self.initial_delays or tuple(k * self.delay_step for k in range(self.n_neurons))

    def pattern(self):
        """Spike times (ms) within one period, drawn as the seed draws them (pattern_seed 0: the seed's own
        pattern, 1 2 3 4 6 8 9 ms)."""
        rng = np.random.RandomState(self.pattern_seed)
        bits = rng.choice([0, 1], size=self.pattern_length, p=[1 - self.p_spike, self.p_spike])
        return np.nonzero(bits)[0] + 1.0

    def plastic_times(self):
        return (self.pattern()[None, :] + self.period * np.arange(self.repetitions)[:, None]).ravel()


def simulation(params=CircuitParameters()):
    """The circuit as a Simulation that records v, v_th and the delays d of every neuron."""
    if params.rule not in RULES:
        raise ValueError(f"CircuitParameters.rule {params.rule!r}; allowed: {sorted(RULES)}")
    ms = 1e-3
    neuron = coincidence(tau=f"{params.tau}*ms", tau_s=f"{params.tau_trace}*ms", tau_th=f"{params.tau_threshold}*ms",
                         v_th0=repr(params.threshold))
    refractory = {"refractory": "0*ms"} if "lastspike" in RULES[params.rule] else {}  # gives lastspike
    neuron = dataclasses.replace(neuron, equations=neuron.equations + "\nd : second", **refractory)
    n = params.n_neurons
    neurons = Population("neurons", neuron, n, initial={"v_th": repr(params.threshold),
                                                        "d": [d * ms for d in params.delays_at_start()]})
    times = params.plastic_times()
    plastic = SpikeTrains("plastic", 1, [0] * len(times), times * ms)
    reference = SpikeTrains("reference", 1, [0] * len(times), (times + params.offset) * ms)
    i, j = np.nonzero(~np.eye(n, dtype=bool))
    inhibition = SynapseModel(on_pre=RULES[params.rule], parameters={"v_th0": repr(params.threshold),
                                                                     "delay_step": f"{params.delay_step}*ms"})
    projections = (
        Projection("reference_input", "reference", "neurons", SynapseModel(on_pre="s_1_post += 1"),
                   delays=f"{params.reference_delay}*ms"),
        Projection("plastic_input", "plastic", "neurons", SynapseModel(on_pre="s_2_post += 1"),
                   max_delay=f"{params.max_delay}*ms", delay_mode="dynamic", delay_variable="d_post",
                   delay_overflow="wrap"),
        Projection("inhibition", "neurons", "neurons", inhibition, i=i, j=j),
    )
    n_steps = round((params.period * (params.repetitions + 1) + params.reference_delay) / params.dt)
    run = RunSettings(f"{n_steps * params.dt}*ms", record=("neurons.v", "neurons.v_th", "neurons.d"),
                      timing=Timing(dt=f"{params.dt}*ms"))
    return Simulation(Network((neurons,), (plastic, reference), (), projections), run)


def delays_in_force(d_trace, params):
    """The delay (ms) each neuron's plastic input has at every step: its variable d by the wrap rule."""
    steps = np.floor(np.asarray(d_trace) / (params.dt * 1e-3) + 0.5)
    return (steps % round((params.max_delay + params.dt) / params.dt)) * params.dt


def aligning_delays(params):
    """Delays on the delay-step grid in [0, max_delay] that make the most plastic spikes coincide with
    reference spikes (the aligning delay, and its equivalents when the pattern repeats within itself)."""
    period_steps = round(params.period / params.dt)
    pattern = np.zeros(period_steps, dtype=int)
    pattern[np.round(params.pattern() / params.dt).astype(int) % period_steps] = 1
    reference = np.roll(pattern, round(params.aligning_delay / params.dt))
    candidates = np.arange(0, params.max_delay + 1e-9, params.delay_step)
    overlap = np.array([np.dot(np.roll(pattern, round(c / params.dt)), reference) for c in candidates])
    return candidates[overlap == overlap.max()]


def _circle_distance(delays, targets, circle):
    gap = np.abs(np.asarray(delays, dtype=float)[..., None] - np.asarray(targets)[None, :]) % circle
    return np.minimum(gap, circle - gap).min(axis=-1)


def outcome(neurons, steps, d_trace, params, final_fraction=0.2):
    """What the circuit learned. The winner-take-all keeps the delay of the neuron that keeps winning;
    losers keep moving. The learned delay: the delay most spikes in the final `final_fraction` of the run
    were fired with. Settled: all those spikes were fired with delays within one delay step of it (on the
    circle); settle time: the first spike of the final stretch of such spikes. Success: settled, and the
    learned delay within one delay step of an aligning delay."""
    delays = delays_in_force(d_trace, params)
    n_steps, circle = len(delays), params.max_delay + params.dt
    winning = delays[steps, neurons]
    late = winning[steps >= (1 - final_fraction) * n_steps]
    result = {"aligning_delays_ms": aligning_delays(params).tolist(),
              "final_delays_ms": delays[-1].round(6).tolist(), "settled": False,
              "learned_delay_ms": None, "error_ms": None, "settle_time_ms": None, "success": False}
    if len(late) == 0:
        return result
    values, counts = np.unique(late, return_counts=True)
    learned = values[np.argmax(counts)]
    near = _circle_distance(winning, [learned], circle) <= params.delay_step + 1e-9
    settled = bool(np.all(near[len(winning) - len(late):]))
    error = float(_circle_distance(learned, aligning_delays(params), circle))
    first = np.nonzero(~near)[0][-1] + 1 if not np.all(near) else 0
    result.update(learned_delay_ms=round(float(learned), 6), error_ms=round(error, 6), settled=settled,
                  settle_time_ms=round(float(steps[first] * params.dt), 6) if settled else None,
                  success=settled and error <= params.delay_step + 1e-9)
    return result
