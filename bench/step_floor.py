"""The least time one step of a CUBA network can take in torch on this machine (issue 18). Not a test.

A hand-written CUBA step (Brette et al. 2007 sizes: 80 % excitatory, 2 % connectivity, dt 0.1 ms): exponential
integration of v, ge, gi with refractoriness, threshold and reset, then event-driven synapses (an index_add of
the synapses of the neurons that spiked) -- the fewest torch operations such a step needs, with none of the
generality of the step-by-step module. Timed eagerly, with the neuron update compiled by torch.compile, with
the whole step compiled as one graph (issue 31's target 2: fixed shapes, the spiking neurons as a fixed-capacity
list, torch.nonzero_static, each neuron's synapses a row padded to the longest), and one elementwise operation
alone; compare with Brian2's time per step in bench/RESULTS.md.

    python bench/step_floor.py --neurons 4000 --steps 2000 [--capacity 128] [--device cuda]
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


def padded(offsets, targets, weights):
    """Each neuron's synapses as a row padded to the longest (target 0, weight 0), and one row of padding more,
    for the empty places of a fixed-capacity list of spiking neurons: (targets, weights), (n + 1, longest)."""
    lengths = offsets[1:] - offsets[:-1]
    rows = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    columns = torch.arange(len(targets)) - offsets[rows]
    shape = (len(lengths) + 1, int(lengths.max()))
    return (torch.zeros(shape, dtype=targets.dtype).index_put_((rows, columns), targets),
            torch.zeros(shape, dtype=weights.dtype).index_put_((rows, columns), weights))


def whole_step(capacity, table_targets, table_weights):
    """One step with fixed shapes: the neurons, then the synapses of at most `capacity` spiking neurons."""
    def step(v, ge, gi, countdown):
        v, ge, gi, countdown, spiked = neurons(v, ge, gi, countdown)
        sources = torch.nonzero_static(spiked, size=capacity, fill_value=len(spiked)).squeeze(1)
        reached, reached_weights = table_targets[sources].reshape(-1), table_weights[sources].reshape(-1)
        return (v, ge.index_add(0, reached, reached_weights.clamp(min=0)),
                gi.index_add(0, reached, reached_weights.clamp(max=0)), countdown, spiked)
    return step


def time_per_step(step, n, steps, device):
    """(seconds per step, the most neurons that spiked in one step)."""
    v = VR + torch.rand(n, device=device) * (VT - VR)
    ge, gi = torch.zeros(n, device=device), torch.zeros(n, device=device)
    countdown = torch.zeros(n, dtype=torch.int32, device=device)
    most = torch.zeros((), dtype=torch.int64, device=device)
    with torch.no_grad():
        for k in range(steps + 200):  # 200 steps of warm-up (and compilation)
            if k == 200:
                synchronize(device)
                start = time.perf_counter()
            v, ge, gi, countdown, spiked = step(v, ge, gi, countdown)
            most = torch.maximum(most, spiked.sum())
    synchronize(device)
    return (time.perf_counter() - start) / steps, int(most)


def synchronize(device):
    """Wait for a GPU's queued work, so that the clock measures it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=4000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--capacity", type=int, default=128, help="the most neurons spiking in one step that the "
                                                                   "compiled whole step delivers")
    parser.add_argument("--device", default="cpu", help="torch's device, e.g. cuda")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    offsets, targets, weights = network(args.neurons)
    connectivity = tuple(part.to(args.device) for part in (offsets, targets, weights))
    table = tuple(part.to(args.device) for part in padded(offsets, targets, weights))

    def stepping(update):
        def step(v, ge, gi, countdown):
            v, ge, gi, countdown, spiked = update(v, ge, gi, countdown)
            return (v, *synapses(ge, gi, spiked, *connectivity), countdown, spiked)
        return step

    eager, _ = time_per_step(stepping(neurons), args.neurons, args.steps, args.device)
    compiled, _ = time_per_step(stepping(torch.compile(neurons, dynamic=False)), args.neurons, args.steps,
                                args.device)
    whole, most = time_per_step(torch.compile(whole_step(args.capacity, *table), dynamic=False), args.neurons,
                                args.steps, args.device)
    if most > args.capacity:
        raise SystemExit(f"--capacity {args.capacity}: {most} neurons spiked in one step; give at least {most}")
    x = torch.zeros(args.neurons, device=args.device)
    synchronize(args.device)
    start = time.perf_counter()
    for _ in range(10000):
        x = x * 1.0001
    synchronize(args.device)
    one_op = (time.perf_counter() - start) / 10000
    print(f"CUBA {args.neurons}, float32, {args.device}, {args.threads} threads: hand-written step "
          f"{1e6 * eager:.0f} us eager, {1e6 * compiled:.0f} us with the neuron update compiled, "
          f"{1e6 * whole:.0f} us compiled whole (at most {most} of {args.capacity} spiking); one elementwise "
          f"operation {1e6 * one_op:.1f} us")


if __name__ == "__main__":
    main()
