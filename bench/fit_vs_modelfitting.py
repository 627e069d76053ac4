"""spikebridge's gradient fit against brian2modelfitting's gradient-free search, side by side in one process.

Problem: the Hodgkin-Huxley conductances of experiments/fit_hh.py (gl, g_na, g_kd; five step currents, the
voltage traces of Brian2's run with the true values as the target). brian2modelfitting's TraceFitter with
Nevergrad's differential evolution (`--samples` models per round, MSE metric) against spikebridge's Adam fit
(experiments/fit_hh.py's starts, one batch). Each row: the method, its round or step, the wall time so far, the
neuron-seconds simulated so far (models x traces x duration; the gradient's backward pass not counted), and the
largest relative error of the three conductances at its best so far (by its own error: the MSE for
brian2modelfitting, the loss for spikebridge). Writes a CSV and a PNG (error against wall
time and against neuron-seconds).

    pip install --no-deps -r bench/requirements-fit-peers.txt
    python bench/fit_vs_modelfitting.py --out bench/results/fit_vs_modelfitting [--rounds 60] [--steps 100]

brian2modelfitting 0.4 (the newest release) and the nevergrad it was written for (0.3) use numpy aliases that
numpy 2 removed (np.NaN, np.int, np.float); this script restores those aliases before importing them.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

for _name, _value in {"NaN": np.nan, "Inf": np.inf, "int": int, "float": float, "object": object}.items():
    if not hasattr(np, _name):  # numpy 2 removed these aliases; brian2modelfitting 0.4 and nevergrad 0.3 use them
        setattr(np, _name, _value)

import brian2  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

import torch_models  # noqa: E402
from bridge.app import files, fit, fit_losses  # noqa: E402
from bridge.app.brian2_scripts import from_brian2  # noqa: E402
from bridge.quantities import parse_quantity  # noqa: E402
from experiments import fit_hh  # noqa: E402

KEYS = ("gl", "g_na", "g_kd")
TRUE = {"gl": 10e-9, "g_na": 20e-6, "g_kd": 6e-6}
BOUNDS = {"gl": (1e-9, 1e-7), "g_na": (2e-6, 2e-4), "g_kd": (6e-7, 6e-5)}  # a decade each way


def problem(folder):
    """(the model script's Simulation, the FIT file's Fit) of experiments/fit_hh.py, written into `folder`."""
    fit_hh.write_files(folder, quick=False, seed=0)
    return from_brian2(folder / "model.py"), fit.read(folder / "fit.json")


def worst_error(values):
    return max(abs(values[key] - TRUE[key]) / TRUE[key] for key in KEYS)


def spikebridge_rows(spec, steps):
    module = torch_models.compile(spec.simulation, "stepwise", dtype="float64", learn=spec.learn, starts=spec.starts)
    optimizer = torch.optim.Adam(module.learning.parameters(), lr=spec.stages[0].lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    per_step = module.learning.n_starts * 5 * module.n_steps * module.dt
    rows, best, started = [], (np.inf, None), time.perf_counter()
    for step in range(steps + 1):
        recorded = module(record=["cells.v"])
        loss = fit_losses.run_losses(recorded, spec, module.learning.n_starts)
        start = int(torch.argmin(loss))
        if float(loss[start].detach()) < best[0]:
            best = (float(loss[start]), {key: module.learned_values(start)[f"cells.{key}"][0] for key in KEYS})
        rows.append({"method": "spikebridge (Adam, gradient)", "iteration": step,
                     "seconds": time.perf_counter() - started, "neuron_seconds": (step + 1) * per_step,
                     "worst_relative_error": worst_error(best[1])})
        if step < steps:
            optimizer.zero_grad()
            loss.sum().backward()
            optimizer.step()
            schedule.step()
    return rows


def modelfitting_rows(simulation, spec, rounds, samples):
    from brian2modelfitting import MSEMetric, NevergradOptimizer, TraceFitter

    population = simulation.network.populations[0]
    constants = {name: parse_quantity(value, name) for name, value in population.model.parameters.items()
                 if name not in KEYS}  # Cm, El, EK, ENa, VT as the script set them
    equations = brian2.Equations(fit_hh.EQUATIONS + "".join(f"\n{key} : siemens (constant)" for key in KEYS),
                                 **constants)
    amplitudes = np.asarray(population.initial["amplitude"], dtype=float)
    steps, dt = simulation.run.n_steps, simulation.dt
    time_axis = np.arange(steps) * dt
    onset, offset = fit_hh.STEP[0], fit_hh.STEP[1]["full"]
    inputs = amplitudes[:, None] * ((time_axis >= onset) & (time_axis < offset))[None, :]
    fitter = TraceFitter(model=equations, input_var="I", output_var="v", input=inputs * brian2.amp,
                         output=spec.target.traces["cells.v"].T * brian2.volt, dt=dt * brian2.second,
                         n_samples=samples, method=population.model.method,
                         param_init={"v": constants["El"]})
    rows, best, started = [], [np.inf, None], time.perf_counter()

    def record(parameters, errors, best_parameters, best_error, index, *args):
        if float(best_error) < best[0]:  # the best by the fitter's own error so far
            best[:] = float(best_error), {key: float(best_parameters[key]) for key in KEYS}
        rows.append({"method": f"brian2modelfitting (Nevergrad DE, {samples} per round)", "iteration": index,
                     "seconds": time.perf_counter() - started,
                     "neuron_seconds": (index + 1) * samples * len(amplitudes) * steps * dt,
                     "worst_relative_error": worst_error(best[1])})

    fitter.fit(n_rounds=rounds, optimizer=NevergradOptimizer("DE"), metric=MSEMetric(), callback=record,
               **{key: [low * brian2.siemens, high * brian2.siemens] for key, (low, high) in BOUNDS.items()})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/fit_vs_modelfitting")
    parser.add_argument("--rounds", type=int, default=60, help="brian2modelfitting's rounds")
    parser.add_argument("--samples", type=int, default=30, help="brian2modelfitting's models per round")
    parser.add_argument("--steps", type=int, default=100, help="spikebridge's Adam steps")
    args = parser.parse_args()
    out = Path(args.out)
    simulation, spec = problem(out / "problem")
    rows = modelfitting_rows(simulation, spec, args.rounds, args.samples) + spikebridge_rows(spec, args.steps)
    write_comparison(pd.DataFrame(rows), out, "fit_vs_modelfitting", "worst_relative_error",
                     "largest relative error of gl, g_na, g_kd")


def write_comparison(table, out, name, value, label, title="", **summary):
    """A side-by-side table of rows (method, iteration, seconds, neuron_seconds, `value`): OUT/NAME.csv, OUT/NAME.png
    (`value` against wall time and against neuron-seconds, log scale) and OUT/summary.json (each method's last
    row, and `summary`); the last rows printed."""
    with files.atomic(out / f"{name}.csv") as temporary:
        table.to_csv(temporary, index=False)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for method, group in table.groupby("method", sort=False):
        for ax, column in zip(axes, ("seconds", "neuron_seconds")):
            ax.semilogy(group[column], group[value], marker=".", ms=3, label=method)
    axes[0].set_xlabel("wall time (s)")
    axes[1].set_xlabel("neuron-seconds simulated (forward)")
    axes[0].set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with files.atomic(out / f"{name}.png") as temporary:
        fig.savefig(temporary, dpi=110, format="png")
    final = table.groupby("method", sort=False).last()
    print(final.to_string())
    files.write_json(out / "summary.json", {"final": json.loads(final.reset_index().to_json(orient="records")),
                                            **summary, "versions": files.versions()})


if __name__ == "__main__":
    main()
