"""Neuron models, each written once as data, and the crosscheck scenarios that drive them.

Scenario: `n` neurons of the model, fed by seeded Poisson trains through random synapses with random
per-synapse delays in [0, 20] ms and random weights; 1 s at dt = 0.1 ms by default.
"""

import numpy as np

from bridge.description import (NeuronModel, Network, Population, PoissonTrains, Projection, RunSettings,
                                Simulation, SpikeTrains, SynapseModel, Timing)


def lif():
    """Leaky integrate-and-fire, current-based, with an exponentially decaying synaptic current."""
    return NeuronModel(
        equations="""dv/dt = (E_L - v + R_m*I_syn)/tau_m : volt (unless refractory)
                     dI_syn/dt = -I_syn/tau_syn : amp""",
        threshold="v > V_th", reset="v = V_reset", refractory="2*ms",
        parameters={"E_L": "-70*mV", "V_th": "-50*mV", "V_reset": "-65*mV", "R_m": "100*Mohm",
                    "tau_m": "20*ms", "tau_syn": "5*ms"})


def lif_euler(tau_mem="10*ms", tau_syn="5*ms", v_th="1", v_reset="0", v_leak="0"):
    """Current-based LIF in dimensionless units, integrated with forward Euler: the neuron of Norse's LIFCell
    (its defaults), used by the performance benchmark. Synapses add to I."""
    return NeuronModel(
        equations="""dv/dt = (v_leak - v + I)/tau_mem : 1
                     dI/dt = -I/tau_syn : 1""",
        threshold="v > v_th", reset="v = v_reset", method="euler",
        parameters={"tau_mem": tau_mem, "tau_syn": tau_syn, "v_th": v_th, "v_reset": v_reset, "v_leak": v_leak})


def feedforward(weights, neuron, duration, dt="1*ms", record=()):
    """Dense layers without delays: source 'input' -> 'layer_1' -> ... -> 'layer_k', weights[k-1] of shape
    (n_source, n_target) for projection 'to_layer_k', whose spikes add w to the target's I."""
    synapse = SynapseModel(model="w : 1", on_pre="I_post += w")
    names = ["input"] + [f"layer_{k}" for k in range(1, len(weights) + 1)]
    network = Network(
        populations=tuple(Population(name, neuron, w.shape[1]) for name, w in zip(names[1:], weights)),
        sources=(SpikeTrains("input", weights[0].shape[0]),),
        projections=tuple(Projection(f"to_{target}", source, target, synapse, values={"w": w})
                          for source, target, w in zip(names, names[1:], weights)))
    return Simulation(network, RunSettings(duration=duration, record=tuple(record), timing=Timing(dt=dt)))


def penalty(decay=0.9, threshold=1.0, penalty_threshold=1.5, step="0.1*ms"):
    """Seed 002's refractory "penalty" neuron (SpikingNeuronLayerRNN). Per step of length `step` the inner
    state decays by `decay` (dv/dt = log(decay)*v/step, integrated exactly), it fires when
    v > threshold, and firing subtracts penalty_threshold/threshold * v (the seed's code:
    inner -= gate * (penalty_threshold/threshold * inner)), leaving a negative, refractory-like state."""
    return NeuronModel(
        equations="dv/dt = log(decay)*v/step : 1",
        threshold="v > threshold", reset="v = v - (penalty_threshold/threshold)*v",
        parameters={"decay": repr(decay), "threshold": repr(threshold),
                    "penalty_threshold": repr(penalty_threshold), "step": step})


def penalty_layer(decay=0.9, threshold=1.0, penalty_threshold=1.5, step="0.1*ms"):
    """Seed 002's SpikingNeuronLayerRNN as its code computes it, with graded output: per step
    v <- decay*v + I_in (Euler with dt = step makes this exact; I_in, the input summed by synapses in the
    previous step, is used once), fire when v > threshold, then out = v - threshold (the seed's
    relu(inner - threshold), sent on by synapses `I_in_post += w*out_pre`) and the penalty
    v -= penalty_threshold/threshold * v. Needs dt = step."""
    return NeuronModel(
        equations="""dv/dt = ((decay - 1)*v + I_in)/step : 1
                     dI_in/dt = -I_in/step : 1
                     out : 1""",
        threshold="v > threshold", reset="out = v - threshold\nv = v - (penalty_threshold/threshold)*v",
        method="euler", parameters={"decay": repr(decay), "threshold": repr(threshold),
                                    "penalty_threshold": repr(penalty_threshold), "step": step})


def graded_input():
    """An input unit whose value x (set each step by a CurrentInjection) is sent on by synapses
    `I_in_post += w*x_pre` whenever it is not zero."""
    return NeuronModel(equations="x : 1", threshold="x != 0")


def coincidence(tau="1000*ms", gain="2000", tau_s="0.5*ms", tau_th="50*ms", v_th0="8"):
    """Seed 003's coincidence neuron: two traces s_1 (reference input) and s_2 (plastic input) decay with
    tau_s; their product drives v; the threshold v_th decays with tau_th and is reset to v_th0 when the
    neuron fires (the seed resets it from the neuron's own spike). Integrated with rk4, as in the seed."""
    return NeuronModel(
        equations="""dv/dt = (-v + gain*s_1*s_2)/tau : 1
                     ds_1/dt = -s_1/tau_s : 1
                     ds_2/dt = -s_2/tau_s : 1
                     dv_th/dt = -v_th/tau_th : 1""",
        threshold="v >= v_th", reset="v = 0\nv_th = v_th0", method="rk4",
        parameters={"tau": tau, "gain": gain, "tau_s": tau_s, "tau_th": tau_th, "v_th0": v_th0})


def weighted_sum(theta="1"):
    """Seed 001's weighted sum as a spiking unit: v accumulates w for each input spike (no leak) and
    fires with subtractive reset, so v + theta*count is exactly sum_i w_i * (input count)_i."""
    return NeuronModel(equations="v : 1", threshold="v > theta", reset="v -= theta", parameters={"theta": theta})


def _random_projection(name, source, target, n_source, n_target, synapse, weight, p, rng, max_delay_ms=20.0):
    connected = rng.random((n_source, n_target)) < p
    i, j = np.nonzero(connected)
    delays = np.round(rng.uniform(0, max_delay_ms, len(i)), 1) * 1e-3  # whole 0.1 ms steps
    low, high = weight
    return Projection(name, source, target, synapse, i=i, j=j, values={"w": rng.uniform(low, high, len(i))},
                      delays=delays, max_delay=f"{max_delay_ms}*ms")


def _scenario(population, inputs, projections, record, duration):
    return Simulation(Network(populations=(population,), sources=tuple(inputs), projections=tuple(projections)),
                      RunSettings(duration=duration, record=record, timing=Timing(dt="0.1*ms")))


def _poisson_driven(name, model, projection, variable, unit, weight, p, record, seed, n, n_inputs, rate, duration,
                    initial=None):
    """`n` neurons of `model` driven by Poisson trains through random synapses `variable_post += w`."""
    rng = np.random.default_rng(seed)
    pop = Population(name, model, n, initial=initial(rng) if initial else {})
    synapse = SynapseModel(model=f"w : {unit}", on_pre=f"{variable}_post += w")
    proj = _random_projection(projection, "poisson", name, n_inputs, n, synapse, weight, p, rng)
    return _scenario(pop, [PoissonTrains("poisson", n_inputs, rate, seed)], [proj], record, duration)


def lif_scenario(seed=0, n=40, n_inputs=100, rate="20*Hz", weight=(0.0, 0.1e-9), duration="1*second"):
    return _poisson_driven("lif", lif(), "input_to_lif", "I_syn", "amp", weight, 0.5, ("lif.v", "lif.I_syn"), seed,
                           n, n_inputs, rate, duration, initial=lambda rng: {"v": rng.uniform(-70e-3, -55e-3, n)})


def penalty_scenario(seed=0, n=20, n_inputs=50, rate="30*Hz", duration="1*second"):
    return _poisson_driven("penalty", penalty(), "input_to_penalty", "v", "1", (0.2, 0.6), 0.5, ("penalty.v",), seed,
                           n, n_inputs, rate, duration)


def coincidence_scenario(seed=0, n=20, n_inputs=20, rate="40*Hz", duration="1*second"):
    rng = np.random.default_rng(seed)
    pop = Population("coincidence", coincidence(), n, initial={"v_th": "8"})
    projections = [_random_projection(f"{trace}_input", f"input_{trace}", "coincidence", n_inputs, n,
                                      SynapseModel(model="w : 1", on_pre=f"{trace}_post += w"), (0.5, 1.5), 0.5, rng)
                   for trace in ("s_1", "s_2")]
    sources = [PoissonTrains(f"input_{trace}", n_inputs, rate, seed + k) for k, trace in enumerate(("s_1", "s_2"))]
    return _scenario(pop, sources, projections, ("coincidence.v", "coincidence.v_th"), duration)


def weighted_sum_scenario(seed=0, n=10, n_inputs=30, rate="20*Hz", duration="1*second"):
    return _poisson_driven("weighted_sum", weighted_sum(), "input_to_sum", "v", "1", (-0.2, 0.6), 0.7,
                           ("weighted_sum.v",), seed, n, n_inputs, rate, duration)


def lif_euler_scenario(seed=0, n=20, n_inputs=100, rate="20*Hz", duration="1*second"):
    return _poisson_driven("lif_euler", lif_euler(), "input_to_lif", "I", "1", (0.0, 0.8), 0.5, ("lif_euler.v",), seed,
                           n, n_inputs, rate, duration)
