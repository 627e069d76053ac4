"""Seed 002's SpikingNet: the bridge description computes the seed's code exactly, in both backends; the
experiment trains it and Brian2 agrees; the MNIST IDX loader."""
import gzip
import json

import numpy as np
import pytest

from bridge.library import spiking_net as net
from bridge.app.paired import paired_run
from experiments import spiking_net as experiment


def seed_forward(x, w):
    """The seed's SpikingNet.forward_through_time, transcribed with numpy (one sample): logits averaged over
    time (its output layer reduces with mean)."""
    inner1, outer1 = np.zeros(len(w["bias_hidden"])), np.zeros(len(w["bias_hidden"]))
    inner2, logits = np.zeros(len(w["bias_output"])), np.zeros(len(w["bias_output"]))
    for x_k in x:
        delayed_outer1, delayed_inner2 = outer1, inner2
        inner1 = x_k @ w["input_hidden"] + w["bias_hidden"] + 0.9 * inner1
        outer1 = np.maximum(inner1 - 1.0, 0)
        inner1 = inner1 - (outer1 > 0) * 1.5 * inner1
        inner2 = delayed_outer1 @ w["hidden_output"] + w["bias_output"] + 0.9 * inner2
        inner2 = inner2 - (inner2 > 1.0) * 1.5 * inner2
        logits += delayed_inner2
    return logits / len(x)


def test_description_computes_the_seed_network_in_both_backends():
    shape = net.NetShape(n_inputs=12, n_hidden=8, n_classes=4, seed_steps=60)
    rng = np.random.default_rng(2)
    weights = {k: 5 * v for k, v in net.initial_weights(shape, rng).items()}  # strong enough to fire often
    stimulus = experiment.flicker(rng.uniform(-0.5, 0.5, (1, shape.n_inputs)), rng, shape)[0]
    brian, torch_record, report = paired_run(net.simulation(weights, shape, stimulus))
    expected = seed_forward(stimulus[:shape.seed_steps], weights)
    assert report.identical
    assert brian.count("hidden") >= 50 and brian.count("output") >= 25
    np.testing.assert_allclose(experiment.seed_logits(brian.traces["output.v"], shape), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(experiment.seed_logits(torch_record.traces["output.v"], shape), expected, rtol=1e-12, atol=1e-12)


def test_bad_weight_shape_is_named():
    shape = net.NetShape(n_inputs=4, n_hidden=3, n_classes=2, seed_steps=5)
    weights = net.initial_weights(shape, np.random.default_rng(0))
    weights["hidden_output"] = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"weights\['hidden_output'\]: shape \(2, 3\); expected \(3, 2\)"):
        net.simulation(weights, shape)


def test_idx_loader_reads_what_it_is_given(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape)
    (tmp_path / "plain").write_bytes(header + images.tobytes())
    (tmp_path / "zipped").write_bytes(gzip.compress(header + images.tobytes()))
    assert np.array_equal(experiment.load_idx(tmp_path / "plain"), images)
    assert np.array_equal(experiment.load_idx(tmp_path / "zipped"), images)
    (tmp_path / "short").write_bytes(header + images.tobytes()[:-1])
    with pytest.raises(ValueError, match="header says shape"):
        experiment.load_idx(tmp_path / "short")
    (tmp_path / "wrong").write_bytes(b"\x00\x00\x09\x01" + images.tobytes())
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        experiment.load_idx(tmp_path / "wrong")


@pytest.mark.slow
def test_quick_experiment_learns_and_brian2_agrees(tmp_path):
    results = experiment.run(out=tmp_path, quick=True, progress=False)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["brian2"] == {"samples": 3, "same_prediction": 1.0, "identical_spikes": "3/3"}
    assert saved["test_accuracy"]["spiking_torch_float64"] >= 0.6  # chance: 0.1; seen 0.81
    assert saved["test_accuracy"]["relu"] >= 0.6  # seen 0.84
    assert results["final_loss"]["spiking"] < 1.5  # ln 10 = 2.30 at chance; seen 1.01
    assert (tmp_path / "layers.png").stat().st_size > 10_000 and (tmp_path / "training.png").exists()


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_mnist_files_drive_the_experiment(tmp_path):
    """A tiny MNIST-format folder (4x4 'images', 3 classes): the experiment reads it and Brian2 agrees."""
    rng = np.random.default_rng(5)
    for prefix, n in (("train", 48), ("t10k", 6)):
        labels = rng.integers(0, 3, n)
        images = (rng.random((n, 4, 4)) * 60 + 60 * np.eye(4)[labels % 4][:, :, None]).clip(0, 255)
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
    results = experiment.run(out=tmp_path / "out", quick=True, mnist=tmp_path, batch=16, brian_samples=2,
                             progress=False)
    assert results["parameters"]["shape"] == {"n_inputs": 16, "n_hidden": 100, "n_classes": 3, "seed_steps": 128}
    assert results["parameters"]["n_train"] == 48 and results["parameters"]["n_test"] == 6
    assert results["brian2"] == {"samples": 2, "same_prediction": 1.0, "identical_spikes": "2/2"}
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
        experiment.load_mnist(tmp_path)
