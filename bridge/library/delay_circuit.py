"""Seed 003's inhibitory delay-adjustment circuit, written once for both backends.

A reference source and a plastic source send the same 10 ms random pattern (p = 0.5, 1 ms grid, repeated
with 3 ms gaps) to N competing coincidence neurons (library.coincidence: the two input traces multiply,
the threshold decays and is reset by the neuron's own spike). The reference arrives with a fixed delay;
the plastic source reaches neuron k with its own delay d_k, a neuron variable read whenever the plastic
source spikes (delay_mode 'dynamic'). The first neuron to fire inhibits the others: their v and
thresholds reset and their delay moves by `delay_step`. The plastic source fires the pattern `offset`
earlier than the reference, so the aligning delay is reference_delay + offset (modulo the pattern period).

The seed's code is rule 'seed' with delay_range 'grow' and initial_delays 'consecutive'. The circuit works
(>= 95 % in sweeps of random patterns) with three changes, each measured by the experiment `delay-circuit`:
- rule 'yield_by_index': of neurons that fire in the same step only the higher-indexed yield (move); under
  'seed' they all move, and two neurons that share a delay stay in lockstep forever. It needs `lastspike`,
  so the neuron gets refractory = 0 ms.
- delay_range 'reflect': delays live in [0, period - delay_step] (every alignment once) and reflect at both
  ends, so they always move by one step. Under 'grow' (the seed) a delay change takes effect at the target
  only after the delay itself has passed (emission-time delays), so a neuron reaching the aligning delay late
  in the run, with a long delay, loses its first races to its own stale input. Under 'wrap' (one period) the
  jump from the top of the range to 0 delivers the spikes in flight together with the new ones: the neuron
  receives the pattern twice and beats an aligned winner.
- initial_delays 'spread': the neurons start evenly spread over the range instead of 0, 1, 2, ... steps, so
  sparse patterns (few coincidences, slow races) are searched in parallel.
"""
import dataclasses
from dataclasses import dataclass

import numpy as np

from bridge.description import (Network, Population, Projection, RunSettings, Simulation, SpikeTrains, SynapseModel,
                                Timing)
from bridge.library.neurons import coincidence

RULES = {
    "seed": "v_post = 0\nv_th_post = v_th0\nd_post += delay_step",
    "yield_by_index": "moved = int(lastspike_post < t or j > i)\nv_post = 0\nv_th_post = v_th0\n"
                      "d_post += moved*delay_step",
}


DELAY_RANGES = ("reflect", "wrap", "grow")
INITIAL_DELAYS = ("spread", "consecutive")
SEED_CIRCUIT = {"rule": "seed", "delay_range": "grow", "initial_delays": "consecutive"}


@dataclass(frozen=True)
class CircuitParameters:
    """Seed 003's values are the defaults (times in ms); the circuit's rules default to the working ones
    (SEED_CIRCUIT: the seed's). `initial_delays`: 'spread', 'consecutive' (0, 1, 2, ... delay steps) or one
    delay (ms) per neuron."""
    n_neurons: int = 2
    offset: float = 0.0
    pattern_seed: int = 0
    rule: str = "yield_by_index"
    delay_range: str = "reflect"
    initial_delays: object = "spread"
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

    def __post_init__(self):
        for name, allowed in (("rule", sorted(RULES)), ("delay_range", DELAY_RANGES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"CircuitParameters.{name} {getattr(self, name)!r}; allowed: {allowed}")
        if isinstance(self.initial_delays, str):
            if self.initial_delays not in INITIAL_DELAYS:
                raise ValueError(f"CircuitParameters.initial_delays {self.initial_delays!r}; allowed: "
                                 f"{INITIAL_DELAYS} or one delay (ms) per neuron")
        elif len(self.initial_delays) != self.n_neurons:
            raise ValueError(f"CircuitParameters.initial_delays: {len(self.initial_delays)} delays for "
                             f"{self.n_neurons} neurons")

    @property
    def period(self):
        return self.pattern_length + self.gap

    @property
    def aligning_delay(self):
        return self.reference_delay + self.offset

    @property
    def positions(self):
        """Delays on the delay-step grid within one period: every alignment once."""
        return round(self.period / self.delay_step)

    @property
    def max_delay(self):
        """'reflect': the last position; 'wrap': one period minus dt; 'grow': the run's length, so no delay
        leaves the range within the run."""
        return {"reflect": (self.positions - 1) * self.delay_step, "wrap": self.period - self.dt,
                "grow": (self.repetitions + 2) * self.period - self.dt}[self.delay_range]

    @property
    def overflow(self):
        """The plastic projection's delay_overflow."""
        return {"reflect": "reflect", "wrap": "wrap", "grow": "error"}[self.delay_range]

    def delays_at_start(self):
        if self.initial_delays == "consecutive":
            return tuple(k * self.delay_step for k in range(self.n_neurons))
        if self.initial_delays == "spread":
            return tuple(k * self.positions // self.n_neurons * self.delay_step for k in range(self.n_neurons))
        return tuple(self.initial_delays)

    def pattern(self):
        """Spike times (ms) within one period, drawn as the seed draws them (pattern_seed 0: the seed's own
        pattern, 1 2 3 4 6 8 9 ms)."""
        rng = np.random.RandomState(self.pattern_seed)
        bits = rng.choice([0, 1], size=self.pattern_length, p=[1 - self.p_spike, self.p_spike])
        return np.nonzero(bits)[0] + 1.0

    def plastic_times(self):
        return (self.pattern()[None, :] + self.period * np.arange(self.repetitions)[:, None]).ravel()


def simulation(params=CircuitParameters()):
    """Seed 003's inhibitory delay-adjustment circuit, delays changing during the run; records v, v_th, d."""
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
                   delay_overflow=params.overflow),
        Projection("inhibition", "neurons", "neurons", inhibition, i=i, j=j),
    )
    n_steps = round((params.period * (params.repetitions + 1) + params.reference_delay) / params.dt)
    run = RunSettings(f"{n_steps * params.dt}*ms", record=("neurons.v", "neurons.v_th", "neurons.d"),
                      timing=Timing(dt=f"{params.dt}*ms"))
    return Simulation(Network((neurons,), (plastic, reference), (), projections), run)
