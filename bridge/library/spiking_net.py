"""Seed 002's two-layer SpikingNet, written once for both backends.

Per seed step k: x_k = image * flicker_k (uniform noise); hidden inner_k = 0.9 inner_{k-1} + W1 x_k + b1,
graded output relu(inner_k - 1) and penalty inner_k -= 1.5 inner_k where it fired; the output layer does
the same with W2 (hidden output of step k-1) + b2; logits = the output layer's (delayed) inner state
averaged over the 128 steps (the seed's comment says "Sum on outputs", but its OutputDataToSpikingPerceptronLayer
with average_output=False reduces with mean). Here: pixels are `graded_input` units, both layers `penalty_layer` neurons, biases
synapses from a source that fires every step. The hidden layer's output reaches the output layer one step
later (the seed's delayed output), so the output layer runs `LATENCY` steps behind the seed and the run is
LATENCY steps longer; its recorded v summed over the run, divided by the seed's steps, is the seed's logits.
"""
from dataclasses import dataclass

import numpy as np

from bridge.description import (CurrentInjection, Network, Population, Projection, RunSettings, Simulation,
                                SpikeTrains, SynapseModel, Timing)
from bridge.library.neurons import graded_input, penalty_layer

LATENCY = 2
DT = 0.1e-3
WEIGHT_SHAPES = {"input_hidden": ("n_inputs", "n_hidden"), "bias_hidden": ("n_hidden",),
                 "hidden_output": ("n_hidden", "n_classes"), "bias_output": ("n_classes",)}


@dataclass(frozen=True)
class NetShape:
    n_inputs: int = 64
    n_hidden: int = 100
    n_classes: int = 10
    seed_steps: int = 128

    @property
    def n_steps(self):
        return self.seed_steps + LATENCY

    def weight_shape(self, name):
        return tuple(getattr(self, dim) for dim in WEIGHT_SHAPES[name])


def initial_weights(shape, rng):
    """As the seed's nn.Linear layers: Xavier-uniform weights, biases uniform in +-1/sqrt(fan_in)."""
    weights = {}
    for layer, (fan_in, fan_out) in (("hidden", (shape.n_inputs, shape.n_hidden)),
                                     ("output", (shape.n_hidden, shape.n_classes))):
        source = "input" if layer == "hidden" else "hidden"
        bound = np.sqrt(6 / (fan_in + fan_out))
        weights[f"{source}_{layer}"] = rng.uniform(-bound, bound, (fan_in, fan_out))
        weights[f"bias_{layer}"] = rng.uniform(-1 / np.sqrt(fan_in), 1 / np.sqrt(fan_in), fan_out)
    return weights


def simulation(weights, shape=NetShape(), stimulus_values=None):
    """Seed 002's two-layer SpikingNet of penalty neurons with `weights` (see WEIGHT_SHAPES) for one stimulus
    (n_steps, n_inputs; default zeros)."""
    for name, expected in ((n, shape.weight_shape(n)) for n in WEIGHT_SHAPES):
        if np.shape(weights[name]) != expected:
            raise ValueError(f"weights[{name!r}]: shape {np.shape(weights[name])}; expected {expected}")
    values = np.zeros((shape.n_steps, shape.n_inputs)) if stimulus_values is None else stimulus_values
    graded = lambda var: SynapseModel(model="w : 1", on_pre=f"I_in_post += w*{var}_pre")
    bias = SynapseModel(model="w : 1", on_pre="I_in_post += w")
    step = f"{DT}*second"
    projections = (
        Projection("input_hidden", "pixels", "hidden", graded("x"), values={"w": weights["input_hidden"]}),
        Projection("hidden_output", "hidden", "output", graded("out"), values={"w": weights["hidden_output"]},
                   delays=step),
        Projection("bias_hidden", "bias", "hidden", bias, i=[0] * shape.n_hidden, j=range(shape.n_hidden),
                   values={"w": weights["bias_hidden"]}),
        Projection("bias_output", "bias", "output", bias, i=[0] * shape.n_classes, j=range(shape.n_classes),
                   values={"w": weights["bias_output"]}, delays=step),
    )
    network = Network(
        populations=(Population("pixels", graded_input(), shape.n_inputs),
                     Population("hidden", penalty_layer(step=step), shape.n_hidden),
                     Population("output", penalty_layer(step=step), shape.n_classes)),
        sources=(SpikeTrains("bias", 1, [0] * shape.n_steps, np.arange(shape.n_steps) * DT),),
        currents=(CurrentInjection("image", "pixels", "x", values),),
        projections=projections)
    return Simulation(network, RunSettings(f"{shape.n_steps * DT}*second", dtype="float64",
                                           record=("hidden.v", "output.v"), timing=Timing(dt=step)))
