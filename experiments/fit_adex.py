"""Experiment `fit-adex`: an adaptive exponential integrate-and-fire neuron (Brette & Gerstner 2005) whose
leak, adaptation coupling, spike-triggered adaptation and adaptation time constant are learned by gradient from
its spike times alone, under a noisy current, then judged on a current it never saw.

The model is a Brian2 script as a user writes it (written into OUT/model.py): eight trials of the neuron, each
driven by its own Ornstein-Uhlenbeck current (a TimedArray of a seeded draw). The target is Brian2's run of it
with the true values; `spikebridge fit` learns the four (shared, bounded) from four starts 20-50 % off, one
batch, loss the van Rossum distance of the spike trains. The held-out test (OUT/heldout.py: the same script,
other currents): the fitted model and the true one run in Brian2, compared by the Gamma factor (4 ms window).
Passing (the issue's acceptance (b)): Gamma factor >= 0.9 on the held-out currents, the fitted model identical
in Brian2. `quick`: 30 ms and three steps, to test the mechanics.
"""
import json
from pathlib import Path

from bridge.app import files, fit, fit_losses
from bridge.app.brian2_scripts import from_brian2
from bridge.learn import learnable_form, learned, written_back

TRUE = {"neuron.gL": "30*nS", "neuron.a": "4*nS", "neuron.b": "0.0805*nA", "neuron.tauw": "144*ms"}
LEARN = {"neuron.gL": ("10*nS", "60*nS"), "neuron.a": ("0*nS", "20*nS"), "neuron.b": ("0*nA", "0.3*nA"),
         "neuron.tauw": ("20*ms", "500*ms")}
STARTS = {"neuron.gL": ["24*nS", "36*nS", "22*nS", "38*nS"], "neuron.a": ["2*nS", "6*nS", "5*nS", "3*nS"],
          "neuron.b": ["0.06*nA", "0.1*nA", "0.11*nA", "0.055*nA"],
          "neuron.tauw": ["110*ms", "180*ms", "100*ms", "190*ms"]}
SEEDS = {"model.py": 1, "heldout.py": 2}  # the currents' draws
MODEL = '''from brian2 import *
import numpy as np

# adaptive exponential integrate-and-fire neuron (Brette & Gerstner 2005)
C, gL, EL = 281*pF, 30*nS, -70.6*mV
VT, DeltaT = -50.4*mV, 2*mV
tauw, a, b = 144*ms, 4*nS, 0.0805*nA
Vr, Vcut = -70.6*mV, -40.4*mV
defaultclock.dt = 0.1*ms

# eight trials, each of its own noisy current: Ornstein-Uhlenbeck, 5 ms correlation time, 0.8 +- 0.3 nA
rng = np.random.default_rng(NOISE_SEED)
steps, trials = STEPS, 8
noise = np.zeros((steps, trials))
for k in range(1, steps):
    noise[k] = noise[k - 1]*np.exp(-0.1/5) + np.sqrt(1 - np.exp(-0.2/5))*rng.standard_normal(trials)
stimulus = TimedArray((0.8 + 0.3*noise)*nA, dt=defaultclock.dt)

eqs = """
dvm/dt = (gL*(EL - vm) + gL*DeltaT*exp((vm - VT)/DeltaT) + stimulus(t, i) - w)/C : volt
dw/dt = (a*(vm - EL) - w)/tauw : amp
"""
neuron = NeuronGroup(trials, eqs, threshold='vm > Vcut', reset='vm = Vr; w += b', method='euler', name='neuron')
neuron.vm = EL
spikes = SpikeMonitor(neuron)
run(steps*defaultclock.dt)
'''


def write_files(out, quick, seed):
    """The model script, the held-out script and the FIT file, in the folder `out`."""
    out.mkdir(parents=True, exist_ok=True)
    steps, fit_steps = (300, 3) if quick else (2500, 200)
    for name, noise_seed in SEEDS.items():
        (out / name).write_text(MODEL.replace("NOISE_SEED", str(noise_seed)).replace("STEPS", str(steps)))
    learn = {key: {"shared": True, "low": low, "high": high} for key, (low, high) in LEARN.items()}
    (out / "fit.json").write_text(json.dumps({
        "model": "model.py", "learn": learn, "starts": STARTS, "target": {"values": TRUE},
        "loss": {"spikes": {"neuron": 1}, "van_rossum_tau": "10*ms"},
        "optimizer": {"lr": 0.02, "steps": fit_steps}, "seed": seed}, indent=1))


def held_out(out, learned_values):
    """The Gamma factor of the fitted model against the true one on the held-out currents, both run by Brian2,
    and their spike counts."""
    from brian_models.network import run as run_brian

    simulation = from_brian2(out / "heldout.py")
    items = learned(simulation, {key: "shared" for key in TRUE})
    form = learnable_form(simulation, items)
    true = {item.key: fit.si_values(TRUE[item.key], item, f"TRUE[{item.key!r}]") for item in items}
    runs = {name: run_brian(written_back(form, items, values)) for name, values in
            (("true", true), ("fitted", learned_values))}
    n, record = simulation.network.width("neuron"), runs["true"]
    return {"gamma_factor": fit_losses.population_gamma_factor(runs["fitted"].spikes["neuron"], record.spikes["neuron"],
                                                        n, record.dt, record.n_steps * record.dt),
            "spikes": {name: run.count("neuron") for name, run in runs.items()}}


def run(out="results/fit_adex", seed=0, quick=False, device=None, resume=False):
    """The experiment; returns the results dict (bridge/app/fit.py's, with the held-out test and the verdict)."""
    out = Path(out)
    write_files(out, quick, seed)
    results = fit.run(out / "fit.json", out, resume=resume)
    chosen = {key: value["values"] for key, value in results["learned"].items()}
    results.update(experiment="fit-adex", quick=quick, held_out=held_out(out, chosen))
    results["passed"] = bool(results["held_out"]["gamma_factor"] >= 0.9 and
                             results["validation"]["identical_spikes"])
    files.write_json(out / "results.json", results)
    return results


def summary(results):
    lines = [f"fit-adex ({'quick' if results['quick'] else 'full'}): {results['steps_run']} steps, "
             f"{results['starts']} starts, {results['seconds']:.0f} s",
             f"  spike distance: {min(results['loss']['first']):.4g} at the best start, "
             f"{min(results['loss']['final']):.4g} learned"]
    for key, true in results["true"].items():
        learned_value = results["learned"][key]["values"][0]
        lines.append(f"  {key:12s} true {true['values'][0]:.6g}  learned {learned_value:.6g} {true['unit']}  "
                     f"error {100 * results['relative_error'][key]:.1f} %")
    validation, held = results["validation"], results["held_out"]
    lines += [f"  training currents: Gamma factor {validation['gamma_factor']['neuron']:.3f}; Brian2: spikes "
              f"{'identical' if validation['identical_spikes'] else 'NOT identical'}",
              f"  held-out currents: Gamma factor {held['gamma_factor']:.3f} ({held['spikes']['fitted']} spikes, "
              f"{held['spikes']['true']} true); passed: {results['passed']}"]
    return "\n".join(lines)
