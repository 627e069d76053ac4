"""Experiment `fit-network`: a recurrent excitatory-inhibitory network, imported from a Brian2 script as users
write it, learns the weights and delays of its recurrent synapses until it spikes as a teacher does: the same
network with other (hidden) weights and delays, run by Brian2. Then the learned network is validated in Brian2.

The script (written into OUT/model.py): 40 excitatory and 10 inhibitory LIF neurons in volts with exponentially
decaying synaptic currents (as in Brian2's CUBA example), driven by 20 input trains of fixed spike times; E->E,
E->I and I->E synapses with per-synapse weights and delays (1-5 ms). The teacher's recurrent weights are the
script's scaled by factors drawn in [0.5, 1.5], its delays redrawn. `spikebridge fit` learns all six (per
synapse) from the van Rossum distance of both populations' spikes, in two stages: through the gradient of
whether each step spikes (spike_gradient 'existence', which adds and removes spikes), then through the spike
times' gradient (which moves them). Synaptic currents make spike times move continuously with weights and
delays; where inputs jump the voltage (`v_post += w`) a neuron spikes at the step an input arrives, and neither
gradient took the distance below 2.4x lower.
Passing (the issue's acceptance (c)): the spike-timing distance to the teacher at least 5x lower than at the
start, and the learned weights and delays identical in Brian2. `quick`: 30 ms and three steps (two, then one).
"""
import json
from pathlib import Path

import numpy as np

from bridge.app import files, fit
from bridge.app.brian2_scripts import from_brian2

RECURRENT = ("EE", "EI", "IE")
MODEL = '''from brian2 import *
import numpy as np

seed(11)
rng = np.random.default_rng(11)
tau, taue, taui = 10*ms, 5*ms, 8*ms
v_rest, v_th, v_reset = -70*mV, -50*mV, -65*mV
eqs = """
dv/dt = (v_rest - v + ge + gi)/tau : volt
dge/dt = -ge/taue : volt
dgi/dt = -gi/taui : volt
"""
E = NeuronGroup(40, eqs, threshold='v > v_th', reset='v = v_reset', method='exact', name='E')
I = NeuronGroup(10, eqs, threshold='v > v_th', reset='v = v_reset', method='exact', name='I')
E.v = 'v_rest + rand()*15*mV'
I.v = 'v_rest + rand()*15*mV'

times = rng.uniform(0, DURATION_S, 20 * RATE_TIMES) * second
inputs = SpikeGeneratorGroup(20, rng.integers(0, 20, len(times)), times, name='inputs')
feed = Synapses(inputs, E, 'w : volt', on_pre='ge_post += w', name='feed')
feed.connect(p=0.5)
feed.w = '12*mV'

def recurrent(source, target, name, weight, p, current='ge'):
    synapses = Synapses(source, target, 'w : volt', on_pre=f'{current}_post += w', name=name)
    synapses.connect(p=p)
    synapses.w = weight
    synapses.delay = 'rand()*4*ms + 1*ms'
    return synapses

EE = recurrent(E, E, 'EE', '4*mV', 0.2)
EI = recurrent(E, I, 'EI', '6*mV', 0.4)
IE = recurrent(I, E, 'IE', '-8*mV', 0.4, 'gi')
run(DURATION_S*second)
'''


def write_files(out, quick, seed):
    """The model script and the FIT file (the teacher's values from `seed`), in the folder `out`."""
    out.mkdir(parents=True, exist_ok=True)
    duration, steps = (0.03, (2, 1)) if quick else (0.1, (40, 120))
    (out / "model.py").write_text(MODEL.replace("DURATION_S", repr(duration)).replace("RATE_TIMES", "3"))
    network = from_brian2(out / "model.py").network
    rng = np.random.default_rng(seed)
    teacher = {}
    for name in RECURRENT:
        projection = next(p for p in network.projections if p.name == name)
        weights = projection.value_array("w", network.width(name))
        teacher[f"{name}.w"] = (weights * rng.uniform(0.5, 1.5, len(weights))).tolist()
        teacher[f"{name}.delay"] = (rng.integers(10, 50, len(weights)) * 1e-4).tolist()  # within max_delay
    (out / "fit.json").write_text(json.dumps({
        "model": "model.py", "learn": dict.fromkeys(teacher, "per_element"), "target": {"values": teacher},
        "loss": {"spikes": {"E": 1, "I": 1}, "van_rossum_tau": "10*ms"},
        "optimizer": [{"lr": 0.05, "steps": steps[0], "spike_gradient": "existence"},
                      {"lr": 0.01, "steps": steps[1], "spike_gradient": "timing"}], "seed": seed}))


def run(out="results/fit_network", seed=0, quick=False, device=None, resume=False):
    """The experiment; returns the results dict (bridge/app/fit.py's, with the experiment's verdict)."""
    out = Path(out)
    write_files(out, quick, seed)
    results = fit.run(out / "fit.json", out, resume=resume)
    first, final = results["loss"]["first"][0], min(results["loss"]["final"])
    results.update(experiment="fit-network", quick=quick, distance_reduction=first / final if final else None,
                   median_error=median_errors(results))
    results["passed"] = bool(final and first / final >= 5 and results["validation"]["identical_spikes"])
    files.write_json(out / "results.json", results)
    return results


def median_errors(results):
    """{key: (at the start, learned)}: the median distance of each learned kind from the teacher's values, relative
    for weights, in ms for delays (spikes like the teacher's need not come from the teacher's values)."""
    def median(key, values):
        true = np.asarray(results["true"][key]["values"])
        error = np.abs(np.asarray(values[key]["values"]) - true)
        return float(np.median(error * 1e3 if key.endswith(".delay") else error / np.abs(true)))
    return {key: (median(key, results["started_at"]), median(key, results["learned"])) for key in results["true"]}


def summary(results):
    validation = results["validation"]
    return "\n".join([
        f"fit-network ({'quick' if results['quick'] else 'full'}): {results['steps_run']} steps, "
        f"{results['seconds']:.0f} s",
        f"  spike distance to the teacher: {results['loss']['first'][0]:.4g} at the start, "
        f"{min(results['loss']['final']):.4g} learned ({results['distance_reduction']:.2f}x lower)",
        "  Gamma factors against the teacher: " + ", ".join(f"{name} {value:.3f}" for name, value in
                                                           validation["gamma_factor"].items()),
        "  median distance from the teacher's values, start -> learned (weights relative, delays in ms): " +
        ", ".join(f"{key} {start:.3g} -> {learned:.3g}" for key, (start, learned) in results["median_error"].items()),
        f"  Brian2: spikes {'identical' if validation['identical_spikes'] else 'NOT identical'}, loss "
        f"{validation['loss_brian2']:.4g} (torch {validation['loss_torch']:.4g}); passed: {results['passed']}"])
