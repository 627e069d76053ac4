"""The common record both backends return: spikes as (neuron, step) pairs and state traces in SI units."""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Record:
    backend: str
    dt: float
    n_steps: int
    spikes: dict            # population -> (neuron indices, step indices), sorted by step then neuron
    traces: dict            # record key -> array (rows, elements), recorded at the start of a step (description.py)
    margins: dict = field(default_factory=dict)  # population -> (n_steps, n): how far past threshold

    def __post_init__(self):
        for name, (neurons, steps) in self.spikes.items():
            order = np.lexsort((neurons, steps))
            self.spikes[name] = (np.asarray(neurons)[order], np.asarray(steps)[order])

    def spike_set(self, population):
        neurons, steps = self.spikes[population]
        return set(zip(neurons.tolist(), steps.tolist()))

    def count(self, population):
        return len(self.spikes[population][0])

    def to_neo(self, simulation):
        """This record of `simulation` as a neo.Block of one Segment (bridge/neo_records.py)."""
        from bridge.neo_records import block
        return block([self], simulation)
