"""Per-synapse delays of a dense projection: torch_models.delays.delayed_weighted_sum (one convolution whose
kernel holds each weight at its delay) against the route without it, shift on every synapse's copy of its
source train followed by the weighted sum. One training step's worth of work (forward + backward for the
weights and the delays), integer delays, float32, the two routes interleaved in one process, with the largest
difference of their outputs and gradients.

    python bench/synapse_delays.py [--batch 32] [--steps 100] [--sources 200] [--max-delay 25] [--repeats 5]
                                   [--threads 1] [--out bench/results/synapse_delays.json]
"""
import argparse
import json
import platform
import statistics
import time

import torch

from torch_models.delays import delayed_weighted_sum, shift


def by_copies(x, weight, steps, max_steps):
    batch, time_steps, _ = x.shape
    copies = x[..., None].expand(-1, -1, -1, weight.shape[1]).reshape(batch, time_steps, -1)
    delayed = shift(copies, steps.reshape(-1), max_steps).view(batch, time_steps, *weight.shape)
    return (delayed * weight).sum(2)


def training_step(route, x, weight, steps, max_steps, upstream):
    weight, steps = weight.detach().requires_grad_(), steps.detach().requires_grad_()
    started = time.perf_counter()
    out = route(x, weight, steps, max_steps)
    weight_grad, steps_grad = torch.autograd.grad((out * upstream).sum(), (weight, steps))
    return time.perf_counter() - started, (out.detach(), weight_grad, steps_grad)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--targets", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--max-delay", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="bench/results/synapse_delays.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    routes = {"copies": by_copies, "convolution": delayed_weighted_sum}
    rows = []
    for n_target in args.targets:
        x = (torch.rand(args.batch, args.steps, args.sources, generator=generator) < 0.2).float()
        weight = torch.randn(args.sources, n_target, generator=generator) * 0.1
        steps = torch.randint(0, args.max_delay + 1, (args.sources, n_target), generator=generator).float()
        upstream = torch.randn(args.batch, args.steps, n_target, generator=generator)
        times, results = {name: [] for name in routes}, {}
        for _ in range(args.repeats):
            for name, route in routes.items():
                seconds, results[name] = training_step(route, x, weight, steps, args.max_delay, upstream)
                times[name].append(seconds)
        difference = max(float((a - b).abs().max() / b.abs().max())
                         for a, b in zip(results["convolution"], results["copies"]))
        median = {name: statistics.median(values) * 1e3 for name, values in times.items()}
        rows.append({"targets": n_target, "synapses": args.sources * n_target, "ms": median,
                     "speedup": median["copies"] / median["convolution"], "max_relative_difference": difference,
                     "copies_bytes": args.batch * args.steps * args.sources * n_target * 4})
        print(f"{args.sources} x {n_target} synapses: copies {median['copies']:.1f} ms, convolution "
              f"{median['convolution']:.1f} ms, {rows[-1]['speedup']:.1f}x; outputs and gradients differ by "
              f"<= {difference:.1e} (relative to the largest); the copies hold "
              f"{rows[-1]['copies_bytes'] / 2 ** 20:.0f} MiB", flush=True)
    with open(args.out, "w") as f:
        json.dump({"arguments": vars(args), "torch": torch.__version__, "machine": platform.processor() or
                   platform.machine(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
