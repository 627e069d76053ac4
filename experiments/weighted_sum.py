"""Experiment `weighted-sum`: seed 001's win predictor, prediction = 0.1*toes + 0.2*record + 0.0*fans per
game, computed by the library's spiking weighted-sum unit in Brian2 and torch.

Each input value is sent as a spike count (value x scale spikes, one per step) from its own input neuron;
synapses carry w = weight/scale; one weighted-sum neuron per game accumulates them without leak and fires
with subtractive reset, so its prediction is v + theta*count at the end. numpy's dot product is the reference.
Nothing here is random: `seed` is recorded only.
"""
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bridge.app import files  # noqa: E402
from bridge.description import (Network, Population, Projection, RunSettings, Simulation, SpikeTrains,  # noqa: E402
                                SynapseModel, Timing)
from bridge.library import weighted_sum  # noqa: E402
from bridge.app.paired import paired_run  # noqa: E402
from bridge.quantities import si_value  # noqa: E402
from experiments import save_figure  # noqa: E402

INPUTS = {"toes": (8.5, 9.5, 9.9, 9.0), "record": (0.65, 0.8, 0.8, 0.9), "fans": (1.2, 1.3, 0.5, 1.0)}
WEIGHTS = (0.1, 0.2, 0.0)
SEED_PREDICTIONS = (0.98, 1.11, 1.15, 1.08)
DT_MS = 1.0
IDLE_STEPS = 5  # after the last input spike: its last threshold crossing and reset show in the recorded v


def spike_counts(inputs, weights, scale):
    """{input: spike count per game}; ValueError naming the field for inputs the encoding cannot carry."""
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"scale: {scale!r} must be an integer >= 1 (spikes per unit of input value)")
    if len(weights) != len(inputs):
        raise ValueError(f"weights: {len(weights)} values for {len(inputs)} inputs {list(inputs)}; "
                         "give one weight per input")
    if not np.all(np.isfinite(np.asarray(weights, dtype=float))):
        raise ValueError(f"weights: {weights} must be finite")
    lengths = {name: len(values) for name, values in inputs.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"inputs: lengths {lengths} differ; give one value per game for every input")
    counts = {}
    for name, values in inputs.items():
        scaled = np.asarray(values, dtype=float) * scale
        if not np.all(np.isfinite(scaled)) or np.any(scaled < 0) or not np.allclose(scaled, np.rint(scaled),
                                                                                      rtol=0, atol=1e-6):
            raise ValueError(f"inputs[{name!r}]: {tuple(values)} x scale {scale} must be whole numbers >= 0 "
                             "(spike counts); raise the scale or round the values")
        counts[name] = np.rint(scaled).astype(np.int64)
    return counts


def simulation(inputs=INPUTS, weights=WEIGHTS, scale=100, theta="1"):
    """Input neuron g of each input fires its game-g count on consecutive steps; one-to-one synapses with
    w = weight/scale onto weighted-sum neuron g."""
    counts = spike_counts(inputs, weights, scale)
    n_games = len(next(iter(counts.values())))
    games = np.arange(n_games)
    sources = [SpikeTrains(name, n_games, indices=np.repeat(games, c),
                           times=np.concatenate([np.arange(k) for k in c]) * DT_MS * 1e-3)
               for name, c in counts.items()]
    synapse = SynapseModel(model="w : 1", on_pre="v_post += w")
    projections = [Projection(f"{name}_to_sum", name, "sum", synapse, i=games, j=games,
                              values={"w": np.full(n_games, weight / scale)})
                   for name, weight in zip(inputs, weights)]
    n_steps = max(int(c.max()) for c in counts.values()) + IDLE_STEPS
    return Simulation(Network(populations=(Population("sum", weighted_sum(theta), n_games),), sources=sources,
                              projections=projections),
                      RunSettings(duration=f"{n_steps * DT_MS:g}*ms", record=("sum.v",),
                                  timing=Timing(dt=f"{DT_MS:g}*ms")))


def predictions(record, theta, n_games):
    """v + theta*count of each weighted-sum neuron at the end of the run."""
    counts = np.bincount(record.spikes["sum"][0], minlength=n_games)
    return record.traces["sum.v"][-1] + theta * counts


def run(out="results/weighted_sum", seed=0, quick=False, device=None, progress=True, inputs=None, weights=None,
        scale=None):
    """The experiment; returns the results dict and writes results.json and PNGs into `out`.
    inputs: {name: one value per game} (default the seed's), weights: one per input, scale: spikes per unit."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    inputs = INPUTS if inputs is None else inputs
    weights = WEIGHTS if weights is None else weights
    scale = (100 if quick else 1000) if scale is None else scale
    started = time.time()
    sim = simulation(inputs, weights, scale)
    theta = si_value(sim.network.populations[0].model.parameters["theta"], "theta")
    n_games = sim.network.populations[0].n
    brian_record, torch_record, report = paired_run(sim, target="numpy", device=device, progress=progress)
    predicted = {"numpy": np.array([inputs[name] for name in inputs], dtype=float).T @ np.asarray(weights, float),
                 "brian2": predictions(brian_record, theta, n_games),
                 "torch": predictions(torch_record, theta, n_games)}
    seed_values = SEED_PREDICTIONS if inputs is INPUTS and weights is WEIGHTS else None
    results = {"experiment": "weighted-sum", "seed": seed, "quick": quick,
               "parameters": {"inputs": inputs, "weights": weights, "scale": scale, "theta": theta,
                              "dt": f"{DT_MS:g}*ms", "n_steps": sim.run.n_steps, "target": "numpy",
                              "dtype": "float64"},
               "versions": files.versions(),
               "predictions": {k: v.tolist() for k, v in predicted.items()},
               "seed_predictions": seed_values,
               "match_seed_to_2_decimals": None if seed_values is None else
               {k: bool(np.array_equal(np.round(v, 2), seed_values)) for k, v in predicted.items()},
               "max_abs_difference_to_numpy": {k: float(np.abs(v - predicted["numpy"]).max())
                                               for k, v in predicted.items()},
               "output_spikes": np.bincount(brian_record.spikes["sum"][0], minlength=n_games).tolist(),
               "identical_spikes": report.identical, "comparison_passed": report.passed}
    results["seconds"] = round(time.time() - started, 1)
    files.write_json(out / "results.json", results)
    _plot_predictions(results, out / "predictions.png")
    _plot_traces(brian_record, torch_record, theta, predicted["numpy"], out / "v_traces.png")
    return results


def summary(results):
    lines = [f"weighted-sum ({'quick' if results['quick'] else 'full'}, seed {results['seed']}, "
             f"scale {results['parameters']['scale']} spikes per unit, {results['parameters']['n_steps']} steps)"]
    for backend, values in results["predictions"].items():
        lines.append(f"  {backend:7s} predictions {' '.join(f'{v:.2f}' for v in values)}   "
                     f"max |difference to numpy| {results['max_abs_difference_to_numpy'][backend]:.1e}")
    if results["seed_predictions"]:
        lines.append(f"  seed's predictions {results['seed_predictions']}; match to 2 decimals "
                     f"{results['match_seed_to_2_decimals']}")
    lines.append(f"  output spikes per game {results['output_spikes']}; identical spikes {results['identical_spikes']}"
                 f" (comparison passed {results['comparison_passed']})")
    lines.append(f"  {results['seconds']} s")
    return "\n".join(lines)


def _plot_predictions(results, path):
    fig, ax = plt.subplots(figsize=(7, 4))
    games = np.arange(len(results["predictions"]["numpy"]))
    for k, (backend, values) in enumerate(results["predictions"].items()):
        bars = ax.bar(games + (k - 1) * 0.27, values, width=0.27, label=backend)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    if results["seed_predictions"]:
        ax.hlines(results["seed_predictions"], games - 0.42, games + 0.42, color="k", zorder=3, label="seed")
    ax.set_xticks(games, [f"game {g + 1}" for g in games])
    ax.set_ylabel("prediction")
    ax.set_title("weighted sum per game")
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)


def _plot_traces(brian_record, torch_record, theta, reference, path):
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    time_ms = np.arange(brian_record.n_steps) * brian_record.dt * 1e3
    for record, style in ((brian_record, dict(lw=2.5, alpha=0.5)), (torch_record, dict(lw=1, ls="--"))):
        v = record.traces["sum.v"]
        fired = np.zeros_like(v)
        neurons, steps = record.spikes["sum"]
        np.add.at(fired, (steps, neurons), 1)
        before = np.cumsum(fired, axis=0) - fired  # spikes before each step: v is recorded at its start
        for g in range(v.shape[1]):
            label = f"game {g + 1} ({record.backend})"
            top.plot(time_ms, v[:, g], color=f"C{g}", label=label, **style)
            bottom.plot(time_ms, v[:, g] + theta * before[:, g], color=f"C{g}", label=label, **style)
    for g, value in enumerate(reference):
        bottom.axhline(value, color=f"C{g}", ls=":", lw=0.8)
    top.set_ylabel("v")
    top.set_title("weighted-sum neurons (subtractive reset at theta)")
    top.legend(fontsize=7, ncol=4)
    bottom.set_ylabel("v + theta x spikes so far")
    bottom.set_title("the running weighted sum; dotted: numpy's dot product")
    bottom.set_xlabel("time (ms)")
    save_figure(fig, path)
