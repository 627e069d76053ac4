"""The model library: every named model and circuit, written once as data, each with a crosscheck scenario
(`scenario(name, seed)`: a Simulation that drives it, as `spikebridge crosscheck NAME` runs it).

Neuron models (bridge/library/neurons.py) are driven by seeded Poisson trains through random synapses with
random per-synapse delays; seed 003's inhibitory delay-adjustment circuit (delay_circuit.py) by one random
pattern; seed 002's SpikingNet (spiking_net.py), made of `graded_input` and `penalty_layer` units, by random
weights and a random flickering image.
"""
import json
from pathlib import Path

import numpy as np

from bridge.description import from_json
from bridge.errors import DescriptionError
from bridge.library import delay_circuit, spiking_net
from bridge.library.neurons import (coincidence, coincidence_scenario, feedforward, graded_input, lif,  # noqa: F401
                                    lif_euler, lif_euler_scenario, lif_scenario, penalty, penalty_layer,
                                    penalty_scenario, weighted_sum, weighted_sum_scenario)


def delay_circuit_scenario(seed=0):
    return delay_circuit.simulation(delay_circuit.CircuitParameters(pattern_seed=seed))


def spiking_net_scenario(seed=0):
    rng = np.random.default_rng(seed)
    shape = spiking_net.NetShape()
    image = rng.uniform(-0.5, 0.5, shape.n_inputs)
    flicker = np.zeros((shape.n_steps, shape.n_inputs))
    flicker[:shape.seed_steps] = image * rng.random((shape.seed_steps, shape.n_inputs))
    return spiking_net.simulation(spiking_net.initial_weights(shape, rng), shape, flicker)


MODELS = {  # name -> (the model or circuit, its crosscheck scenario)
    "lif": (lif, lif_scenario),
    "lif_euler": (lif_euler, lif_euler_scenario),
    "penalty": (penalty, penalty_scenario),
    "penalty_layer": (penalty_layer, spiking_net_scenario),
    "graded_input": (graded_input, spiking_net_scenario),
    "coincidence": (coincidence, coincidence_scenario),
    "weighted_sum": (weighted_sum, weighted_sum_scenario),
    "delay_circuit": (delay_circuit.simulation, delay_circuit_scenario),
    "spiking_net": (spiking_net.simulation, spiking_net_scenario),
}

def scenario(name, seed=0, **kwargs):
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; library models: {sorted(MODELS)}")
    return MODELS[name][1](seed=seed, **kwargs)


def simulation(model_or_file, seed=0, folder="."):
    """A Simulation from a description file (a path relative to `folder`) or a library model's scenario."""
    path = Path(folder) / model_or_file
    if path.suffix == ".json" or path.exists():
        try:
            return from_json(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DescriptionError(str(path), f"cannot read a description: {err}") from None
        except DescriptionError as err:
            raise DescriptionError(str(path), str(err)) from None
    return scenario(model_or_file, seed=seed)
