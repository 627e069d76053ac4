"""The interface every torch module compiled from a description has (torch_models.compile).

forward(inputs=None, currents=None, batch_size=None, record=None) -> TorchRun: spikes, recorded traces and
threshold margins as (batch, steps, neurons) tensors; `inputs` maps spike sources and `currents` current
injections to (batch, steps, n) tensors (default: the description's, the same for every batch element).
Every synaptic variable is an nn.Parameter, named `projections.<projection>.values.<variable>`
(`parameter(projection, variable)`); learnable delays (in steps) are `projections.<projection>.delays.steps`
(`learnable_delays()`). `values(projection, variable)` and `delays_in_force(projection)` give their values in
the description's layout, and `to_simulation()` writes them back into a description.
"""
import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bridge.description import check_dtype
from bridge.errors import DescriptionError
from bridge.learn import learnable_form, learned
from bridge.memory import refuse_beyond, system_available_bytes
from bridge.plan import lower
from bridge.record import Record


@dataclass
class TorchRun:
    """Outputs of one forward pass: tensors (batch, steps, neurons). Spikes (and custom events recorded) are
    floats where they carry a gradient (the surrogate's), booleans otherwise: a quarter of float32's memory."""
    spikes: dict
    traces: dict
    margins: dict
    dt: float

    def __post_init__(self):
        self.spikes = {name: spikes if spikes.requires_grad else spikes.bool() for name, spikes in self.spikes.items()}

    def record(self, batch_index=0):
        """The common record of one batch element (SI units)."""
        spikes = {}
        for name, tensor in self.spikes.items():
            steps, neurons = np.nonzero(tensor[batch_index].detach().cpu().numpy() > 0)
            spikes[name] = (neurons.astype(np.int64), steps.astype(np.int64))
        to_numpy = lambda d: {k: v[batch_index].detach().cpu().double().numpy() for k, v in d.items()}
        n_steps = next(iter(self.spikes.values())).shape[1]
        return Record("torch", self.dt, n_steps, spikes, to_numpy(self.traces), to_numpy(self.margins))


def recorded(values, recording):
    """Values (..., n) reduced to the elements a Recording selects."""
    if recording.indices is None:
        return values
    return values[..., torch.as_tensor(recording.indices, device=values.device)]


def check_given(given, sizes, field, batch, n_steps):
    """forward()'s tensors by name: known names, shapes (batch, steps, n)."""
    for name, tensor in given.items():
        if name not in sizes:
            raise ValueError(f"forward({field}=...): unknown name {name!r}; allowed: {sorted(sizes)}")
        if tuple(tensor.shape) != (batch, n_steps, sizes[name]):
            raise ValueError(f"forward({field}=...)[{name!r}]: shape {tuple(tensor.shape)}; expected "
                             f"(batch, steps, n) = {(batch, n_steps, sizes[name])}")


class SimulationModule(nn.Module):
    """What the step-by-step and the layered modules share: the plan, the description's inputs as buffers,
    checking of forward()'s arguments, access to synaptic values and delays, and the way back to a description.
    Subclasses hold `projections`, an nn.ModuleDict by projection name whose entries have `values`, and what
    learns by name in `learning` (torch_models/learning.py; None when nothing is named)."""

    def __init__(self, simulation, dtype=None, learn=None):
        """`learn`: what learns (bridge/learn.py); the module then runs the description's learnable form."""
        super().__init__()
        self.plan = lower(simulation)
        self.learned = learned(self.plan.simulation, learn) if learn is not None else ()
        if self.learned:
            self.plan = lower(learnable_form(self.plan.simulation, self.learned))
        self.simulation = self.plan.simulation
        self.learning = None
        check_dtype(dtype or self.plan.dtype, "dtype")
        self.dtype = getattr(torch, dtype or self.plan.dtype)
        self.element_bytes = torch.empty(0, dtype=self.dtype).element_size()
        self.dt, self.n_steps = self.plan.dt, self.plan.n_steps
        for name, source in self.plan.sources.items():
            self.register_buffer(f"input_{name}", torch.as_tensor(source.raster(self.n_steps), dtype=self.dtype))
        for name, current in self.plan.currents.items():
            self.register_buffer(f"current_{name}", torch.as_tensor(current.values, dtype=self.dtype))
        for name, poisson in self.plan.poisson_inputs.items():
            self.register_buffer(f"poisson_{name}", torch.as_tensor(poisson.increments(), dtype=self.dtype))

    @property
    def device(self):
        return next(itertools.chain(self.parameters(), self.buffers()), torch.zeros(0)).device

    def given(self, inputs, currents, batch_size):
        """(batch, inputs, currents) for forward(): the tensors given, checked, and the description's input
        for every source and current injection not given."""
        plan, inputs, currents = self.plan, dict(inputs or {}), dict(currents or {})
        given = [*inputs.values(), *currents.values()]
        batch = batch_size or (given[0].shape[0] if given else 1)
        check_given(inputs, {name: s.n for name, s in plan.sources.items()}, "inputs", batch, self.n_steps)
        check_given(currents, {name: plan.size(c.target) for name, c in plan.currents.items()}, "currents", batch,
                    self.n_steps)
        for name in plan.sources:
            inputs.setdefault(name, getattr(self, f"input_{name}").expand(batch, -1, -1))
        for name in plan.currents:
            currents.setdefault(name, getattr(self, f"current_{name}").expand(batch, -1, -1))
        return batch, inputs, currents

    def records(self, record):
        """{record key: Recording} to record: the description's, or those of the keys `record`."""
        if record is None:
            return self.plan.records
        return {key: self.plan.simulation.recording(key, "record") for key in record}

    def parameter(self, projection, variable):
        """A synaptic variable's nn.Parameter: one value per synapse (row-major (source, target) when dense)."""
        return self.projections[projection].values[variable]

    def values(self, projection, variable):
        """A synaptic variable's values now (numpy, float64), in the description's layout: (n_source, n_target)
        for a dense projection, one per synapse otherwise."""
        values = self.parameter(projection, variable).detach().cpu().double().numpy()
        return self.plan.projections[projection].in_layout(values)

    def learnable_delays(self):
        """{projection: nn.Parameter of its delays in steps} of the projections whose delays learn."""
        return {}

    def delays_in_force(self, projection):
        """Every synapse's delay in whole steps (numpy), in the description's layout."""
        proj = self.plan.projections[projection]
        return proj.in_layout(proj.delay_steps)

    def to_simulation(self):
        """The description with this module's synaptic values and learned delays (whole steps of dt)."""
        learned, projections = self.learnable_delays(), []
        for proj in self.simulation.network.projections:
            values = {name: self.values(proj.name, name) for name in proj.values}
            changes = {"delays": self.delays_in_force(proj.name) * self.dt} if proj.name in learned else {}
            projections.append(dataclasses.replace(proj, values={**proj.values, **values}, **changes))
        network = dataclasses.replace(self.simulation.network, projections=tuple(projections))
        return dataclasses.replace(self.simulation, network=network)


def available_bytes(device):
    """Memory free for a run on `device`: the GPU's free memory, else the system's."""
    return torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else system_available_bytes()


def check_memory(parts, device):
    """Refuse, before any work, a run whose estimated memory {part of the description: bytes} will not fit."""
    refuse_beyond(parts, available_bytes(device), device)


class BackwardMemory:
    """The tensors autograd saves for the backward pass of a run with gradients, measured as it goes (bytes of
    distinct storages, `saved_bytes`); after its first PROBE_STEPS steps, the run is refused when those bytes,
    extrapolated to the steps whose tensors the backward pass keeps, will not fit (so a long run fails in
    seconds, with the bytes it needs). With `recompute_every` = k, the steps after the probe's run in stretches
    of at least k recomputed in the backward pass: it keeps the longest stretch's tensors, and per stretch one
    step's and a copy of the state the steps write in place (`copied_bytes`: the deliveries' buffers)."""
    PROBE_STEPS = 4

    def __init__(self, n_steps, device, recompute_every=None, copied_bytes=0):
        if recompute_every is not None and (isinstance(recompute_every, bool) or
                                            not isinstance(recompute_every, int) or recompute_every < 1):
            raise DescriptionError("recompute_every", f"{recompute_every!r}; give a number of steps >= 1")
        self.n_steps, self.device, self.storages, self.saved_bytes = n_steps, device, set(), 0
        self.hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor) \
            if torch.is_grad_enabled() else None
        self.every = recompute_every if self.hooks else None
        self.copied_bytes = copied_bytes

    def __enter__(self):
        if self.hooks:
            self.hooks.__enter__()
        return self

    def __exit__(self, *exception):
        if self.hooks:
            self.hooks.__exit__(*exception)

    def _pack(self, tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self.storages:
            self.storages.add(storage.data_ptr())
            self.saved_bytes += storage.nbytes()
        return tensor

    def stretches(self, parts):
        """(first step, last step + 1, recomputed) of the run: with gradients, the probe's steps one by one first;
        then each of the `parts(first)` ((first step, steps) of what runs at once, from step `first` on), or with
        recompute_every, the parts gathered into stretches of at least that many steps, recomputed in the backward
        pass."""
        stretches = [(n, n + 1, False) for n in range(min(self.PROBE_STEPS, self.n_steps) if self.hooks else 0)]
        for first, steps in parts(len(stretches)):
            if self.every and stretches and stretches[-1][2] and stretches[-1][1] - stretches[-1][0] < self.every:
                stretches[-1] = (stretches[-1][0], first + steps, True)
            else:
                stretches.append((first, first + steps, bool(self.every)))
        self.recomputed = [last - first for first, last, recomputed in stretches if recomputed]  # their lengths
        return stretches

    def done(self, steps):
        """After the first `steps` steps: the check, once the probe's steps are done."""
        if not self.hooks or steps != min(self.PROBE_STEPS, self.n_steps):
            return
        if not self.every:
            needed = {"the backward pass (tensors saved at every step)": self.saved_bytes * self.n_steps // steps}
        else:
            stretches, longest = len(self.recomputed), max(self.recomputed, default=0)
            needed = {f"the backward pass (recomputing stretches of {self.every} steps)":
                      self.saved_bytes * (longest + stretches) // steps + self.copied_bytes * stretches}
        check_memory(needed, self.device)
