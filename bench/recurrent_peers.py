"""Issue 31's training network, side by side in one process: a recurrent LIF network (1000 neurons, 10 %
recurrent connectivity, 200 steps of 0.1 ms, batch 16, float32, each neuron driven by its own constant
current) trained by BPTT: the time of one training step (forward, backward, Adam) in spikebridge's step-by-step
module (per-synapse weights learn), snnTorch's RLeaky and Norse's LIFRecurrentCell (dense recurrent weights,
90 % of them zero). The loss is the same for all: the mean squared difference between each neuron's spike
count and 2. Two regimes: quiet (drives 15-25 mV against a threshold 20 mV above rest, starting at rest: about
1.4 spikes a step) and active (drives 25-45 mV, starting anywhere below threshold: about ten times more); the
event-driven synapses of spikebridge cost in proportion to spikes, the peers' dense products do not. Not a test.

    python bench/recurrent_peers.py [--repeats 3] [--device cpu|cuda] [--out bench/results/recurrent_peers.json]
"""
import argparse
import statistics
import time

import numpy as np
import torch

import torch_models
from bridge.app import files
from bridge.description import (Network, NeuronModel, Population, Projection, RunSettings, Simulation,
                                SynapseModel)
from step_floor import synchronize  # bench/, beside this script

N, P, STEPS, BATCH, DT, TAU = 1000, 0.1, 200, 16, 1e-4, 0.01
TAU_SYN = 0.005  # Norse's recurrent cell has a synaptic current; its input is scaled so that it settles at the drive
THRESHOLD = 0.02  # volts above rest


REGIMES = {"quiet": ((0.015, 0.025), (0.0, 0.0)), "active": ((0.025, 0.045), (0.0, THRESHOLD))}


def network(regime, seed=0):
    """(synapse sources, targets, weights in volts, each neuron's drive and initial v in volts)."""
    rng = np.random.default_rng(seed)
    i, j = np.nonzero(rng.random((N, N)) < P)
    (low, high), (v_low, v_high) = REGIMES[regime]
    return i, j, rng.normal(0, 0.5e-3, len(i)), rng.uniform(low, high, N), rng.uniform(v_low, v_high, N)


def loss_of(spikes):
    """spikes (steps, batch, neurons) or (batch, steps, neurons) summed over time: MSE of the counts to 2."""
    return ((spikes - 2) ** 2).mean()


def spikebridge_step(i, j, w, drive, v0, device):
    model = NeuronModel("dv/dt = (-v + drive)/(10*ms) : volt\ndrive : volt (constant)",
                        threshold=f"v > {THRESHOLD}*volt", reset="v = 0*volt", method="exact")
    population = Population("rec", model, N, initial={"drive": drive, "v": v0})
    synapses = Projection("syn", "rec", "rec", SynapseModel("w : volt", on_pre="v_post += w"), i=i, j=j,
                          values={"w": w})
    simulation = Simulation(Network(populations=(population,), projections=(synapses,)),
                            RunSettings(duration=f"{STEPS * DT!r}*second", dtype="float32"))
    module = torch_models.compile(simulation, "stepwise", device=device, learn={"syn.w": "per_element"})
    optimizer = torch.optim.Adam(module.learning.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad()
        counts = module(batch_size=BATCH).spikes["rec"].sum(1)
        loss_of(counts).backward()
        optimizer.step()
        return float(counts.detach().sum()) / BATCH
    return step


def dense_recurrent(i, j, w):
    weights = torch.zeros(N, N)  # on the CPU; the cells are moved with it
    weights[torch.as_tensor(j), torch.as_tensor(i)] = torch.as_tensor(w, dtype=torch.float32)
    return weights


def snntorch_step(i, j, w, drive, v0, device):
    import snntorch as snn

    beta = float(np.exp(-DT / TAU))
    cell = snn.RLeaky(beta=beta, threshold=THRESHOLD, linear_features=N, reset_mechanism="zero")
    with torch.no_grad():
        cell.recurrent.weight.copy_(dense_recurrent(i, j, w))
        cell.recurrent.bias.zero_()
    cell.to(device)
    current = torch.as_tensor((1 - beta) * drive, dtype=torch.float32, device=device).expand(BATCH, N)
    optimizer = torch.optim.Adam(cell.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad()
        spk = torch.zeros(BATCH, N, device=device)
        mem = torch.as_tensor(v0, dtype=torch.float32, device=device).expand(BATCH, N)
        counts = 0
        for _ in range(STEPS):
            spk, mem = cell(current, spk, mem)
            counts = counts + spk
        loss_of(counts).backward()
        optimizer.step()
        return float(counts.detach().sum()) / BATCH
    return step


def norse_step(i, j, w, drive, v0, device):
    import norse.torch as norse

    parameters = norse.LIFParameters(tau_mem_inv=torch.tensor(1 / TAU), tau_syn_inv=torch.tensor(1 / TAU_SYN),
                                     v_leak=torch.tensor(0.0), v_th=torch.tensor(THRESHOLD),
                                     v_reset=torch.tensor(0.0))
    cell = norse.LIFRecurrentCell(1, N, p=parameters, dt=DT, autapses=True)
    with torch.no_grad():
        cell.recurrent_weights.copy_(dense_recurrent(i, j, w))
        cell.input_weights.copy_(torch.as_tensor(drive * DT / TAU_SYN, dtype=torch.float32)[:, None])  # i: drive
    cell.to(device)
    ones = torch.ones(BATCH, 1, device=device)
    optimizer = torch.optim.Adam(cell.parameters(), lr=1e-4)
    zeros = lambda: torch.zeros(BATCH, N, device=device)
    start = lambda: norse.LIFState(z=zeros(), v=torch.as_tensor(v0, dtype=torch.float32, device=device).expand(
        BATCH, N), i=zeros())

    def step():
        optimizer.zero_grad()
        state, counts = start(), 0
        for _ in range(STEPS):
            spikes, state = cell(ones, state)
            counts = counts + spikes
        loss_of(counts).backward()
        optimizer.step()
        return float(counts.detach().sum()) / BATCH
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="torch's device, e.g. cuda")
    parser.add_argument("--out", default="bench/results/recurrent_peers.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    results = {"threads": torch.get_num_threads(), "torch": torch.__version__, "device": args.device}
    for regime in REGIMES:
        connections = network(regime)
        steps = {"spikebridge step by step": spikebridge_step(*connections, args.device),
                 "snnTorch RLeaky": snntorch_step(*connections, args.device),
                 "Norse LIFRecurrentCell": norse_step(*connections, args.device)}
        spikes = {name: step() for name, step in steps.items()}  # warm up; spikes per batch element
        times = {name: [] for name in steps}
        for _ in range(args.repeats):  # interleaved
            for name, step in steps.items():
                synchronize(args.device)
                started = time.perf_counter()
                step()
                synchronize(args.device)
                times[name].append(time.perf_counter() - started)
        medians = {name: statistics.median(values) for name, values in times.items()}
        results[regime] = {"seconds per training step (median)": medians, "all": times,
                           "spikes per batch element (first step)": spikes}
        for name, seconds in medians.items():
            print(f"{regime}: {name}: {seconds:.3f} s per training step, {spikes[name]:.0f} spikes")
    files.write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
