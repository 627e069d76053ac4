"""The torch backend: torch_models.compile(simulation, strategy, dtype, device) -> a module with one interface
(torch_models/module.py), whichever strategy runs it."""
import torch

from bridge.errors import DescriptionError
from bridge.plan import lower
from torch_models import layered
from torch_models.layered import LayeredNetwork
from torch_models.stepwise import StepwiseNetwork

STRATEGIES = ("auto", "stepwise", "layered")


def compile(simulation, strategy="auto", dtype=None, device=None, learn=None, **options):
    """The torch module of a Simulation (or its Plan). 'stepwise' runs any description step by step;
    'layered' computes each population's input for all steps at once (fast training of feed-forward
    networks; `options` are LayeredNetwork's); 'auto' takes 'layered' where the description allows it and
    'stepwise' otherwise. The module's `strategy_note` says which, and why. `compile=True` is an option of
    both. `learn`: what learns, by name (bridge/learn.py), in the step-by-step module (the layered module's
    parameters are its synaptic values and delays)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r}; allowed: {STRATEGIES}")
    plan = lower(simulation)
    why_not = "; ".join(map(str, layered.refusals(plan))) if strategy != "stepwise" else "as asked"
    if learn is not None:
        why_not = why_not if strategy == "stepwise" else "learn= is the step-by-step module's"
        options["learn"] = learn
    if strategy == "layered" and why_not:
        raise DescriptionError("strategy 'layered'", why_not)
    if strategy == "stepwise" or why_not:
        layered_only = sorted(set(options) - {"compile", "learn", "delay_gradient", "starts"})
        if layered_only:
            raise ValueError(f"options {layered_only} are the layered module's; this description runs step by "
                             f"step ({why_not})")
        module = StepwiseNetwork(plan, dtype, device, **options)
        module.strategy_note = f"step by step: {why_not}"
    else:
        module = LayeredNetwork(plan, dtype, device, **options)
        module.strategy_note = "layered: feed-forward, static delays, additive synapses"
    return module


def run(simulation, dtype=None, device=None, progress=False):
    """Run a Simulation (or its Plan) once step by step (batch 1, no gradients) and return the common Record."""
    module = compile(simulation, "stepwise", dtype, device)
    with torch.no_grad():
        return module(progress=progress).record()
