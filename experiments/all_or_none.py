"""Experiment `all-or-none`: seed 000's all-or-none law of action potentials, seen twice.

ReLU network: the seed's three-unit network in plain torch; only the final bias b_final is trained (SGD,
lr 0.1, 100 epochs; per epoch the gradients of the three observed points are summed and one step is taken).
Spiking: a population of the library's LIF neurons, each driven by its own constant current across the
rheobase (V_th - E_L)/R_m, run in Brian2 and torch (float64): silent below the rheobase, and above it
every spike is a full event (v crosses V_th and is reset to V_reset), only their number grows.
Nothing here is random: `seed` is recorded only.
"""
import dataclasses
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from bridge.app import files  # noqa: E402
from bridge.description import Network, Population, RunSettings, Simulation  # noqa: E402
from bridge.library import lif  # noqa: E402
from bridge.app.paired import paired_run  # noqa: E402
from bridge.quantities import si_value  # noqa: E402
from experiments import save_figure  # noqa: E402

WEIGHTS = {"w00": 1.70, "b00": -0.85, "w01": -40.8, "w10": 12.6, "b10": 0.00, "w11": 2.70}
STIMULI, RESPONSES = (0.0, 0.5, 1.0), (0.0, 1.0, 0.0)
LR, EPOCHS = 0.1, 100
SEED_FIRST_GRADIENT, SEED_B_FINAL = 32.02, -16.01


def relu_network(x, b_final):
    """The seed's BasicNN: two hidden ReLU units (top, bottom) feeding one ReLU output."""
    w = WEIGHTS
    top = torch.relu(w["w00"] * x + w["b00"])
    bottom = torch.relu(w["w10"] * x + w["b10"])
    return torch.relu(w["w01"] * top + w["w11"] * bottom + b_final)


def train(epochs=EPOCHS, lr=LR, device=None):
    """The seed's loop (float32, as torch's default): b_final from 0; per epoch one SGD step on the summed
    gradients of the three points. Returns the summed loss, gradient and b_final (after the step) per epoch."""
    b_final = torch.nn.Parameter(torch.tensor(0.0, device=device))
    optimizer = torch.optim.SGD([b_final], lr=lr)
    history = {"loss": [], "gradient": [], "b_final": []}
    for _ in range(epochs):
        total = 0.0
        for x, y in zip(STIMULI, RESPONSES):
            loss = (relu_network(torch.tensor(x, device=device), b_final) - y) ** 2
            loss.backward()  # accumulates into b_final.grad
            total += loss.item()
        history["gradient"].append(float(b_final.grad))
        optimizer.step()
        optimizer.zero_grad()
        history["loss"].append(total)
        history["b_final"].append(b_final.item())
    return history


def lif_with_current():
    """The library LIF with a constant injected current I_ext per neuron, added to I_syn."""
    model = lif()
    if "R_m*I_syn" not in model.equations:
        raise ValueError("lif() no longer contains the term R_m*I_syn that the injected current is added to")
    return dataclasses.replace(model, equations=model.equations.replace("R_m*I_syn", "R_m*(I_syn + I_ext)")
                               + "\nI_ext : amp (constant)")


def rheobase(model):
    """The smallest constant current whose steady state reaches threshold: (V_th - E_L)/R_m, in amp."""
    p = {name: si_value(model.parameters[name], name) for name in ("V_th", "E_L", "R_m")}
    return (p["V_th"] - p["E_L"]) / p["R_m"]


def full_events(record, torch_margins, v_reset):
    """Every spike is a whole event: torch saw v past V_th at the spike step and the next recorded v is V_reset."""
    neurons, steps = record.spikes["lif"]
    crossed = torch_margins[steps, neurons] > 0
    after = steps + 1 < record.n_steps
    reset = np.isclose(record.traces["lif.v"][steps[after] + 1, neurons[after]], v_reset, rtol=0, atol=1e-12)
    return bool(crossed.all() and reset.all())


def stimulus_response(currents, duration, device=None, progress=False):
    """One LIF neuron per current, from rest, in both backends: (result dict, brian_record, torch_record)."""
    model = lif_with_current()
    simulation = Simulation(
        Network(populations=(Population("lif", model, len(currents),
                                        initial={"v": model.parameters["E_L"], "I_ext": currents}),)),
        RunSettings(duration=duration, record=("lif.v",)))
    brian_record, torch_record, report = paired_run(simulation, target="numpy", device=device, progress=progress)
    counts = {r.backend: np.bincount(r.spikes["lif"][0], minlength=len(currents)) for r in (brian_record, torch_record)}
    threshold = rheobase(model)
    below, above = currents < threshold, currents > threshold
    silent = counts["brian2"] == 0
    v_reset, v_th = (si_value(model.parameters[k], k) for k in ("V_reset", "V_th"))
    result = {"rheobase_nA": threshold * 1e9,
              "rheobase_seen_nA": [float(currents[silent].max() * 1e9), float(currents[~silent].min() * 1e9)],
              "counts_brian2": counts["brian2"].tolist(), "counts_torch": counts["torch"].tolist(),
              "silent_below_rheobase": bool(np.all(counts["brian2"][below] == 0)),
              "spikes_above_rheobase": bool(np.all(counts["brian2"][above] > 0)),
              "count_at_rheobase": counts["brian2"][currents == threshold].tolist(),
              "identical_spikes": report.identical, "comparison_passed": report.passed,
              "full_events": {r.backend: full_events(r, torch_record.margins["lif"], v_reset)
                              for r in (brian_record, torch_record)},
              "closest_approach_of_silent_neurons_mV": float(
                  (brian_record.traces["lif.v"][:, silent].max() - v_th) * 1e3)}
    return result, brian_record, torch_record


def run(out="results/all_or_none", seed=0, quick=False, device=None, progress=True):
    """The experiment; returns the results dict and writes results.json and PNGs into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    history = train(device=device)
    model = lif_with_current()
    fractions = np.linspace(0, 2, 21 if quick else 81)  # of the rheobase; 1.0 (the rheobase itself) included
    currents = rheobase(model) * fractions
    duration = "200*ms" if quick else "1*second"
    lif_result, brian_record, torch_record = stimulus_response(currents, duration, device, progress)
    results = {"experiment": "all-or-none", "seed": seed, "quick": quick,
               "parameters": {"relu": {"weights": WEIGHTS, "stimuli": STIMULI, "responses": RESPONSES, "lr": LR,
                                       "epochs": EPOCHS, "b_final_initial": 0.0, "dtype": "float32"},
                              "lif": {"model": model.parameters, "refractory": model.refractory,
                                      "currents_nA": (currents * 1e9).tolist(), "duration": duration,
                                      "dt": "0.1*ms", "target": "numpy", "dtype": "float64"}},
               "versions": files.versions(),
               "relu": {"first_epoch_gradient": history["gradient"][0], "b_final": history["b_final"][-1],
                        "seed_first_epoch_gradient": SEED_FIRST_GRADIENT, "seed_b_final": SEED_B_FINAL,
                        "b_final_matches_seed": abs(history["b_final"][-1] - SEED_B_FINAL) <= 0.01,
                        "final_loss": history["loss"][-1], **{f"{k}_per_epoch": v for k, v in history.items()}},
               "lif": lif_result}
    results["seconds"] = round(time.time() - started, 1)
    files.write_json(out / "results.json", results)
    _plot_training(history, out / "training.png")
    _plot_relu_response(history["b_final"][-1], out / "relu_response.png")
    _plot_lif(currents, lif_result, brian_record, torch_record, out / "lif_stimulus_response.png")
    return results


def summary(results):
    r, s = results["relu"], results["lif"]
    return "\n".join([
        f"all-or-none ({'quick' if results['quick'] else 'full'}, seed {results['seed']})",
        f"  ReLU network: first-epoch summed gradient {r['first_epoch_gradient']:.2f} "
        f"(seed {r['seed_first_epoch_gradient']}), b_final after {len(r['b_final_per_epoch'])} epochs "
        f"{r['b_final']:.4f} (seed {r['seed_b_final']}), final loss {r['final_loss']:.2e}",
        f"  LIF: rheobase {s['rheobase_nA']:.3f} nA; silent up to {s['rheobase_seen_nA'][0]:.3f} nA, firing from "
        f"{s['rheobase_seen_nA'][1]:.3f} nA; silent below {s['silent_below_rheobase']}, spikes above "
        f"{s['spikes_above_rheobase']}",
        f"       identical spikes {s['identical_spikes']} (comparison passed {s['comparison_passed']}), "
        f"full events {s['full_events']}; silent neurons stay {-s['closest_approach_of_silent_neurons_mV']:.2g} mV "
        f"below V_th",
        f"  {results['seconds']} s"])


def _plot_training(history, path):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    epochs = np.arange(1, len(history["loss"]) + 1)
    left.plot(epochs, history["loss"])
    left.set_yscale("log")
    left.set_ylabel("summed squared error")
    left.set_title("loss")
    right.plot(np.arange(len(epochs) + 1), [0.0, *history["b_final"]], label="trained (from 0)")
    right.axhline(SEED_B_FINAL, color="k", ls=":", lw=0.8, label=f"seed's result {SEED_B_FINAL}")
    right.set_ylabel("b_final (after the epoch's step)")
    right.set_title("b_final")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.set_xlabel("epoch")
    save_figure(fig, path)


def _plot_relu_response(b_final, path):
    x = torch.linspace(0, 1, 201)
    fig, ax = plt.subplots(figsize=(6, 4))
    for b, label in ((0.0, "before training (b_final = 0)"), (b_final, f"after training (b_final = {b_final:.2f})")):
        ax.plot(x, relu_network(x, torch.tensor(b)), label=label)
    ax.scatter(STIMULI, RESPONSES, color="k", zorder=3, label="observed")
    ax.set_xlabel("stimulus")
    ax.set_ylabel("response")
    ax.set_title("ReLU network response")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def _plot_lif(currents, result, brian_record, torch_record, path):
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(currents * 1e9, result["counts_brian2"], "o", color="tab:blue", mfc="none", label="Brian2")
    left.plot(currents * 1e9, result["counts_torch"], "x", color="tab:red", label="torch")
    left.axvline(result["rheobase_nA"], color="k", ls=":", lw=0.8, label="rheobase")
    left.set_xlabel("injected current (nA)")
    left.set_ylabel("spikes")
    left.set_title("LIF stimulus-response")
    left.legend(fontsize=8)
    silent = np.array(result["counts_brian2"]) == 0
    shown = [int(np.flatnonzero(silent).max()), int(np.flatnonzero(~silent).min()), len(currents) - 1]
    time_ms = np.arange(brian_record.n_steps) * brian_record.dt * 1e3
    for k, neuron in enumerate(shown):
        right.plot(time_ms, brian_record.traces["lif.v"][:, neuron] * 1e3, color=f"C{k}", lw=1.5, alpha=0.6,
                   label=f"{currents[neuron] * 1e9:.3f} nA (Brian2)")
        right.plot(time_ms, torch_record.traces["lif.v"][:, neuron] * 1e3, color=f"C{k}", lw=0.8, ls="--",
                   label="torch")
    right.axhline(si_value(lif().parameters["V_th"], "V_th") * 1e3, color="k", ls=":", lw=0.8)
    right.set_xlim(0, min(200, time_ms[-1]))
    right.set_xlabel("time (ms)")
    right.set_ylabel("v (mV); dotted: V_th")
    right.set_title("largest silent, smallest firing, largest current (first 200 ms)")
    right.legend(fontsize=7, ncol=3, loc="lower right")
    save_figure(fig, path)
