"""Benchmark (not a test; issue 6): spikebridge's torch backend against snnTorch and Norse, side by side.

The network: Linear 700 -> 256 + LIF, Linear 256 -> 20 + LIF, 100 steps of 1 ms, batch 32, Bernoulli(0.05)
input spikes, cross-entropy on the summed output spikes, Adam. Built in one process as
- spikebridge: the description bridge.library.feedforward with Norse's LIF neuron (library.lif_euler),
  compiled by torch_models.compile(..., "layered"): input spikes event by event, each LIF layer as one affine
  scan with a hand-written backward pass (torch_models/scan.py), eager and with compile=True (the scan's
  chunks of 10 steps through torch.compile);
- Norse 1.1: SequentialState(Linear, LIF, Linear, LIF) on time-first tensors;
- snnTorch 1.0: Linear then Synaptic (the same current-based LIF) per time step, as its tutorials write it;
  also Leaky (a simpler neuron, for reference).

Agreement (float64, same weights and inputs): Norse's LIF is the same neuron, so spikebridge's spikes must
equal Norse's shifted by one step per layer (Brian2's schedule: a spike reaches its target's state in the
next step; Norse adds the input before it updates). snnTorch's Synaptic has the same subthreshold dynamics
(alpha = 1 - dt/tau_syn, beta = 1 - dt/tau_mem, weights times dt/tau_mem), but its zero reset also drops the
input of the step after a spike, so it is compared with the threshold out of reach (membrane traces).

Reported: median time per training step of each (float32; rounds interleaved so that machine noise hits all
alike) and the ratios; inference throughput (no grad) in neuron-steps per second; the same network and input
in Brian2 (numpy, cython, cpp_standalone; spikes checked against spikebridge); spikebridge's training step
for 256/1024/4096 hidden neurons x 100/200/400 steps (eager and compiled, next to Norse and snnTorch) with
the fitted growth exponents.

Peers are benchmark-only: pip install --no-deps -r bench/requirements-peers.txt
Run: python bench/peers.py [--threads 2] [--rounds 15] [--device cpu|cuda] [--out bench/results/peers]
(the float64 agreement and Brian2 always run on the CPU; --device moves the timed training and inference)
"""
import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import norse.torch as norse  # noqa: E402
import numpy as np  # noqa: E402
import snntorch  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bridge import batch as batching  # noqa: E402
from bridge import library  # noqa: E402
from brian_models import network as brian_network  # noqa: E402
from bridge.app.files import versions  # noqa: E402
import torch_models  # noqa: E402

N_INPUT, N_HIDDEN, N_OUTPUT, N_STEPS, BATCH, RATE = 700, 256, 20, 100, 32, 0.05
DT, TAU_MEM, TAU_SYN = 1e-3, 10e-3, 5e-3  # Norse's defaults
WEIGHT_GAIN = 4.0  # weights ~ N(0, (gain / sqrt(n_source))^2): hidden neurons fire at a few percent of steps


def weights(n_hidden, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, WEIGHT_GAIN / np.sqrt(n), (n, m)) for n, m in ((N_INPUT, n_hidden), (n_hidden, N_OUTPUT))]


def inputs(n_steps, seed=0, batch=BATCH):
    generator = torch.Generator().manual_seed(seed)
    spikes = (torch.rand(batch, n_steps, N_INPUT, generator=generator) < RATE).double()
    return spikes, torch.randint(0, N_OUTPUT, (batch,), generator=generator)


def simulation(w, n_steps, v_th="1"):
    return library.feedforward(w, library.lif_euler(tau_mem=f"{TAU_MEM}*second", tau_syn=f"{TAU_SYN}*second",
                                                    v_th=v_th), duration=f"{n_steps * DT}*second",
                               dt=f"{DT}*second", record=("layer_1.v",))


class Spikebridge(torch.nn.Module):
    def __init__(self, w, n_steps, dtype, compile=False, v_th="1"):
        super().__init__()
        self.net = torch_models.compile(simulation(w, n_steps, v_th), "layered", dtype=dtype, learn_delays=False,
                                        compile=compile)

    def forward(self, x):  # x (batch, steps, inputs) -> (hidden spikes, output spikes, hidden v), batch first
        run = self.net({"input": x}, record=("layer_1.v",))
        return run.spikes["layer_1"], run.spikes["layer_2"], run.traces["layer_1.v"]


def _linear(w, scale=1.0):
    layer = torch.nn.Linear(*w.shape, bias=False)
    layer.weight.data = torch.as_tensor(w.T * scale, dtype=torch.get_default_dtype()).contiguous()
    return layer


class Norse(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        p = norse.LIFParameters(tau_mem_inv=torch.tensor(1 / TAU_MEM), tau_syn_inv=torch.tensor(1 / TAU_SYN))
        self.model = norse.SequentialState(_linear(w[0]), norse.LIF(p, dt=DT), _linear(w[1]), norse.LIF(p, dt=DT))

    def forward(self, x):
        first, lif_1, second, lif_2 = self.model
        hidden, _ = lif_1(first(x.transpose(0, 1)))
        out, _ = lif_2(second(hidden))
        return hidden.transpose(0, 1), out.transpose(0, 1), None


class SnnTorch(torch.nn.Module):
    """Per step: Linear, then Synaptic (current-based, zero reset) or Leaky; weights scaled to Euler's dt/tau."""

    def __init__(self, w, neuron="synaptic", threshold=1.0):
        super().__init__()
        alpha, beta = 1 - DT / TAU_SYN, 1 - DT / TAU_MEM
        scale = DT / TAU_MEM if neuron == "synaptic" else 1.0
        make = (lambda: snntorch.Synaptic(alpha=alpha, beta=beta, threshold=threshold, reset_mechanism="zero")) \
            if neuron == "synaptic" else (lambda: snntorch.Leaky(beta=beta, threshold=threshold))
        self.fc_1, self.fc_2 = _linear(w[0], scale), _linear(w[1], scale)
        self.lif_1, self.lif_2 = make(), make()

    def forward(self, x):
        state_1, state_2 = [list(lif.init_synaptic()) if isinstance(lif, snntorch.Synaptic) else [lif.init_leaky()]
                            for lif in (self.lif_1, self.lif_2)]
        hidden, out, mem = [], [], []
        for x_t in x.unbind(1):
            z_1, *state_1 = self.lif_1(self.fc_1(x_t), *state_1)
            z_2, *state_2 = self.lif_2(self.fc_2(z_1.to(x_t.dtype)), *state_2)  # its spikes are float32
            hidden.append(z_1), out.append(z_2), mem.append(state_1[-1])
        return torch.stack(hidden, 1), torch.stack(out, 1), torch.stack(mem, 1)


def agreement():
    """Float64 forward passes of the same network and input: spikebridge against Norse (spikes, shifted one
    step per layer) and against snnTorch's Synaptic with the threshold out of reach (hidden membrane)."""
    torch.set_default_dtype(torch.float64)
    try:
        w, (x, _) = weights(N_HIDDEN), inputs(N_STEPS)
        with torch.no_grad():
            hidden, out, _ = Spikebridge(w, N_STEPS, "float64")(x)
            norse_hidden, norse_out, _ = Norse(w)(x)
            _, _, v = Spikebridge(w, N_STEPS, "float64", v_th="1e9")(x)
            _, _, mem = SnnTorch(w, "synaptic", threshold=1e9)(x)
        return {"hidden_spikes": int(hidden.sum()), "output_spikes": int(out.sum()),
                "hidden_spike_rate": float(hidden.mean()),
                "norse_hidden_identical_one_step_later": bool(torch.equal(hidden[:, 1:], norse_hidden[:, :-1])),
                "norse_output_identical_two_steps_later": bool(torch.equal(out[:, 2:], norse_out[:, :-2])),
                "snntorch_hidden_v_max_difference": float((v[:, 2:] - mem[:, :-2]).abs().max()),
                "hidden_v_max": float(v.abs().max())}
    finally:
        torch.set_default_dtype(torch.float32)


def models(w, n_steps, device, compiled=True):
    built = {"spikebridge": Spikebridge(w, n_steps, "float32"), "norse": Norse(w),
             "snntorch_synaptic": SnnTorch(w, "synaptic"), "snntorch_leaky": SnnTorch(w, "leaky")}
    if compiled:
        built["spikebridge_compiled"] = Spikebridge(w, n_steps, "float32", compile=True)
    return {name: model.to(device) for name, model in built.items()}


def training_step(model):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(x, labels):
        _, out, _ = model(x)
        loss = torch.nn.functional.cross_entropy(out.sum(1), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step


def timed(function, *args):
    started = time.perf_counter()
    function(*args)
    if torch.cuda.is_initialized():  # kernels run asynchronously: wait for them
        torch.cuda.synchronize()
    return time.perf_counter() - started


def compare(built, n_steps, rounds, device, progress=True):
    """Median seconds per training step and per inference pass of each model, rounds interleaved; the first
    training and inference call of each (warm-up, compilation) are timed apart."""
    x, labels = inputs(n_steps)
    x, labels = x.float().to(device), labels.to(device)
    steps = {name: training_step(model) for name, model in built.items()}
    first = {name: timed(step, x, labels) for name, step in steps.items()}
    with torch.no_grad():  # compiled code is compiled again for inputs that need no gradient
        first_inference = {name: timed(model, x) for name, model in built.items()}
    train, infer = {name: [] for name in built}, {name: [] for name in built}
    for _ in tqdm(range(rounds), desc=f"{n_steps} steps, {len(built)} models", disable=not progress):
        for name, model in built.items():
            train[name].append(timed(steps[name], x, labels))
            with torch.no_grad():
                infer[name].append(timed(model, x))
    neuron_steps = x.shape[0] * n_steps * (N_OUTPUT + next(iter(built.values()))(x)[0].shape[-1])
    return {name: {"first_step_s": first[name], "first_inference_s": first_inference[name],
                   "train_step_s": float(np.median(train[name])),
                   "train_step_quartiles_s": np.percentile(train[name], [25, 75]).tolist(),
                   "inference_s": float(np.median(infer[name])),
                   "inference_neuron_steps_per_s": neuron_steps / float(np.median(infer[name]))}
            for name in built}


def brian(copies, targets=("numpy", "cython", "cpp_standalone")):
    """The same network and first `copies` inputs in Brian2, as independent copies in one run per target:
    wall time of the whole run (building, code generation, compilation included) and whether the hidden and
    output spikes equal spikebridge's (float64) exactly."""
    w, (x, _) = weights(N_HIDDEN), inputs(N_STEPS)
    x = x[:copies]
    with torch.no_grad():
        hidden, out, _ = Spikebridge(w, N_STEPS, "float64")(x)
    expected = {name: _spike_set(spikes) for name, spikes in (("layer_1", hidden), ("layer_2", out))}
    copied = batching.replicate(simulation(w, N_STEPS), {"input": x.numpy().astype(bool)})
    results = {}
    for target in tqdm(targets, desc="Brian2"):
        runs = 2 if target == "cython" else 1  # cython's first run compiles (cached afterwards)
        walls = []
        for _ in range(runs):
            started = time.perf_counter()
            record = brian_network.run(copied, target=target)
            walls.append(time.perf_counter() - started)
        results[target] = {"wall_s": walls, "copies": copies,
                           "neuron_steps_per_s": copies * N_STEPS * (N_HIDDEN + N_OUTPUT) / min(walls),
                           "spikes_identical_to_spikebridge": all(record.spike_set(name) == expected[name]
                                                                  for name in expected)}
    return results


def _spike_set(spikes):
    """(copy * n + neuron, step) of a (copies, steps, n) spike tensor, as a Brian2 record of copies numbers."""
    copy, step, neuron = np.nonzero(spikes.numpy())
    return set(zip((copy * spikes.shape[2] + neuron).tolist(), step.tolist()))


def scaling(rounds, device, sizes=(256, 1024, 4096), durations=(100, 200, 400)):
    """Training-step time of spikebridge (eager and compiled), Norse and snnTorch for every size x duration,
    and the fitted exponents of time ~ steps^a (per size) and ~ hidden^b (per duration)."""
    table = {}
    for n_hidden in tqdm(sizes, desc="scaling"):
        for n_steps in durations:
            built = models(weights(n_hidden), n_steps, device)
            del built["snntorch_leaky"]
            measured = compare(built, n_steps, rounds, device, progress=False)
            table[f"{n_hidden}x{n_steps}"] = {name: m["train_step_s"] for name, m in measured.items()}
    names = list(next(iter(table.values())))
    slope = lambda xs, ys: float(np.polyfit(np.log(xs), np.log(ys), 1)[0])
    exponents = {name: {"steps": {n: slope(durations, [table[f"{n}x{t}"][name] for t in durations]) for n in sizes},
                        "hidden": {t: slope(sizes, [table[f"{n}x{t}"][name] for n in sizes]) for t in durations}}
                 for name in names}
    return {"sizes": list(sizes), "durations": list(durations), "train_step_s": table, "exponents": exponents}


def plot(results, path):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    main = results["network_256"]
    names = list(main)
    axes[0].barh(names, [main[n]["train_step_s"] * 1e3 for n in names], color="0.4")
    axes[0].set(xlabel="ms per training step (median)", title=f"700-256-20, {N_STEPS} steps, batch {BATCH}, "
                                                             f"{results['device']}, {results['threads']} threads")
    if "scaling" in results:
        s = results["scaling"]
        for name, style in zip(s["exponents"], ("-", "-.", "--", ":")):
            for n_hidden, color in zip(s["sizes"], ("C0", "C1", "C2")):
                axes[1].plot(s["durations"], [s["train_step_s"][f"{n_hidden}x{t}"][name] for t in s["durations"]],
                             style, color=color, marker="o", label=f"{name}, {n_hidden} hidden")
        axes[1].set(xscale="log", yscale="log", xlabel="time steps", ylabel="s per training step",
                    title="cost against duration and size")
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--scaling-rounds", type=int, default=3)
    parser.add_argument("--brian-copies", type=int, default=4)
    parser.add_argument("--skip", nargs="*", default=[], choices=["compile", "brian", "scaling"])
    parser.add_argument("--device", default="cpu", help="torch device of the training benchmarks, e.g. cuda")
    parser.add_argument("--out", default="bench/results/peers")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = {"date": time.strftime("%Y-%m-%d"), "threads": args.threads, "device": (
        torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"), "versions": {
        **versions(), "norse": norse.__version__ if hasattr(norse, "__version__") else "1.1",
        "snntorch": snntorch.__version__}, "agreement_float64": agreement()}
    results["network_256"] = compare(models(weights(N_HIDDEN), N_STEPS, device, compiled="compile" not in args.skip),
                                     N_STEPS, args.rounds, device)
    if "brian" not in args.skip:
        results["brian2"] = brian(args.brian_copies)
    if "scaling" not in args.skip:
        results["scaling"] = scaling(args.scaling_rounds, device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    plot(results, out / "peers.png")
    print(summary(results))


def summary(results):
    main, agree = results["network_256"], results["agreement_float64"]
    ours = [n for n in main if n.startswith("spikebridge")]
    lines = [f"device {results['device']}, {results['threads']} threads",
             f"agreement (float64): Norse hidden/output spikes identical (shifted 1/2 steps): "
             f"{agree['norse_hidden_identical_one_step_later']}/{agree['norse_output_identical_two_steps_later']}; "
             f"snnTorch Synaptic subthreshold v max difference {agree['snntorch_hidden_v_max_difference']:.1e}",
             f"{'model':22s} {'train ms':>9s} {'first ms':>10s} {'infer ms':>9s} {'neuron-steps/s':>15s}"]
    for name, m in main.items():
        lines.append(f"{name:22s} {m['train_step_s'] * 1e3:9.1f} {m['first_step_s'] * 1e3:10.0f} "
                     f"{m['inference_s'] * 1e3:9.1f} {m['inference_neuron_steps_per_s']:15.3g}")
    for name in ours:
        lines.append(f"{name}: " + ", ".join(f"{main[peer]['train_step_s'] / main[name]['train_step_s']:.2f}x "
                                              f"faster than {peer}" for peer in main if peer not in ours))
    for target, m in results.get("brian2", {}).items():
        lines.append(f"Brian2 {target}: {m['copies']} copies, wall {', '.join(f'{w:.1f}' for w in m['wall_s'])} s, "
                     f"{m['neuron_steps_per_s']:.3g} neuron-steps/s, spikes identical to spikebridge: "
                     f"{m['spikes_identical_to_spikebridge']}")
    if "scaling" in results:
        for name, e in results["scaling"]["exponents"].items():
            lines.append(f"{name}: time ~ steps^a, a = " + ", ".join(f"{v:.2f}" for v in e["steps"].values())
                         + "; ~ hidden^b, b = " + ", ".join(f"{v:.2f}" for v in e["hidden"].values()))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
