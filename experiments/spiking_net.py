"""Seed 002: the two-layer SpikingNet with penalty neurons, trained in torch from its bridge description next
to the same-size ReLU network, then re-run in Brian2 on test samples (float64, same dt): are the spikes and
predictions identical?

Data: the embedded UCI digits (8x8, experiments/data), or MNIST from local IDX files (`mnist=FOLDER`
holding train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-... optionally .gz). Pixels are scaled
as the seed's transform: value/max - 0.5. Training as the seed: SGD with momentum 0.5, learning rate
0.1, 0.05, 0.01 in its three epochs, negative log-likelihood of log_softmax(logits).
"""
import gzip
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from bridge.app import files
from bridge.library import spiking_net as net

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from brian_models.network import run as run_brian  # noqa: E402
from experiments import save_figure  # noqa: E402
from bridge.app.checkpoints import Checkpoints  # noqa: E402
import torch_models  # noqa: E402

DIGITS = Path(__file__).parent / "data" / "digits.csv.gz"
LEARNING_RATES = (0.1, 0.05, 0.01)
CHECKPOINT_EVERY = 50  # batches
MNIST_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
               "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def flicker(images, rng, shape):
    """The seed's flickering input, x_k = image * uniform noise, padded to the run: (batch, n_steps, n_inputs)."""
    images = np.asarray(images, dtype=float)
    values = np.zeros((len(images), shape.n_steps, shape.n_inputs))
    values[:, :shape.seed_steps] = images[:, None, :] * rng.random((len(images), shape.seed_steps, shape.n_inputs))
    return values


def seed_logits(output_v, shape):
    """The seed's time-averaged output states from a recorded output.v, (..., steps, n_classes)."""
    return output_v.sum(-2) / shape.seed_steps


def load_idx(path):
    """An IDX file (MNIST's format, optionally gzipped) as a numpy array."""
    data = Path(path).read_bytes()
    data = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    n_dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * k:8 + 4 * k], "big") for k in range(n_dims))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * n_dims)
    if values.size != np.prod(shape):
        raise ValueError(f"{path}: header says shape {shape} but holds {values.size} values")
    return values.reshape(shape)


def load_mnist(folder):
    """(train_x, train_y, test_x, test_y) from the four IDX files in `folder`."""
    arrays = {}
    for key, stem in MNIST_FILES.items():
        found = [p for p in (Path(folder) / stem, Path(folder) / f"{stem}.gz") if p.exists()]
        if not found:
            raise FileNotFoundError(f"mnist folder {folder}: {stem}[.gz] not found")
        arrays[key] = load_idx(found[0])
    scale = lambda images: images.reshape(len(images), -1) / 255.0 - 0.5
    return (scale(arrays["train_images"]), arrays["train_labels"].astype(np.int64),
            scale(arrays["test_images"]), arrays["test_labels"].astype(np.int64))


def load_digits(rng, test_fraction=0.2):
    """The embedded digits, split at random (seeded) into train and test."""
    table = np.loadtxt(DIGITS, delimiter=",")
    images, labels = table[:, :-1] / 16.0 - 0.5, table[:, -1].astype(np.int64)
    order = rng.permutation(len(labels))
    n_test = int(round(test_fraction * len(labels)))
    test, train = order[:n_test], order[n_test:]
    return images[train], labels[train], images[test], labels[test]


class SpikingClassifier(nn.Module):
    """The compiled bridge description with the seed's flickering input and time-averaged logits."""

    def __init__(self, weights, shape, dtype, device):
        super().__init__()
        self.shape = shape
        self.network = torch_models.compile(net.simulation(weights, shape), "stepwise", dtype, device)

    def forward(self, stimulus, record=("output.v",)):
        run = self.network(currents={"image": stimulus}, record=list(record))
        return seed_logits(run.traces["output.v"], self.shape), run

    def weights(self):
        return {name: self.network.values(name, "w").reshape(
            self.shape.weight_shape(name)) for name in net.WEIGHT_SHAPES}


def relu_net(shape):
    return nn.Sequential(nn.Linear(shape.n_inputs, shape.n_hidden), nn.ReLU(), nn.Linear(shape.n_hidden, shape.n_classes))


def train(model, forward, images, labels, epochs, batch, rng, progress, name, checkpoints):
    """The seed's schedule: SGD, momentum 0.5 (its buffer restarted every epoch, as the seed's new optimizer
    each epoch), one learning rate per epoch. Returns the loss per batch."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATES[0], momentum=0.5)
    per_epoch = -(-len(labels) // batch)
    order, losses = np.arange(len(labels)), []
    state = {"model": model, "optimizer": optimizer, "rng": rng, "order": order, "losses": losses}
    for step in checkpoints.steps(name, epochs * per_epoch, state, desc=f"{name}, {epochs} epochs",
                                  disable=not progress):
        epoch, start = divmod(step, per_epoch)
        if start == 0:
            order[:] = rng.permutation(len(labels))
            optimizer.state.clear()
            optimizer.param_groups[0]["lr"] = LEARNING_RATES[min(epoch, 2)]
        chosen = order[start * batch:(start + 1) * batch]
        loss = nn.functional.cross_entropy(forward(images[chosen]), torch.as_tensor(labels[chosen]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _spikes_equal(brian_record, torch_record, populations=("hidden", "output")):
    return all(all(np.array_equal(a, b) for a, b in zip(brian_record.spikes[p], torch_record.spikes[p]))
               for p in populations)


def run(out="results/spiking_net", seed=0, quick=False, device=None, mnist=None, epochs=None, batch=32,
        n_train=None, n_test=None, brian_samples=None, progress=True, resume=False):
    """Train both networks, test them, re-run test samples in Brian2; writes results.json and PNGs, and
    checkpoints of training every CHECKPOINT_EVERY batches into out/checkpoints (`resume` continues from them)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    train_x, train_y, test_x, test_y = load_mnist(mnist) if mnist else load_digits(rng)
    n_train = min(n_train or (640 if quick else len(train_y)), len(train_y))
    n_test = min(n_test or (64 if quick else len(test_y)), len(test_y))
    epochs = epochs or (2 if quick else 3)
    brian_samples = brian_samples or (3 if quick else 20)
    train_x, train_y, test_x, test_y = train_x[:n_train], train_y[:n_train], test_x[:n_test], test_y[:n_test]
    shape = net.NetShape(n_inputs=train_x.shape[1], n_classes=int(max(train_y.max(), test_y.max())) + 1)
    identity = {"seed": seed, "data": str(mnist), "n_train": n_train, "epochs": epochs, "batch": batch}
    checkpoints = Checkpoints(out / "checkpoints", identity, resume, CHECKPOINT_EVERY)

    spiking = SpikingClassifier(net.initial_weights(shape, rng), shape, "float32", device)
    stimulus = lambda images, dtype: torch.as_tensor(flicker(images, rng, shape), dtype=dtype, device=device)
    spiking_losses = train(spiking, lambda x: spiking(stimulus(x, torch.float32))[0], train_x, train_y, epochs,
                           batch, rng, progress, "spiking", checkpoints)
    relu = relu_net(shape).to(device)
    relu_losses = train(relu, lambda x: relu(torch.as_tensor(x, dtype=torch.float32, device=device)), train_x,
                        train_y, epochs, batch, rng, progress, "ReLU", checkpoints)

    weights = spiking.weights()
    checked = SpikingClassifier(weights, shape, "float64", device)  # the trained net, float64 as Brian2
    test_stimulus = flicker(test_x, np.random.default_rng(seed + 1), shape)
    with torch.no_grad():
        relu_predictions = relu(torch.as_tensor(test_x, dtype=torch.float32, device=device)).argmax(1).cpu().numpy()
        predictions, runs = [], []
        for start in range(0, n_test, batch):
            logits, torch_run = checked(torch.as_tensor(test_stimulus[start:start + batch], device=device))
            predictions.append(logits.argmax(1).cpu().numpy())
            runs.append(torch_run)
    predictions = np.concatenate(predictions)
    agree, identical, example = [], [], None
    for b in tqdm(range(min(brian_samples, n_test)), desc="Brian2 re-run", disable=not progress):
        brian_record = run_brian(net.simulation(weights, shape, test_stimulus[b]))
        torch_record = runs[b // batch].record(b % batch)
        agree.append(int(np.argmax(seed_logits(brian_record.traces["output.v"], shape))) == int(predictions[b]))
        identical.append(_spikes_equal(brian_record, torch_record))
        example = example or (brian_record, int(test_y[b]))
    results = {
        "experiment": "spiking-net", "seed": seed, "quick": quick,
        "data": f"MNIST from {mnist}" if mnist else "embedded UCI digits (8x8)",
        "parameters": {"n_train": n_train, "n_test": n_test, "epochs": epochs, "batch": batch,
                       "learning_rates": LEARNING_RATES[:epochs], "momentum": 0.5, "shape": vars(shape),
                       "neuron": {"decay": 0.9, "threshold": 1.0, "penalty_threshold": 1.5}},
        "versions": files.versions(),
        "test_accuracy": {"spiking_torch_float64": float(np.mean(predictions == test_y)),
                          "relu": float(np.mean(relu_predictions == test_y))},
        "brian2": {"samples": len(agree), "same_prediction": float(np.mean(agree)),
                   "identical_spikes": f"{sum(identical)}/{len(identical)}"},
        "final_loss": {"spiking": float(np.mean(spiking_losses[-5:])), "relu": float(np.mean(relu_losses[-5:]))},
        "seconds": round(time.time() - started, 1),
    }
    files.write_json(out / "results.json", results)
    _plot_training(spiking_losses, relu_losses, results, out / "training.png")
    _plot_layers(*example, out / "layers.png")
    return results


def summary(results):
    acc, b = results["test_accuracy"], results["brian2"]
    return "\n".join([
        f"spiking-net (seed 002) on {results['data']}: {results['parameters']['n_train']} train, "
        f"{results['parameters']['n_test']} test samples, {results['parameters']['epochs']} epochs",
        f"  test accuracy: spiking net {acc['spiking_torch_float64']:.2%}, ReLU net {acc['relu']:.2%}",
        f"  Brian2 re-run of {b['samples']} test samples: same prediction {b['same_prediction']:.0%}, "
        f"identical spikes {b['identical_spikes']}",
        f"  {results['seconds']} s"])


def _plot_training(spiking_losses, relu_losses, results, path):
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    left.plot(spiking_losses, label="spiking net")
    left.plot(relu_losses, label="ReLU net")
    left.set_xlabel("batch")
    left.set_ylabel("training loss (NLL)")
    left.legend()
    acc = results["test_accuracy"]
    right.bar(["spiking (torch)", "ReLU"], [100 * acc["spiking_torch_float64"], 100 * acc["relu"]],
              color=["tab:blue", "tab:gray"])
    right.set_ylabel("test accuracy (%)")
    right.set_title(f"Brian2 re-run: same prediction {results['brian2']['same_prediction']:.0%} "
                    f"of {results['brian2']['samples']}")
    save_figure(fig, path)


def _plot_layers(record, label, path):
    """As the seed's figures: inner states and output spikes of each layer over time (one test sample)."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 6), gridspec_kw={"height_ratios": [3, 1]})
    for column, layer in enumerate(("hidden", "output")):
        image = axes[0, column].imshow(record.traces[f"{layer}.v"].T, aspect="auto", cmap="rainbow",
                                       interpolation="nearest")
        fig.colorbar(image, ax=axes[0, column])
        axes[0, column].set_title(f"inner state v, {layer} layer (Brian2; digit {label})")
        neurons, steps = record.spikes[layer]
        axes[1, column].plot(steps, neurons, "|k", markersize=4)
        axes[1, column].set_xlim(axes[0, column].get_xlim())
        axes[1, column].set_xlabel("time step")
        axes[1, column].set_ylabel("neuron")
        axes[1, column].set_title(f"output spikes, {layer} layer")
    save_figure(fig, path)
