"""Delays in whole time steps: one rounding rule for every delay mode and a declared rule for delays that
leave [0, max_delay] during a run. The functions take numpy arrays or torch tensors alike (operators and
methods both types share), so that both backends apply literally the same arithmetic.

Delay modes: 'static' (fixed), 'between_runs' (read from the delay variable at the start of
each run segment, Brian2's native behaviour), 'dynamic' (read from the delay variable whenever a spike is
emitted; spikes in flight keep the delay they were emitted with).
"""
from dataclasses import dataclass

from bridge.errors import DescriptionError

DELAY_MODES = ("static", "between_runs", "dynamic")
DELAY_OVERFLOW = ("error", "clip", "wrap", "reflect")
OFF_GRID = 1e-9  # steps: 'exact_steps' tolerates this much floating-point error
RING_WIDTH = 16  # synapse indices (int32) a row of a dynamic-delay ring holds before the ring widens


class DelayRangeError(DescriptionError):
    """A delay met at run time lies outside [0, max_delay] under delay_overflow='error'."""


def round_steps(ratio, rounding, where):
    """Delay/dt in whole steps: 'half_up' is floor(ratio + 1/2) (Brian2's int(d/dt + 0.5) for d >= 0);
    'exact_steps' demands whole steps. Returns floats holding whole numbers."""
    if rounding == "exact_steps":
        nearest = ratio.round()
        off = abs(ratio - nearest)
        if (off > OFF_GRID).any():
            worst = off.argmax()
            raise DescriptionError(where, f"delay of {float(ratio.reshape(-1)[worst]):.6g} steps of dt is not a "
                                          "whole number of steps under delay_rounding='exact_steps'")
        return nearest
    return (ratio + 0.5) // 1


@dataclass(frozen=True)
class DelayRule:
    """How one projection turns delays (seconds) into steps when a spike is emitted."""
    where: str
    dt: float
    max_steps: int
    rounding: str = "half_up"
    overflow: str = "error"

    @property
    def slots(self):
        """Ring-buffer length: every delay from 0 to max_steps."""
        return self.max_steps + 1

    @property
    def ring_bytes(self):
        """The smallest ring of spikes in flight for dynamic delays: a row of indices and a fill count per slot."""
        return self.slots * (RING_WIDTH * 4 + 8)

    def steps(self, delays):
        """Whole steps (as floats) by the rounding rule, then the overflow rule for [0, max_steps]."""
        steps = round_steps(delays / self.dt, self.rounding, self.where)
        if self.overflow == "clip":
            return steps.clip(0, self.max_steps)
        if self.overflow == "wrap":
            return steps % self.slots
        if self.overflow == "reflect":  # a triangle wave: 0 .. max_steps .. 0 .., one step at a time
            return self.max_steps - abs(steps % max(2 * self.max_steps, 1) - self.max_steps)
        outside = (steps < 0) | (steps > self.max_steps)
        if outside.any():
            bad = float(delays.reshape(-1)[outside.reshape(-1).nonzero()[0][0]])
            longest = self.max_steps * self.dt * 1e3
            raise DelayRangeError(self.where, f"delay {bad * 1e3:g} ms is outside [0, {longest:g}"
                                              " ms] (max_delay); keep delays in range or declare "
                                              "delay_overflow 'clip', 'wrap' or 'reflect'")
        return steps
