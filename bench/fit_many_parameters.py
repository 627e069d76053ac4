"""Many parameters: fit-network's problem fitted by gradient and by differential evolution, side by side in one
process.

Problem: experiments/fit_network.py (its teacher, seed 0): the 1236 per-synapse weights and delays of a recurrent
E/I network learn the teacher's spikes. spikebridge: the experiment's FIT file (two stages, 160 Adam steps).
Nevergrad's differential evolution (the optimizer brian2modelfitting wraps, in the version it was written for:
bench/requirements-fit-peers.txt), `--samples` candidates per round, searching the box the teacher was drawn from
(each weight 0.5-1.5 times the script's, each delay 1-5 ms); every candidate is run by the same torch module
(a batch of one round's candidates, without gradients) and scored by the same loss, until `--seconds` of wall
time. brian2modelfitting itself cannot state the problem (its fitters vary the parameters of one NeuronGroup,
not of a network's synapses). Each row: the method, its step or round, the wall time so far, the neuron-seconds
simulated so far (forward passes; the gradient's backward not counted) and the best loss so far. Writes a CSV,
a PNG (loss against wall time and against neuron-seconds) and summary.json.

    pip install --no-deps -r bench/requirements-fit-peers.txt
    python bench/fit_many_parameters.py --out bench/results/fit_many_parameters [--seconds 300] [--samples 30]
"""
import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fit_vs_modelfitting import write_comparison  # bench/, beside this script; it restores nevergrad's numpy aliases
import torch_models
from bridge.app import fit, fit_losses
from bridge.learn import learned
from experiments import fit_network

DELAY_RANGE = (1e-3, 5e-3)  # s: the teacher's delays were drawn within it
WEIGHT_FACTORS = (0.5, 1.5)  # times the script's weights: the teacher's were drawn within it


def neuron_seconds(spec):
    """One run of the network: its neurons times its duration."""
    simulation = spec.simulation
    return sum(simulation.network.width(name) for name in spec.spikes) * simulation.run.n_steps * simulation.dt


def gradient_rows(folder):
    """The experiment's fit, one row per step: run_losses, called once per step with gradients, is timed."""
    rows, started, calls = [], time.perf_counter(), fit_losses.run_losses
    per_step = neuron_seconds(fit.read(folder / "fit.json"))

    def timed(*args, **kwargs):
        loss = calls(*args, **kwargs)
        if torch.is_grad_enabled():
            best = min([float(loss.min())] + [row["best_loss"] for row in rows])
            rows.append({"method": "spikebridge (Adam, gradient, 2 stages)", "iteration": len(rows),
                         "seconds": time.perf_counter() - started, "neuron_seconds": (len(rows) + 1) * per_step,
                         "best_loss": best})
        return loss

    fit.run_losses = timed
    try:
        fit.run(folder / "fit.json", folder / "gradient")
    finally:
        fit.run_losses = calls
    return rows


def evolution_rows(folder, seconds, samples):
    """Nevergrad's DE over the box, each round's candidates one batch of the torch module, until `seconds`."""
    import nevergrad as ng

    spec = fit.read(folder / "fit.json")
    items = {item.key: item for item in learned(spec.simulation, spec.learn)}
    module = torch_models.compile(spec.simulation, "stepwise", dtype="float64", learn=spec.learn,
                                  starts={key: np.tile(item.start, (samples, 1)) for key, item in items.items()})
    sizes = {key: len(item.start) for key, item in items.items()}
    optimizer = ng.optimizers.DE(instrumentation=sum(sizes.values()), budget=10 ** 9)
    per_round = samples * neuron_seconds(spec)
    rows, best, started = [], np.inf, time.perf_counter()
    while time.perf_counter() - started < seconds:
        candidates = [optimizer.ask() for _ in range(samples)]
        unit = 1 / (1 + np.exp(-np.stack([candidate.args[0] for candidate in candidates])))  # (samples, all) in (0, 1)
        for (key, item), part in zip(items.items(), np.split(unit, np.cumsum(list(sizes.values()))[:-1], axis=1)):
            low, high = DELAY_RANGE if item.what == "delay" else (WEIGHT_FACTORS[0] * item.start,
                                                                  WEIGHT_FACTORS[1] * item.start)
            module.learning.set_value(key, low + (high - low) * part)
        with torch.no_grad():
            losses = fit_losses.run_losses(module(record=[]), spec, samples).numpy()
        for candidate, loss in zip(candidates, losses):
            optimizer.tell(candidate, float(loss))
        best = min(best, float(losses.min()))
        rows.append({"method": f"Nevergrad DE ({samples} per round, same simulator)", "iteration": len(rows),
                     "seconds": time.perf_counter() - started, "neuron_seconds": (len(rows) + 1) * per_round,
                     "best_loss": best})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/fit_many_parameters")
    parser.add_argument("--seconds", type=float, default=300, help="the evolution's wall time")
    parser.add_argument("--samples", type=int, default=30, help="the evolution's candidates per round")
    args = parser.parse_args()
    out = Path(args.out)
    fit_network.write_files(out, quick=False, seed=0)
    table = pd.DataFrame(gradient_rows(out) + evolution_rows(out, args.seconds, args.samples))
    write_comparison(table, out, "fit_many_parameters", "best_loss", "best spike distance to the teacher",
                     "fit-network: 1236 weights and delays", first_loss=float(table["best_loss"].iloc[0]))


if __name__ == "__main__":
    main()
