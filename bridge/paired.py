"""Paired runs: one Simulation, the same input, both backends, one comparison report."""
import numpy as np

from bridge.compare import compare


def paired_run(simulation, target="numpy", dtype=None, device=None, k=1, progress=False):
    """Run Brian2 (float64 reference) and torch (`dtype`, default the simulation's) and compare.

    Returns (brian_record, torch_record, report)."""
    from brian_models.network import run as run_brian
    from torch_models.network import run as run_torch

    dtype = dtype or simulation.run.dtype
    brian_record = run_brian(simulation, target=target)
    torch_record = run_torch(simulation, dtype=dtype, device=device, progress=progress)
    sizes = {p.name: p.n for p in simulation.network.populations}
    tolerance_class = "exact" if dtype == "float64" else "float32"
    neuron_driven = {p.target for p in simulation.network.projections if p.source in sizes}
    report = compare(brian_record, torch_record, sizes, tolerance_class, k=k, eps=float(np.finfo(dtype).eps),
                     neuron_driven=neuron_driven)
    return brian_record, torch_record, report
