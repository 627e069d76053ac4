"""NIR round trips with the real snnTorch and Norse (issue 30): networks built and trained in each, written by
their own NIR export, read by spikebridge (Brian2 and torch runs compared spike by spike, and against the
library's own simulation, 2 steps later: bridge/app/nir_graphs.py), and written back by spikebridge for the
library to read; and a network written in Brian2's terms, written to NIR and read back. Also the cases where
they cannot agree, with the agreement measured.

    python bench/nir_round_trips.py [--out bench/results/nir_round_trips.json]

Needs the `nir` extra and Norse (pip install -e ".[nir]" && pip install --no-deps norse==1.1.0).
"""
import argparse
import copy
import json
import tempfile
from pathlib import Path

import nir
import numpy as np
import torch

from bridge.app import files, nir_graphs
from bridge.app.paired import paired_run

N_IN, N_HIDDEN, N_OUT, STEPS, LAG = 32, 64, 10, 200, 2


def raster(seed, steps=STEPS):
    return (np.random.default_rng(seed).random((steps, N_IN)) < 0.2).astype(np.float32)


def run_stepped(step, inputs):
    """Output spikes (steps, elements) of step(x, state) -> (out, state) from rest."""
    state, spikes = None, []
    with torch.no_grad():
        for row in inputs:
            out, state = step(torch.tensor(row), state)
            spikes.append(out.reshape(-1).numpy().copy())
    return np.array(spikes)


def train(forward, parameters, seed):
    """30 Adam steps teaching each output neuron a spike count (4 + its index) on one input raster, through the
    library's own surrogate gradient: the trained network that is then exported."""
    inputs = torch.tensor(raster(seed + 100))
    target = torch.arange(N_OUT, dtype=torch.float32) + 4
    optimiser = torch.optim.Adam(parameters, lr=0.01)
    losses = []
    for _ in range(30):
        optimiser.zero_grad()
        loss = ((forward(inputs).sum(0) - target) ** 2).mean()
        loss.backward()
        optimiser.step()
        losses.append(float(loss))
    return [losses[0], losses[-1]]


def snntorch_net(recurrent, reset):
    import snntorch as snn

    cell = dict(init_hidden=True, reset_mechanism=reset, reset_delay=False)
    last = snn.RLeaky(beta=torch.full((N_OUT,), 0.8), threshold=torch.ones(N_OUT), linear_features=N_OUT,
                      output=True, **cell) if recurrent else \
        snn.Leaky(beta=torch.full((N_OUT,), 0.8), threshold=torch.ones(N_OUT), output=True, **cell)
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(N_IN, N_HIDDEN), snn.Leaky(beta=torch.full((N_HIDDEN,), 0.9),
                                                                          threshold=torch.ones(N_HIDDEN), **cell),
                               torch.nn.Linear(N_HIDDEN, N_OUT), last)


def snntorch_case(recurrent, reset="zero"):
    from snntorch import utils
    from snntorch.export_nir import export_to_nir
    from snntorch.import_nir import import_from_nir

    net = snntorch_net(recurrent, reset)

    def forward(inputs):
        utils.reset(net)
        return torch.stack([net(row)[0] for row in inputs])

    loss = train(forward, net.parameters(), 0)
    utils.reset(net)
    own = run_stepped(lambda x, state: (net(x)[0], None), raster(1))
    graph = export_to_nir(copy.deepcopy(net), torch.zeros(N_IN))
    return compare("snnTorch", graph, own, "0.1*ms", lambda path: import_from_nir(nir.read(path)), loss)


def norse_case(dt):
    import norse.torch as norse

    torch.manual_seed(0)
    cell = lambda n, rate: norse.LIFBoxCell(norse.LIFBoxParameters(
        tau_mem_inv=torch.full((n,), rate / dt), v_leak=torch.zeros(n), v_th=torch.ones(n), v_reset=torch.zeros(n)),
        dt=dt)
    net = norse.SequentialState(torch.nn.Linear(N_IN, N_HIDDEN), cell(N_HIDDEN, 0.1), torch.nn.Linear(N_HIDDEN, N_OUT),
                                cell(N_OUT, 0.2))
    with torch.no_grad():
        for layer in (net[0], net[2]):
            layer.weight.mul_(10)

    step = lambda x, state: net(x[None], state)

    def forward(inputs):
        state, spikes = None, []
        for row in inputs:
            out, state = step(row, state)
            spikes.append(out[0])
        return torch.stack(spikes)

    loss = train(forward, net.parameters(), 0)
    own = run_stepped(step, raster(1))
    graph = norse.to_nir(net, torch.zeros(N_IN), dt=dt)
    library = lambda path: (lambda module: lambda x, state: module(x[None], state))(norse.from_nir(nir.read(path),
                                                                                                    dt=dt))
    return compare("Norse", graph, own, f"{dt!r}*second", library, loss)


def brian2_lif_case():
    """A network written in Brian2's terms (volts, exact integration, tau 10-30 ms; 20 input trains -> 30 LIF ->
    10 LIF with per-source delays and inhibitory recurrence), exported to NIR and read back: the original's
    Brian2 run against the NIR form's (its Euler step is the original's; the input a neuron receives in the step
    it spikes is erased by Brian2's reset and kept by NIR)."""
    from bridge.description import (Network, NeuronModel, Population, Projection, RunSettings, Simulation,
                                    SpikeTrains, SynapseModel)
    rng = np.random.default_rng(0)
    model = NeuronModel("dv/dt = (v_rest - v)/tau : volt\ntau : second (constant)", threshold="v > v_th",
                        reset="v = v_reset", parameters={"v_rest": "-70*mV", "v_th": "-50*mV", "v_reset": "-65*mV"})
    synapse = SynapseModel("w : volt", on_pre="v_post += w")
    spikes = np.unique(np.stack([rng.integers(0, 20, 100), (rng.uniform(0, 0.1, 100) / 1e-4).astype(int)], 1), axis=0)
    network = Network(
        populations=(Population("E", model, 30, {"v": "-70*mV", "tau": rng.uniform(0.01, 0.03, 30)}),
                     Population("F", model, 10, {"v": "-70*mV", "tau": np.full(10, 0.02)})),
        sources=(SpikeTrains("inp", 20, spikes[:, 0].tolist(), (spikes[:, 1] * 1e-4).tolist()),),
        projections=(Projection("S", "inp", "E", synapse, values={"w": rng.uniform(0, 0.003, (20, 30))}),
                     Projection("T", "E", "F", synapse, values={"w": rng.uniform(0, 0.008, (30, 10))},
                                delays=rng.integers(1, 20, (30, 1)).repeat(10, 1) * 1e-4),
                     Projection("R", "F", "F", synapse, values={"w": -rng.uniform(0, 0.005, (10, 10))})))
    simulation = Simulation(network, RunSettings("120*ms"))
    graph = nir_graphs.from_simulation(simulation)
    source = network.sources[0]
    again = nir_graphs.to_simulation((graph.nodes, graph.edges), "0.1*ms", "120*ms",
                                     {"inp": (list(source.indices), list(source.times))})
    original, _, report = paired_run(simulation)
    exported, _, report_again = paired_run(again)
    result = {"brian2 = torch": [report.identical, report_again.identical]}
    for name in ("E", "F"):
        ours, theirs = (set(zip(*(array.tolist() for array in record.spikes[name]))) for record in (original, exported))
        result[name] = {"spikes": [len(ours), len(theirs)], "same": len(ours & theirs) / max(len(ours | theirs), 1)}
    return result


def agreement(a, b):
    """Spikes in a and in b, and the fraction of (step, neuron) pairs with a spike in either that have it in both."""
    either = int(np.logical_or(a, b).sum())
    return {"spikes": [int(a.sum()), int(b.sum())],
            "same": 1.0 if not either else float(np.logical_and(a, b).sum() / either)}


def compare(name, graph, own, dt, read_back, loss):
    """The library's graph through spikebridge and back; `own`: the library's spikes before export."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        nir_graphs.write(folder / "net.nir", graph)
        np.savez(folder / "in.npz", input=raster(1))
        simulation = nir_graphs.load(folder / "net.nir", dt, spikes_path=folder / "in.npz")
        brian, _, report = paired_run(simulation)
        output = simulation.network.populations[-1].name
        indices, steps = brian.spikes[output]
        ours = np.zeros_like(own)
        keep = steps - LAG < len(own)
        ours[steps[keep] - LAG, indices[keep]] = 1
        nir_graphs.write(folder / "back.nir", nir_graphs.from_simulation(simulation))
        try:
            back = agreement(run_stepped(read_back(folder / "back.nir"), raster(1)), own)
        except Exception as error:  # the library's own reader failing is a result here
            back = {"error": f"{type(error).__name__}: {error}"[:200]}
        try:
            own_round_trip = agreement(run_stepped(read_back(folder / "net.nir"), raster(1)), own)
        except Exception as error:
            own_round_trip = {"error": f"{type(error).__name__}: {error}"[:200]}
    return {"library": name, "training loss, first and last step": loss, "brian2 = torch": report.identical,
            f"spikebridge against {name}, {LAG} steps later": agreement(ours, own),
            f"{name} reading spikebridge's NIR against {name}": back,
            f"{name} reading its own NIR against {name}": own_round_trip}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench/results/nir_round_trips.json")
    args = parser.parse_args()
    cases = {"snnTorch Leaky, reset to zero": lambda: snntorch_case(False),
             "snnTorch RLeaky (recurrent), reset to zero": lambda: snntorch_case(True),
             "snnTorch Leaky, reset by subtraction (its default)": lambda: snntorch_case(False, "subtract"),
             "Norse LIFBox, dt = 1 (time in steps)": lambda: norse_case(1.0),
             "Norse LIFBox, dt = 1 ms (its default)": lambda: norse_case(1e-3),
             "a Brian2 LIF network written to NIR and read back": brian2_lif_case}
    results = {}
    for title, case in cases.items():
        results[title] = case()
        print(title, json.dumps(results[title], indent=1))
    files.write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
