"""The step-by-step module in training: per step, the forward pass without gradients, the forward pass with
them, and the backward pass, side by side in one process, with the bytes autograd saves per step.

Models: the Hodgkin-Huxley neurons of experiments/fit_hh.py (5 neurons, or 2000, 2 starts, float64, three
conductances learn), and a recurrent LIF network in volts (1000 neurons, 10 % connectivity, weights and delays
learn; batch 16, float32, 200 steps of 0.1 ms: issue 31's training network), driven by its own constant current.

    python bench/bptt_profile.py [--out bench/results/bptt_profile] [--repeats 3] [--recompute-every K]
                                 [--models hh hh2000 recurrent]

With --recompute-every, the forward pass with gradients recomputes stretches of K steps in the backward pass
(torch.utils.checkpoint); run it under `/usr/bin/time -v` with and without to compare peak memory.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

import torch_models
from bridge.app import files
from bridge.app.brian2_scripts import from_brian2
from bridge.description import (Network, NeuronModel, Population, Projection, RunSettings, Simulation,
                                SynapseModel)
from experiments import fit_hh
from torch_models import module as module_interface


def hodgkin_huxley(folder, n=5):
    """fit-hh's model, its five neurons or `n` (the step amplitudes spread over the same range)."""
    fit_hh.write_files(folder, quick=False, seed=0)
    script = (folder / "model.py").read_text()
    (folder / "model.py").write_text(script.replace("NeuronGroup(5,", f"NeuronGroup({n},").replace(
        fit_hh.AMPLITUDES, f"(0.1 + 0.6*i/{n})*nA"))
    learn = {key: {"shared": True, "low": "0*nS"} for key in fit_hh.TRUE}
    return from_brian2(folder / "model.py"), learn, fit_hh.STARTS, ["cells.v"], 2


def recurrent(n=1000, p=0.1, seed=0):
    rng = np.random.default_rng(seed)
    model = NeuronModel("dv/dt = (-70*mV - v + drive)/(10*ms) : volt\ndrive : volt (constant)",
                        threshold="v > -50*mV", reset="v = -70*mV", method="exact")
    i, j = np.nonzero(rng.random((n, n)) < p)
    population = Population("rec", model, n, initial={"v": rng.uniform(-0.07, -0.05, n),
                                                      "drive": rng.uniform(0.015, 0.025, n)})
    synapses = Projection("syn", "rec", "rec", SynapseModel("w : volt", on_pre="v_post += w"), i=i, j=j,
                          values={"w": rng.normal(0, 0.5e-3, len(i))},
                          delays=rng.integers(5, 40, len(i)) * 1e-4, max_delay="5*ms")
    simulation = Simulation(Network(populations=(population,), projections=(synapses,)),
                            RunSettings(duration="20*ms", dtype="float32"))
    return simulation, {"syn.w": "per_element", "syn.delay": "per_element"}, None, [], 16


def profile(name, simulation, learn, starts, record, batch, repeats, recompute_every=None):
    module = torch_models.compile(simulation, "stepwise", learn=learn, starts=starts)
    n_steps = module.n_steps
    timings = {"forward, no gradients": [], "forward with gradients": [], "backward": []}
    saved = {}
    original = module_interface.BackwardMemory.done

    def measure(self, steps):
        saved["bytes"] = self.saved_bytes
        original(self, steps)

    module_interface.BackwardMemory.done = measure
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            with torch.no_grad():
                module(batch_size=batch, record=record)
            timings["forward, no gradients"].append(time.perf_counter() - started)
            started = time.perf_counter()
            out = module(batch_size=batch, record=record, recompute_every=recompute_every)
            loss = sum(value.sum() for value in [*out.spikes.values(), *out.traces.values()])
            timings["forward with gradients"].append(time.perf_counter() - started)
            started = time.perf_counter()
            loss.backward()
            timings["backward"].append(time.perf_counter() - started)
    finally:
        module_interface.BackwardMemory.done = original
    per_step = {part: 1e3 * min(values) / n_steps for part, values in timings.items()}
    base = per_step["forward, no gradients"]
    return {"model": name, "steps": n_steps, "recompute_every": recompute_every, "batch": batch,
            "dtype": str(module.dtype).replace("torch.", ""),
            **{f"{part} (ms/step)": round(value, 3) for part, value in per_step.items()},
            "forward with gradients / no gradients": round(per_step["forward with gradients"] / base, 2),
            "forward + backward / no gradients": round((per_step["forward with gradients"] +
                                                        per_step["backward"]) / base, 2),
            "saved bytes per step": saved["bytes"] // n_steps}


MODELS = {"hh": ("Hodgkin-Huxley, 5 neurons (fit-hh)", hodgkin_huxley),
          "hh2000": ("Hodgkin-Huxley, 2000 neurons", lambda folder: hodgkin_huxley(folder, 2000)),
          "recurrent": ("recurrent LIF, 1000 neurons, 10 %", lambda folder: recurrent())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/bptt_profile")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recompute-every", type=int, default=None)
    parser.add_argument("--models", nargs="+", default=["hh", "recurrent"], choices=sorted(MODELS))
    args = parser.parse_args()
    out = Path(args.out)
    rows = [profile(MODELS[name][0], *MODELS[name][1](out / name), args.repeats, args.recompute_every)
            for name in args.models]
    for row in rows:
        print("\n".join(f"{key}: {value}" for key, value in row.items()), end="\n\n")
    files.write_json(out / "bptt_profile.json", {"rows": rows, "versions": files.versions()})


if __name__ == "__main__":
    main()
