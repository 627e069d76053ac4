"""Paired runs: one Simulation, the same input, both backends, one comparison report."""
import dataclasses
import signal

import numpy as np

from bridge.app.compare import STOCHASTIC_MIN_SEEDS, compare, compare_statistics
from bridge.description import check_dtype
from bridge.errors import DescriptionError
from bridge.names import record_key
from bridge.plan import lower


def backends():
    """The runners of both backends (Brian2's, torch's step by step), imported with Ctrl-C held back until they
    are loaded: torch aborts the whole process (SIGABRT) when SIGINT arrives while it loads."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        from brian_models.network import run as run_brian
        from torch_models import run as run_torch
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    return run_brian, run_torch


def paired_run(simulation, target="numpy", dtype=None, device=None, k=1, progress=False):
    """Run Brian2 (float64 reference) and torch step by step (`dtype`, default the simulation's) on the same
    plan and compare them in the tolerance class of `dtype`.

    Returns (brian_record, torch_record, report)."""
    run_brian, run_torch = backends()
    plan = lower(simulation)
    dtype = dtype or plan.dtype
    check_dtype(dtype, "dtype")
    brian_record = run_brian(plan, target=target)
    torch_record = run_torch(plan, dtype=dtype, device=device, progress=progress)
    return brian_record, torch_record, compare_records(simulation, brian_record, torch_record, dtype, k)


def compare_records(simulation, brian_record, torch_record, dtype, k=1):
    """The report of a paired run of `simulation`: torch's record (`dtype`) against Brian2's, in the tolerance
    class of `dtype`; custom events recorded are compared as spikes are."""
    network = simulation.network
    sizes = {p.name: p.n for p in network.populations}
    sizes.update({key: network.size(record_key(key)[0]) for key in simulation.run.events})
    tolerance_class = "exact" if dtype == "float64" else "float32"
    neuron_driven = {p.target for p in network.projections if p.source in sizes}
    return compare(brian_record, torch_record, sizes, tolerance_class, k=k, eps=float(np.finfo(dtype).eps),
                   neuron_driven=neuron_driven)


def independent_noise_run(simulation, seeds=STOCHASTIC_MIN_SEEDS, target="numpy", dtype=None, progress=False):
    """The stochastic class: Brian2 with its own random numbers (brian2.seed(s)) and torch with spikebridge's
    draws (noise_seed s; the seed of every PoissonTrains and PoissonInput moved on by s), for seeds
    s = 0..seeds-1, compared by rates and CV (bridge/app/compare.py).

    Returns (brian_records, torch_records, report)."""
    run_brian, run_torch = backends()
    if seeds < STOCHASTIC_MIN_SEEDS:
        raise DescriptionError("seeds", f"{seeds}; the stochastic class needs at least {STOCHASTIC_MIN_SEEDS}")
    brian_records, torch_records = [], []
    for seed in range(seeds):
        plan = lower(_seeded(simulation, seed))
        brian_records.append(run_brian(plan, target=target, native_noise_seed=seed))
        torch_records.append(run_torch(plan, dtype=dtype or plan.dtype, progress=progress))
    sizes = {name: p.n for name, p in plan.populations.items()}
    return brian_records, torch_records, compare_statistics(brian_records, torch_records, sizes)


def _seeded(simulation, seed):
    """The simulation drawing its seed-th numbers: noise_seed `seed`, Poisson inputs' seeds moved on by it."""
    net = simulation.network
    moved = lambda element: dataclasses.replace(element, seed=element.seed + seed) if hasattr(element, "seed") \
        else element
    network = dataclasses.replace(net, sources=tuple(map(moved, net.sources)),
                                  poisson_inputs=tuple(map(moved, net.poisson_inputs)))
    return dataclasses.replace(simulation, network=network, run=dataclasses.replace(simulation.run, noise_seed=seed))
