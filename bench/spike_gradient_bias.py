"""The gradient of a spike-time loss against the loss itself, across one parameter of fit-adex's model.

fit-adex's AdEx neuron (eight trials of noisy current, 250 ms), its spikes with the true values as the target;
one parameter (default gL, true 30 nS) runs at 21 values around the truth, as one batch, the others true. For
each value: the loss `spikebridge fit` uses (squared van Rossum distance over the target's spike count), its
slope by central differences, and its gradient both ways FIT.json's loss.spike_gradient offers: through the
spike times ('timing') and through the surrogate of spike existence ('existence'). Where a gradient's sign
disagrees with the slope, gradient descent walks away from the truth. Writes a CSV and a PNG.

    python bench/spike_gradient_bias.py --out bench/results/spike_gradient_bias [--key neuron.gL]
"""
import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

import torch_models  # noqa: E402
from bridge.app import files, fit, fit_losses  # noqa: E402
from bridge.quantities import parse_quantity  # noqa: E402
from experiments import fit_adex  # noqa: E402


def scan(folder, key, tau):
    """Rows of value, loss and the loss's surrogate gradient in the value, at 21 values from 0.8 to 1.2 times
    the true one."""
    fit_adex.write_files(folder, quick=False, seed=0)
    true = parse_quantity(fit_adex.TRUE[key], key)
    unit = fit_adex.TRUE[key].split("*", 1)[1]
    scale = float(np.asarray(true)) / float(np.asarray(parse_quantity(f"1*{unit}", key)))
    values = np.linspace(0.8, 1.2, 21) * scale
    (folder / "scan.json").write_text(json.dumps({
        "model": "model.py", "learn": {key: "shared"}, "starts": {key: [f"{float(v)!r}*{unit}" for v in values]},
        "target": {"values": {key: fit_adex.TRUE[key]}},
        "loss": {"spikes": {"neuron": 1}, "van_rossum_tau": tau}}))
    spec = fit.read(folder / "scan.json")
    module = torch_models.compile(spec.simulation, "stepwise", dtype="float64", learn=spec.learn, starts=spec.starts)
    recorded = module(record=[])
    raw = module.learning.raw[key.replace(".", ":")]  # unbounded: the value is a fixed scale times raw
    per_unit = float(np.asarray(parse_quantity(f"1*{unit}", key))) / module.learning.scales[key]
    table = {f"{key} ({unit})": values}
    for how in fit_losses.SPIKE_GRADIENTS:
        loss = fit_losses.run_losses(recorded, spec, len(values), how)
        (gradient,) = torch.autograd.grad(loss.sum(), raw, retain_graph=True)
        table["loss"] = loss.detach().numpy()
        table[f"gradient ({how})"] = gradient.reshape(-1).numpy() * per_unit
    table["slope of the loss"] = np.gradient(table["loss"], values)
    return pd.DataFrame(table)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/spike_gradient_bias")
    parser.add_argument("--key", default="neuron.gL", choices=sorted(fit_adex.TRUE))
    parser.add_argument("--tau", default="10*ms", help="the van Rossum kernel's time constant")
    args = parser.parse_args()
    out = Path(args.out)
    table = scan(out / "problem", args.key, args.tau)
    slope = np.sign(table["slope of the loss"])
    disagree = {how: int((np.sign(table[f"gradient ({how})"]) != slope).sum()) for how in fit_losses.SPIKE_GRADIENTS}
    print(table.to_string(index=False))
    print("values where the gradient's sign disagrees with the slope:", disagree)
    with files.atomic(out / "scan.csv") as temporary:
        table.to_csv(temporary, index=False)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    x = table.iloc[:, 0]
    top.plot(x, table["loss"], marker=".")
    top.set_ylabel("loss")
    for how in fit_losses.SPIKE_GRADIENTS:
        bottom.plot(x, table[f"gradient ({how})"], marker=".", label=f"gradient ({how})")
    bottom.plot(x, table["slope of the loss"], marker=".", label="slope of the loss")
    bottom.axhline(0, color="gray", lw=0.5)
    bottom.set_ylabel(f"d loss / d value (per {table.columns[0].split('(')[-1].rstrip(')')})")
    bottom.set_xlabel(table.columns[0])
    bottom.legend(fontsize=8)
    fig.tight_layout()
    with files.atomic(out / "scan.png") as temporary:
        fig.savefig(temporary, dpi=110, format="png")
    files.write_json(out / "summary.json", {"key": args.key, "tau": args.tau,
                                            "signs_disagree": disagree, "values": len(table),
                                            "versions": files.versions()})


if __name__ == "__main__":
    main()
