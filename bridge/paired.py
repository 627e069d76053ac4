"""Paired runs: one Simulation, the same input, both backends, one comparison report."""
import numpy as np

from bridge.compare import compare
from bridge.plan import lower


def paired_run(simulation, target="numpy", dtype=None, device=None, k=1, progress=False):
    """Run Brian2 (float64 reference) and torch step by step (`dtype`, default the simulation's) on the same
    plan and compare them in the tolerance class of `dtype`.

    Returns (brian_record, torch_record, report)."""
    from brian_models.network import run as run_brian
    from torch_models.stepwise import run as run_torch

    plan = lower(simulation)
    dtype = dtype or plan.dtype
    brian_record = run_brian(plan, target=target)
    torch_record = run_torch(plan, dtype=dtype, device=device, progress=progress)
    sizes = {name: p.n for name, p in plan.populations.items()}
    tolerance_class = "exact" if dtype == "float64" else "float32"
    neuron_driven = {p.target for p in plan.projections.values() if p.source in sizes}
    report = compare(brian_record, torch_record, sizes, tolerance_class, k=k, eps=float(np.finfo(dtype).eps),
                     neuron_driven=neuron_driven)
    return brian_record, torch_record, report
