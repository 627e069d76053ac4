"""Experiment `fit-hh`: the conductances gl, g_na and g_kd of a Hodgkin-Huxley neuron (Traub-Miles kinetics,
exponential Euler) learned by gradient from its voltage under five step currents, then validated in Brian2.

The model is a Brian2 script as a user writes it (written into OUT/model.py): five copies of the neuron, each
with its own step amplitude. The target is Brian2's run of it with the true conductances (10 nS, 20 uS, 6 uS);
`spikebridge fit` learns the three (shared, kept positive) from two starts 25-50 % off, one batch, loss the
voltage traces' mean squared difference. Passing: every conductance within 1 % and the fitted model identical
in Brian2 (the issue's acceptance (a)). `quick`: 2 ms of a shorter run and a few steps, to test the mechanics.
"""
import json
from pathlib import Path

from bridge.app import files, fit

TRUE = {"cells.gl": "10*nS", "cells.g_na": "20*uS", "cells.g_kd": "6*uS"}
STARTS = {"cells.gl": ["15*nS", "7*nS"], "cells.g_na": ["15*uS", "26*uS"], "cells.g_kd": ["8*uS", "4.5*uS"]}
# the neuron's equations; the current I is the step each copy receives
EQUATIONS = """
dv/dt = (gl*(El - v) - g_na*m**3*h*(v - ENa) - g_kd*n**4*(v - EK) + I)/Cm : volt
dm/dt = alpha_m*(1 - m) - beta_m*m : 1
dh/dt = alpha_h*(1 - h) - beta_h*h : 1
dn/dt = alpha_n*(1 - n) - beta_n*n : 1
alpha_m = 1.28/exprel((13*mV - v + VT)/(4*mV))/ms : Hz
beta_m = 1.4/exprel((v - VT - 40*mV)/(5*mV))/ms : Hz
alpha_h = 0.128*exp((17*mV - v + VT)/(18*mV))/ms : Hz
beta_h = 4/(1 + exp((40*mV - v + VT)/(5*mV)))/ms : Hz
alpha_n = 0.16/exprel((15*mV - v + VT)/(5*mV))/ms : Hz
beta_n = 0.5*exp((10*mV - v + VT)/(40*mV))/ms : Hz
"""
STEP = (0.002, {"quick": 0.003, "full": 0.017})  # s: the current's onset and offset
AMPLITUDES = "(0.1 + 0.15*i)*nA"
MODEL = '''from brian2 import *

# a Hodgkin-Huxley point neuron of 20000 um2 with Traub-Miles sodium and potassium kinetics
area = 20000*umetre**2
Cm = 1*ufarad*cm**-2 * area
gl = 5e-5*siemens*cm**-2 * area
g_na = 100*msiemens*cm**-2 * area
g_kd = 30*msiemens*cm**-2 * area
El, EK, ENa, VT = -65*mV, -90*mV, 50*mV, -63*mV

eqs = """EQUATIONS
I = amplitude*int(t >= ONSET*second)*int(t < OFFSET*second) : amp
amplitude : amp (constant)
"""
defaultclock.dt = 0.01*ms
cells = NeuronGroup(5, eqs, threshold='v > -20*mV', refractory='v > -20*mV', method='exponential_euler',
                    name='cells')
cells.v = El
cells.amplitude = 'AMPLITUDES'
voltage = StateMonitor(cells, 'v', record=True)
run(DURATION)
'''


def write_files(out, quick, seed):
    """The model script and the FIT file, in the folder `out`."""
    out.mkdir(parents=True, exist_ok=True)
    duration, steps = ("4*ms", 3) if quick else ("20*ms", 100)
    onset, offset = STEP[0], STEP[1]["quick" if quick else "full"]
    script = MODEL
    for name, value in {"EQUATIONS": EQUATIONS.strip(), "ONSET": repr(onset), "OFFSET": repr(offset),
                        "AMPLITUDES": AMPLITUDES, "DURATION": duration}.items():
        script = script.replace(name, value)
    (out / "model.py").write_text(script)
    learn = {key: {"shared": True, "low": "0*nS"} for key in TRUE}
    (out / "fit.json").write_text(json.dumps({
        "model": "model.py", "learn": learn, "starts": STARTS, "target": {"values": TRUE},
        "loss": {"traces": {"cells.v": 1}}, "optimizer": {"lr": 0.05, "steps": steps}, "seed": seed}, indent=1))


def run(out="results/fit_hh", seed=0, quick=False, device=None, resume=False):
    """The experiment; returns the results dict (bridge/app/fit.py's, with the experiment's verdict)."""
    out = Path(out)
    write_files(out, quick, seed)
    results = fit.run(out / "fit.json", out, resume=resume)
    results.update(experiment="fit-hh", quick=quick, within_1_percent=all(
        error < 0.01 for error in results["relative_error"].values()))
    results["passed"] = results["within_1_percent"] and results["validation"]["identical_spikes"]
    files.write_json(out / "results.json", results)
    return results


def summary(results):
    lines = [f"fit-hh ({'quick' if results['quick'] else 'full'}): {results['steps_run']} steps, "
             f"{results['starts']} starts, {results['seconds']:.0f} s"]
    for key, true in results["true"].items():
        learned = results["learned"][key]["values"][0]
        lines.append(f"  {key:12s} true {true['values'][0]:.6g}  learned {learned:.6g} {true['unit']}  "
                     f"error {100 * results['relative_error'][key]:.3f} %")
    validation = results["validation"]
    lines.append(f"  Brian2: spikes {'identical' if validation['identical_spikes'] else 'NOT identical'}, loss "
                 f"{validation['loss_brian2']:.4g} (torch {validation['loss_torch']:.4g}); passed: "
                 f"{results['passed']}")
    return "\n".join(lines)
