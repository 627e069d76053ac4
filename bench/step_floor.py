"""The least time one step of a CUBA network can take in torch on this machine (issue 18). Not a test.

A hand-written CUBA step (Brette et al. 2007 sizes: 80 % excitatory, 2 % connectivity, dt 0.1 ms): exponential
integration of v, ge, gi with refractoriness, threshold and reset, then event-driven synapses (an index_add of
the synapses of the neurons that spiked) -- the fewest torch operations such a step needs, with none of the
generality of the step-by-step module. Timed eagerly, with the neuron update compiled by torch.compile, and one
elementwise operation alone; compare with Brian2 cpp_standalone's time per step in bench/RESULTS.md.

    python bench/step_floor.py --neurons 4000 --steps 2000 [--device cuda]
"""
import argparse
import time

import numpy as np
import torch

DT, TAUM, TAUE, TAUI = 1e-4, 0.02, 0.005, 0.01
VT, VR, EL, REFRACTORY_STEPS = -0.05, -0.06, -0.049, 50


def network(n, seed=1):
    """(offsets, targets, weights): each neuron's outgoing synapses as a CSR list."""
    rng = np.random.default_rng(seed)
    sources = np.repeat(np.arange(n), rng.binomial(n, 0.02, n))
    targets = torch.as_tensor(rng.integers(0, n, len(sources)))
    offsets = torch.as_tensor(np.searchsorted(sources, np.arange(n + 1)))
    weights = torch.where(torch.as_tensor(sources) < int(0.8 * n), 60 * 0.27 / 10 * 1e-3, -20 * 4.5 / 10 * 1e-3)
    return offsets, targets, weights.float()


def neurons(v, ge, gi, countdown):
    """One step of the neurons: (v, ge, gi, refractory countdown, spiked)."""
    active = countdown <= 0
    decay = float(np.exp(-DT / TAUM))
    v = torch.where(active, EL + (v - EL) * decay + (ge + gi) * DT / TAUM, v)
    ge, gi = ge * float(np.exp(-DT / TAUE)), gi * float(np.exp(-DT / TAUI))
    spiked = (v > VT) & active
    v = torch.where(spiked, torch.full_like(v, VR), v)
    countdown = torch.where(spiked, torch.full_like(countdown, REFRACTORY_STEPS), countdown - 1)
    return v, ge, gi, countdown, spiked


def synapses(ge, gi, spiked, offsets, targets, weights):
    """Event-driven: the synapses of the neurons that spiked add their weights."""
    sources = torch.nonzero(spiked).squeeze(1)
    if not len(sources):
        return ge, gi
    counts = offsets[sources + 1] - offsets[sources]
    starts = torch.repeat_interleave(offsets[sources] - torch.cumsum(counts, 0) + counts, counts)
    reached = starts + torch.arange(len(starts), device=starts.device)
    reached_targets, reached_weights = targets[reached], weights[reached]
    return (ge.index_add(0, reached_targets, reached_weights.clamp(min=0)),
            gi.index_add(0, reached_targets, reached_weights.clamp(max=0)))


def time_per_step(update, n, steps, connectivity, device):
    v = VR + torch.rand(n, device=device) * (VT - VR)
    ge, gi = torch.zeros(n, device=device), torch.zeros(n, device=device)
    countdown = torch.zeros(n, dtype=torch.int32, device=device)
    with torch.no_grad():
        for k in range(steps + 200):  # 200 steps of warm-up (and compilation)
            if k == 200:
                synchronize(device)
                start = time.perf_counter()
            v, ge, gi, countdown, spiked = update(v, ge, gi, countdown)
            ge, gi = synapses(ge, gi, spiked, *connectivity)
    synchronize(device)
    return (time.perf_counter() - start) / steps


def synchronize(device):
    """Wait for a GPU's queued work, so that the clock measures it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=4000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="torch's device, e.g. cuda")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    connectivity = tuple(part.to(args.device) for part in network(args.neurons))
    eager = time_per_step(neurons, args.neurons, args.steps, connectivity, args.device)
    compiled = time_per_step(torch.compile(neurons, dynamic=False), args.neurons, args.steps, connectivity,
                             args.device)
    x = torch.zeros(args.neurons, device=args.device)
    synchronize(args.device)
    start = time.perf_counter()
    for _ in range(10000):
        x = x * 1.0001
    synchronize(args.device)
    one_op = (time.perf_counter() - start) / 10000
    print(f"CUBA {args.neurons}, float32, {args.device}, {args.threads} threads: hand-written step "
          f"{1e6 * eager:.0f} us eager, {1e6 * compiled:.0f} us with the neuron update compiled; one elementwise "
          f"operation {1e6 * one_op:.1f} us")


if __name__ == "__main__":
    main()
