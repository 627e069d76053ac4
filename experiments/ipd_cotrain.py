"""Experiment `ipd-cotrain`: delays and weights learned together for IPD sound localisation, then the
trained network re-run in Brian2.

Task (COMOB quick-start setting, no phase delays in the input): a 20 Hz tone, 100 ms, dt 1 ms, 100 Poisson
fibres per ear (600 Hz max, envelope power 2), IPD uniform over [-90, 90) degrees, 12 classes of 15 degrees
(and 36 of 5 degrees). Network (experiments/ipd.py, one description): every synapse from a fibre to a LIF hidden
neuron has a learnable delay (0..25 ms, whole steps: rounded forward, straight-through backward; one per
synapse, as DCLS) and a learnable weight; hidden spikes reach one leaky integrator per class; the class is
the largest time-averaged output. Trained in torch (LayeredNetwork) with Adam, separate learning rates for
weights and delays, fresh stimuli every batch, learning rates annealed to 0 (cosine); tested on an
independently drawn test set.

Validation: the trained description (weights and delays) is written to network.json, loaded back, and the
test set is run in Brian2 (numpy target; many samples at once as independent copies, bridge/batch.py) at
the same dt and at dt/10, classified from Brian2's output, and compared with torch (float64).
"""
import dataclasses
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import torch_models  # noqa: E402
from bridge.app import files  # noqa: E402
from bridge import batch as batching  # noqa: E402
from bridge.description import Timing, from_json  # noqa: E402
from brian_models import network as brian_network  # noqa: E402
from experiments import ipd, one_thread, save_figure  # noqa: E402
from bridge.app.checkpoints import Checkpoints  # noqa: E402

MAX_DELAY_STEPS = 25
TAU = {"hidden": "5*ms", "output": "5*ms", "synapse": None}
INITIAL_WEIGHT_SD = 0.1  # fibre -> hidden
SETTINGS = {  # name: (task, hidden neurons)
    "12_classes": (ipd.IPDTask(n_classes=12), 100),
    "36_classes": (ipd.IPDTask(n_classes=36), 100),
}
FULL = dict(batches=1000, batch_size=256, n_test=2048, n_brian=2048, n_brian_fine=1024)
QUICK = dict(batches=80, batch_size=128, n_test=256, n_brian=64, n_brian_fine=32)
LEARNING_RATES = {"weights": 5e-3, "delays": 0.15}  # Adam; delays in steps per update
CHECKPOINT_EVERY = 50  # batches


def initial_description(task, n_hidden, rng):
    n_inputs = 2 * task.fibres
    weights = {"ears_hidden": rng.normal(0, INITIAL_WEIGHT_SD, (n_inputs, n_hidden)),
               "hidden_output": rng.normal(0, 1 / np.sqrt(n_hidden), (n_hidden, task.n_classes))}
    delays = rng.integers(0, MAX_DELAY_STEPS + 1, (n_inputs, n_hidden)) * task.dt
    return ipd.classifier(task, weights, delays, n_hidden, tau_hidden=TAU["hidden"],
                          tau_output=TAU["output"], tau_synapse=TAU["synapse"],
                          max_delay=f"{MAX_DELAY_STEPS * task.dt}*second")


def torch_module(simulation, dtype, device):
    return torch_models.compile(simulation, "layered", dtype=dtype, device=device, learn_delays=["ears_hidden"])


def predict(module, spikes, device, chunk=512):
    with torch.no_grad():
        out = [ipd.logits(module({"ears": torch.as_tensor(spikes[k:k + chunk], device=device)})
                          .traces["output.v"]).argmax(-1).cpu().numpy() for k in range(0, len(spikes), chunk)]
    return np.concatenate(out)


def train(task, n_hidden, sizes, seed, device, progress, checkpoints):
    rng = np.random.default_rng(seed)
    module = torch_module(initial_description(task, n_hidden, rng), "float32", device)
    delays = module.learnable_delays()["ears_hidden"]
    initial_delays = module.delays_in_force("ears_hidden")
    weights = [p for p in module.parameters() if p is not delays]
    optimizer = torch.optim.Adam([{"params": weights, "lr": LEARNING_RATES["weights"]},
                                  {"params": [delays], "lr": LEARNING_RATES["delays"]}])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, sizes["batches"])
    losses = []
    state = {"module": module, "optimizer": optimizer, "schedule": schedule, "rng": rng, "losses": losses}
    for _ in checkpoints.steps(f"{task.n_classes}_classes", sizes["batches"], state, mininterval=2,
                               desc=f"ipd-cotrain {task.n_classes} classes", disable=not progress):
        spikes, _, labels = task.draw(sizes["batch_size"], rng)
        run = module({"ears": torch.as_tensor(spikes, device=device)})
        loss = torch.nn.functional.cross_entropy(ipd.logits(run.traces["output.v"]),
                                                 torch.as_tensor(labels, device=device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return module, initial_delays, losses


def brian_predictions(simulation, spikes, dt=None, chunk=64):
    """Brian2's classes for many samples: independent copies of the network in one run per chunk."""
    if dt is not None:
        simulation = dataclasses.replace(simulation, run=dataclasses.replace(simulation.run,
                                                                             timing=Timing(dt=f"{dt}*second")))
    classes = []
    for k in range(0, len(spikes), chunk):
        part = spikes[k:k + chunk]
        copies = batching.replicate(simulation, {"ears": _on_grid(part, simulation.run.n_steps)})
        record = brian_network.run(copies, target="numpy")
        classes.append(ipd.logits(batching.split(record.traces["output.v"], len(part))).argmax(-1))
    return np.concatenate(classes)


def _on_grid(spikes, n_steps):
    """Spikes (samples, steps, n) placed on a grid n_steps long (a finer dt: step k -> k * factor)."""
    factor = n_steps // spikes.shape[1]
    if factor == 1:
        return spikes
    fine = np.zeros((spikes.shape[0], n_steps, spikes.shape[2]), dtype=bool)
    fine[:, ::factor] = spikes
    return fine


def evaluate(task, module, test, out, name, sizes, device):
    spikes, ipds, labels = test
    simulation = module.to_simulation()
    path = Path(out) / f"network_{name}.json"
    files.write_text(path, simulation.to_json())
    loaded = from_json(path.read_text())
    exact = torch_module(loaded, "float64", device)
    torch32, torch64 = predict(module, spikes, device), predict(exact, spikes, device)
    n, n_fine = sizes["n_brian"], sizes["n_brian_fine"]
    started = time.time()
    brian_same = brian_predictions(loaded, spikes[:n])
    brian_fine = brian_predictions(loaded, spikes[:n_fine], dt=task.dt / 10)
    accuracy = lambda predicted: float(np.mean(predicted == labels[:len(predicted)]))
    against_torch = lambda brian: {"samples": len(brian), "accuracy": accuracy(brian),
                                   "torch_accuracy_same_samples": accuracy(torch64[:len(brian)]),
                                   "identical_predictions": float(np.mean(brian == torch64[:len(brian)]))}
    return {"torch": {"accuracy": accuracy(torch64), **ipd.errors(task, torch64, ipds),
                      "float32_accuracy": accuracy(torch32),
                      "float32_same_predictions": float(np.mean(torch32 == torch64))},
            "brian2_same_dt": against_torch(brian_same),
            "brian2_fine_dt": {**against_torch(brian_fine), "dt": task.dt / 10},
            "brian2_seconds": time.time() - started, "network_file": path.name}, torch64


def run(out, seed=0, quick=False, device="cpu", progress=True, settings=None, resume=False):
    """The experiment; writes results.json, network files and PNGs into `out`, and checkpoints of training every
    CHECKPOINT_EVERY batches into out/checkpoints (`resume` continues from them)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = QUICK if quick else FULL
    names = settings or (["12_classes"] if quick else list(SETTINGS))
    checkpoints = Checkpoints(out / "checkpoints", {"seed": seed, "sizes": sizes}, resume, CHECKPOINT_EVERY)
    results = {"experiment": "ipd-cotrain", "seed": seed, "quick": quick, "versions": files.versions(),
               "parameters": {"sizes": sizes, "learning_rates": LEARNING_RATES, "max_delay_steps": MAX_DELAY_STEPS,
                              "tau": TAU, "initial_weight_sd": INITIAL_WEIGHT_SD,
                              "settings": {n: {"task": SETTINGS[n][0].__dict__, "hidden": SETTINGS[n][1]}
                                           for n in names}},
               "published": {"dcls_12_classes": {"accuracy": 0.882, "mae_continuous": 4.2}}}
    for name in names:
        task, n_hidden = SETTINGS[name]
        started = time.time()
        with one_thread():
            module, initial_delays, losses = train(task, n_hidden, sizes, seed, device, progress, checkpoints)
        test = task.draw(sizes["n_test"], np.random.default_rng([seed, 1]))  # independent of training
        metrics, predicted = evaluate(task, module, test, out, name, sizes, device)
        shape = (2 * task.fibres, n_hidden)  # one delay per fibre -> hidden synapse
        learned = module.delays_in_force("ears_hidden").reshape(shape)
        results[name] = {**metrics, "losses": losses, "train_seconds": time.time() - started,
                         "delays_initial_steps": initial_delays.reshape(shape).astype(int).tolist(),
                         "delays_learned_steps": learned.astype(int).tolist()}
        plot(task, name, results[name], test, predicted, out)
    files.write_json(out / "results.json", results)
    return results


def plot(task, name, result, test, predicted, out):
    _, ipds, labels = test
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    losses = np.asarray(result["losses"])
    axes[0].plot(losses, lw=0.5, color="0.6")
    axes[0].plot(np.convolve(losses, np.ones(20) / 20, mode="valid"), color="k")
    axes[0].set(xlabel="batch", ylabel="cross-entropy", title="training loss")
    before, after = np.asarray(result["delays_initial_steps"]), np.asarray(result["delays_learned_steps"])
    bins, half = np.arange(-0.5, MAX_DELAY_STEPS + 1), len(before) // 2  # rows: ear 0's fibres, then ear 1's
    axes[1].hist(before[:half].ravel(), bins=bins, histtype="step", color="k", label="initial, ear 0")
    axes[1].hist([after[:half].ravel(), after[half:].ravel()], bins=bins, histtype="step",
                 label=["learned, ear 0", "learned, ear 1"])
    axes[1].set(xlabel="delay (steps)", ylabel="synapses", title="fibre -> hidden delays")
    axes[1].legend(fontsize=7)
    confusion = np.zeros((task.n_classes, task.n_classes))
    np.add.at(confusion, (labels, predicted), 1)
    axes[2].imshow(confusion / confusion.sum(1, keepdims=True), cmap="Greys", origin="lower")
    axes[2].set(xlabel="predicted class", ylabel="true class", title=f"confusion (test acc "
                                                                      f"{result['torch']['accuracy']:.1%})")
    axes[3].hist(task.midpoints()[predicted] - ipds, bins=np.arange(-60, 61, 2.5), color="0.4")
    axes[3].set(xlabel="predicted midpoint - true IPD (deg)", ylabel="test samples",
                title=f"MAE {result['torch']['mae_continuous']:.2f} deg")
    save_figure(fig, Path(out) / f"ipd_cotrain_{name}.png")


def summary(results):
    lines = [f"ipd-cotrain (seed {results['seed']}{', quick' if results['quick'] else ''}); published DCLS "
             "12 classes: 88.2 % / 4.2 deg (continuous MAE)"]
    for name in results["parameters"]["settings"]:
        r = results[name]
        t, same, fine = r["torch"], r["brian2_same_dt"], r["brian2_fine_dt"]
        lines += [f"{name}: torch test accuracy {t['accuracy']:.1%}, MAE {t['mae_continuous']:.2f} deg (continuous), "
                  f"{t['mae_bin_midpoints']:.2f} deg (bin midpoints); float32 vs float64 same predictions "
                  f"{t['float32_same_predictions']:.1%}; trained in {r['train_seconds']:.0f} s",
                  f"  Brian2 same dt ({same['samples']} samples): accuracy {same['accuracy']:.1%} vs torch "
                  f"{same['torch_accuracy_same_samples']:.1%}, identical predictions {same['identical_predictions']:.1%}",
                  f"  Brian2 dt/10 ({fine['samples']} samples): accuracy {fine['accuracy']:.1%} vs torch "
                  f"{fine['torch_accuracy_same_samples']:.1%}, identical predictions {fine['identical_predictions']:.1%}"]
    return "\n".join(lines)
