"""The description of a spiking model, written once and compiled by both backends.

Validated dataclasses, JSON round trip through a registry keyed by type name. Quantities are strings in
Brian2's notation ("10*ms"); arrays (weights, delays, spike times, current values) are SI floats.
"""
import json
import math
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import NamedTuple

import numpy as np

from bridge import brian_parse, checks
from bridge.constructs.poisson_input import PoissonInput  # noqa: F401 (a description type)
from bridge.constructs.run_changes import Change
from bridge.delays import DELAY_MODES, DELAY_OVERFLOW, DelayRule, round_steps
from bridge.errors import DescriptionError
from bridge.fields import (REGISTRY, check_integer, check_name, finite_array, frozen, neuron_range, probability,
                           register, set_field)
from bridge.names import delay_owner, record_key, record_parts, selected_indices
from bridge.quantities import parse_quantity, si_value, time_value, whole_steps
from bridge.timed_array import TimedArray
from bridge.user_function import UserFunction

# Brian2's default schedule; the only order both backends execute (see Timing).
BRIAN_SCHEDULE = ("start", "groups", "thresholds", "synapses", "resets", "end")
DELAY_ROUNDING = ("half_up", "exact_steps")
DTYPES = ("float64", "float32")


def _check_parameters(parameters, where):
    """Parameters are quantity strings, TimedArrays or UserFunctions."""
    for name, value in parameters.items():
        if not isinstance(value, (TimedArray, UserFunction)):
            parse_quantity(value, f"{where}.parameters[{name!r}]")


@register
@dataclass(frozen=True)
class NeuronModel:
    """A neuron model in Brian2 syntax: `equations` with units and flags, `threshold` condition, `reset`
    statements, `refractory` as Brian2's: a period (a quantity, or an expression in time units such as a
    parameter's name) or a condition (refractory while it holds, e.g. "v > -40*mV"), "" for none; named scalar
    `parameters`
    (quantity strings) and the integration `method` (a Brian2 state updater: exact, euler, rk2, rk4, ...).
    Custom events as Brian2's `events=`: `events` {name: condition}, checked after the threshold (the
    'after_thresholds' slot) and never held by refractoriness; `run_on_event` {event: statements} run for the
    neurons with that event in the 'after_resets' slot (Brian2's run_on_event default)."""
    equations: str
    threshold: str = ""
    reset: str = ""
    refractory: str = ""
    parameters: dict = field(default_factory=dict)
    method: str = "exact"
    events: dict = field(default_factory=dict)
    run_on_event: dict = field(default_factory=dict)

    def __post_init__(self):
        _check_parameters(self.parameters, "NeuronModel")
        if self.reset and not self.threshold:
            raise DescriptionError("NeuronModel.reset", "a reset needs a threshold (no spikes would trigger it)")
        if self.refractory and not isinstance(brian_parse.refractory(self.refractory), str):  # a quantity
            if time_value(self.refractory, "NeuronModel.refractory") < 0:
                raise DescriptionError("NeuronModel.refractory", f"{self.refractory!r} is negative; give >= 0*ms")
        for event in self.events:
            check_name(event, "NeuronModel.events")
            if event == "spike":
                raise DescriptionError("NeuronModel.events", "'spike' is the threshold's event; give `threshold`")
        unknown = set(self.run_on_event) - set(self.events)
        if unknown:
            raise DescriptionError("NeuronModel.run_on_event", f"events {sorted(unknown)} are not in `events` "
                                                               f"{sorted(self.events)}")
        checks.check_method(self.method, "NeuronModel.method")
        checks.check_neuron_model(self)


@register
@dataclass(frozen=True)
class SynapseModel:
    """Synaptic event code in Brian2 syntax: `model` declares per-synapse variables (e.g. "w : volt") and
    equations ((clock-driven), (event-driven), (summed)), `on_pre` / `on_post` run when a (delayed)
    presynaptic / a postsynaptic spike arrives; `method` integrates clock-driven equations ("": Brian2's
    default choice). Several pathways as in Brian2: `on_pre` / `on_post` may map pathway names to code (a
    string is the pathway 'pre' / 'post'), and `on_event` {pathway: event} triggers a pathway on a custom
    event of its neurons instead of their spikes."""
    model: str = ""
    on_pre: object = ""
    on_post: object = ""
    parameters: dict = field(default_factory=dict)
    method: str = ""
    on_event: dict = field(default_factory=dict)

    def __post_init__(self):
        _check_parameters(self.parameters, "SynapseModel")
        checks.check_method(self.method, "SynapseModel.method", default_allowed=True)
        checks.check_equations(self.model, "SynapseModel.model")
        pre, post = (_pathway_codes(getattr(self, f"on_{side}"), side) for side in ("pre", "post"))
        for name in pre.keys() | post.keys():
            check_name(name, "SynapseModel pathway")
        if pre.keys() & post.keys():
            raise DescriptionError("SynapseModel.on_post", f"pathways {sorted(pre.keys() & post.keys())} are also "
                                                           "in on_pre; every pathway needs its own name")
        unknown = set(self.on_event) - pre.keys() - post.keys()
        if unknown:
            raise DescriptionError("SynapseModel.on_event", f"unknown pathways {sorted(unknown)}; pathways: "
                                                            f"{sorted(pre.keys() | post.keys())}")

    def pathways(self):
        """{name: (side 'pre' | 'post', code, event)} of every pathway, in Brian2's naming."""
        return {name: (side, code, self.on_event.get(name, "spike"))
                for side in ("pre", "post") for name, code in _pathway_codes(getattr(self, f"on_{side}"), side).items()}


def _pathway_codes(code, side):
    """{pathway name: code} of an on_pre / on_post field: a string is the pathway named `side`."""
    if isinstance(code, dict):
        return dict(code)
    return {side: code} if code else {}


@register
@dataclass(frozen=True)
class Population:
    """`n` neurons of one model; `initial` maps variables to a quantity string or n SI values; `links` maps each
    variable the model declares (linked) to the "population.variable" it reads (Brian2's linked_var, neuron k
    reading neuron k of a population of the same size, or the one neuron of a population of one)."""
    name: str
    model: NeuronModel
    n: int
    initial: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)

    def __post_init__(self):
        check_name(self.name, "Population.name")
        check_integer(self.n, f"Population {self.name!r}.n", 1)
        set_field(self, "initial", {k: frozen(v) for k, v in self.initial.items()})
        checks.check_links(self.links, self.model.equations, self.initial, f"Population {self.name!r}.links")
        for var, value in self.initial.items():
            where = f"Population {self.name!r}.initial[{var!r}]"
            if isinstance(value, str):
                parse_quantity(value, where)
            elif np.ndim(value) != 1:
                raise DescriptionError(where, f"{value!r}: give a quantity string (e.g. '0*mV') or n = {self.n} "
                                              "SI values")
            elif len(finite_array(value, where)) != self.n:
                raise DescriptionError(where, f"has {len(value)} values; expected n = {self.n}")
        checks.check_initial_values(self)

    def initial_array(self, var):
        """The initial value of `var` for each of the n neurons, in SI units (0 when not given)."""
        value = self.initial.get(var, 0.0)
        value = si_value(value, f"Population {self.name!r}.initial[{var!r}]") if isinstance(value, str) else value
        return np.array(np.broadcast_to(np.asarray(value, dtype=float), (self.n,)))


@register
@dataclass(frozen=True)
class SpikeTrains:
    """Explicit spike trains: spike k of neuron `indices[k]` at `times[k]` seconds."""
    name: str
    n: int
    indices: tuple = ()
    times: tuple = ()

    def __post_init__(self):
        check_name(self.name, "SpikeTrains.name")
        check_integer(self.n, f"SpikeTrains {self.name!r}.n", 1)
        set_field(self, "indices", frozen(self.indices))
        set_field(self, "times", frozen(self.times))
        if len(self.indices) != len(self.times):
            raise DescriptionError(f"SpikeTrains {self.name!r}.times",
                                   f"{len(self.times)} times for {len(self.indices)} indices; lengths must match")
        times = finite_array(self.times, f"SpikeTrains {self.name!r}.times")
        if np.any(times < 0):
            raise DescriptionError(f"SpikeTrains {self.name!r}.times", "negative spike time; times must be >= 0")
        _indices(self.indices, self.n, f"SpikeTrains {self.name!r}.indices")

    def spike_steps(self, dt, n_steps):
        """(indices, steps) with Brian2's SpikeGeneratorGroup rule: step = int((t + 1e-3*dt)/dt); every spike
        must fall within the run's `n_steps`."""
        where = f"SpikeTrains {self.name!r}.times"
        steps = spike_step(self.times, dt)
        indices = _indices(self.indices, self.n, f"SpikeTrains {self.name!r}.indices")
        if len(steps) and steps.max() >= n_steps:
            raise DescriptionError(where, f"a spike at {max(self.times)!r} s falls at or after the end of the run "
                                          f"({n_steps} steps of {dt} s); remove it or lengthen the run")
        if len(np.unique(np.stack([indices, steps], axis=1), axis=0)) != len(steps):
            raise DescriptionError(where, f"two spikes of one neuron fall in the same time step of dt = {dt} s")
        return indices, steps


@register
@dataclass(frozen=True)
class PoissonTrains:
    """Independent Poisson trains at `rate`, drawn once per run from `seed` (one Bernoulli(rate*dt) per
    step and neuron), so that both backends receive identical spikes. `rate`: a quantity string, or a
    TimedArray in Hz (Brian2's PoissonGroup(rates='r(t)') or 'r(t, i)'), read at each step's start."""
    name: str
    n: int
    rate: object
    seed: int = 0

    def __post_init__(self):
        check_name(self.name, "PoissonTrains.name")
        check_integer(self.n, f"PoissonTrains {self.name!r}.n", 1)
        check_integer(self.seed, f"PoissonTrains {self.name!r}.seed", 0)
        if not isinstance(self.rate, TimedArray):
            probability(self.rate, 0.0, f"PoissonTrains {self.name!r}.rate")
        elif parse_quantity(self.rate.unit, "unit").dim != parse_quantity("1*Hz", "").dim or \
                np.min(self.rate.values) < 0 or np.ndim(self.rate.values) == 2 and \
                np.shape(self.rate.values)[1] != self.n:
            raise DescriptionError(f"PoissonTrains {self.name!r}.rate", "a TimedArray of rates >= 0 in Hz, one "
                                                                        f"column or {self.n}")

    def rates(self, dt, n_steps):
        """The rate (Hz) at each step's start, (n_steps, 1 or n): a TimedArray's row by Brian2's lookup."""
        if not isinstance(self.rate, TimedArray):
            return np.full((n_steps, 1), si_value(self.rate, f"PoissonTrains {self.name!r}.rate"))
        values = np.asarray(self.rate.values, dtype=float)
        rows = values[self.rate.rows(np.arange(n_steps) * dt, dt)]
        return rows.reshape(n_steps, -1)

    def spike_steps(self, dt, n_steps):
        p = self.rates(dt, n_steps) * dt
        if np.max(p, initial=0) > 1:
            raise DescriptionError(f"PoissonTrains {self.name!r}.rate", f"rate*dt = {np.max(p)} > 1: more than "
                                                                        "one spike per step")
        indices, steps = poisson_spikes(self.n, p, n_steps, self.seed)
        return indices.astype(np.int64), steps.astype(np.int64)


def spike_step(times, dt):
    """Brian2's SpikeGeneratorGroup rule: a spike at time t (seconds) falls in step int((t + 1e-3*dt)/dt)."""
    return ((np.asarray(times, dtype=float) + 1e-3 * dt) / dt).astype(np.int64)


def poisson_spikes(n, p, n_steps, seed):
    """(neuron, step) of every spike where numpy's default_rng(seed) draws below p (a number, or per step:
    (n_steps, 1) or (n_steps, n)), per step and neuron."""
    steps, indices = np.nonzero(np.random.default_rng(seed).random((n_steps, n)) < p)
    return indices, steps


@register
@dataclass(frozen=True)
class CurrentInjection:
    """Sets the parameter `variable` of population `target` at the start of every step from `values`
    (SI floats, shape (n_steps, n), or one row of n values held for the whole run)."""
    name: str
    target: str
    variable: str
    values: tuple

    def __post_init__(self):
        check_name(self.name, "CurrentInjection.name")
        set_field(self, "values", frozen(self.values))
        values = finite_array(self.values, f"CurrentInjection {self.name!r}.values")
        if values.ndim != 2:
            raise DescriptionError(f"CurrentInjection {self.name!r}.values", "must be a 2-D array (steps, neurons)")

    def array(self, n_steps):
        values = np.asarray(self.values, dtype=float)
        return np.repeat(values, n_steps, axis=0) if len(values) == 1 else values


OPERATION_SLOTS = ("start", "end")


@register
@dataclass(frozen=True)
class Operation:
    """Brian2's run_regularly: the statements `code` run on neurons `start`..`stop`-1 of population `target`
    (stop None: to the last; `i` counts from `start`, as in a Brian2 subgroup) every `dt` ("": every step, else
    a whole number of steps), in the slot `when`: 'start' (before the state is recorded) or 'end' (after the
    resets), operations of one slot in name order. Writes to variables marked (unless refractory) are held
    while refractory. rand() and randn() in the code are drawn once per run from RunSettings.noise_seed
    (bridge/plan.py), the same numbers for both backends."""
    name: str
    target: str
    code: str
    dt: str = ""
    when: str = "start"
    start: int = 0
    stop: object = None

    def __post_init__(self):
        check_name(self.name, "Operation.name")
        where = f"Operation {self.name!r}"
        if self.when not in OPERATION_SLOTS:
            raise DescriptionError(f"{where}.when", f"{self.when!r}; allowed: {OPERATION_SLOTS}")
        if self.dt:
            time_value(self.dt, f"{where}.dt", positive=True)

    def neurons(self, n):
        """(start, stop) of the neurons it runs on, in a population of n."""
        return neuron_range(self.start, self.stop, n, f"Operation {self.name!r}.stop")

    def period_steps(self, dt):
        """Steps between two runs of the code."""
        return whole_steps(self.dt, dt, f"Operation {self.name!r}.dt") if self.dt else 1


@register
@dataclass(frozen=True)
class Projection:
    """Synapses from `source` to `target` (populations or spike sources, or a projection listed before: synapses
    onto synapses, whose code reads and writes its synapses' variables as `x_pre` / `x_post`). Sparse: synapse k
    joins `i[k]` -> `j[k]` and `values` hold one SI value per synapse; dense (i and j empty): all pairs, `values`
    hold (n_source, n_target) matrices. A quantity string gives every synapse the same value. `links`: each
    variable the synapse model declares (linked) -> "population.variable" (Brian2's linked_var: synapse k reads
    neuron k of a population with one neuron per synapse, or the one neuron of a population of one).

    Delays apply to on_pre. `delay_mode` 'static': `delays` (seconds, one per synapse or a scalar
    quantity), within [0, max_delay]; with several pathways, {pathway: delays} (a pathway not named: 0).
    'between_runs' and 'dynamic': the delay of each synapse is the
    variable `delay_variable` (of unit second): a synaptic variable of the model, or a neuron variable
    `x_post` / `x_pre` of the target / source; event code may change it. 'between_runs' reads it at the start
    of each run segment, 'dynamic' whenever a spike is emitted (spikes in flight keep their delay).
    `delay_overflow` says what a delay outside [0, max_delay] does: 'error', 'clip', 'wrap' (modulo
    max_delay + dt) or 'reflect' (folded back at both ends), applied to the rounded steps (bridge/delays.py)."""
    name: str
    source: str
    target: str
    synapse: SynapseModel
    i: tuple = ()
    j: tuple = ()
    values: dict = field(default_factory=dict)
    delays: object = "0*ms"
    max_delay: str = "20*ms"
    delay_mode: str = "static"
    delay_variable: str = ""
    delay_overflow: str = "error"
    links: dict = field(default_factory=dict)

    def __post_init__(self):
        check_name(self.name, "Projection.name")
        checks.check_links(self.links, self.synapse.model, self.values, f"Projection {self.name!r}.links")
        # a sparse projection's (i, j) as int64 arrays, converted once; the fields hold them as tuples
        set_field(self, "index_arrays", tuple(_whole_numbers(getattr(self, attr), f"Projection {self.name!r}.{attr}")
                                              for attr in ("i", "j")))
        for attr, array in zip(("i", "j"), self.index_arrays):
            set_field(self, attr, frozen(array))
        delays = self.delays
        set_field(self, "delays", {k: frozen(v) for k, v in delays.items()} if isinstance(delays, dict)
             else frozen(delays))
        set_field(self, "values", {k: frozen(v) for k, v in self.values.items()})
        if len(self.i) != len(self.j):
            raise DescriptionError(f"Projection {self.name!r}.j", f"{len(self.j)} targets for {len(self.i)} sources")
        self._check_delay_fields()
        max_delay = time_value(self.max_delay, f"Projection {self.name!r}.max_delay")
        if max_delay < 0:
            raise DescriptionError(f"Projection {self.name!r}.max_delay", f"{self.max_delay!r} must be >= 0*ms")
        for pathway in self.synapse.pathways():
            delays, where = self.delay_array(1, pathway), f"Projection {self.name!r}.delays"
            if np.any(delays < 0):
                raise DescriptionError(where, f"negative delay {delays.min()} s; delays must lie in [0, max_delay]")
            if np.any(delays > max_delay):
                raise DescriptionError(where, f"delay {delays.max()} s exceeds max_delay = {self.max_delay}; "
                                              "delays must lie in [0, max_delay]")

    def _check_delay_fields(self):
        where = f"Projection {self.name!r}"
        if self.delay_mode not in DELAY_MODES:
            raise DescriptionError(f"{where}.delay_mode", f"{self.delay_mode!r}; allowed: {DELAY_MODES}")
        if self.delay_overflow not in DELAY_OVERFLOW:
            raise DescriptionError(f"{where}.delay_overflow", f"{self.delay_overflow!r}; allowed: {DELAY_OVERFLOW}")
        if self.delay_mode == "static" and self.delay_variable:
            raise DescriptionError(f"{where}.delay_variable", "static delays come from `delays`; a delay variable "
                                                              "needs delay_mode 'between_runs' or 'dynamic'")
        if self.delay_mode != "static":
            if not self.delay_variable:
                raise DescriptionError(f"{where}.delay_variable", f"delay_mode {self.delay_mode!r} needs the name "
                                                                  "of the variable that holds the delays")
            if self.delays != "0*ms":
                raise DescriptionError(f"{where}.delays", "with a delay variable, give the initial delays as the "
                                                          "variable's initial values, not in `delays`")
            if "pre" not in self.synapse.pathways():
                raise DescriptionError(f"{where}.delay_variable", "a delay variable sets the delays of the pathway "
                                                                  "'pre'; the synapse model has none")
        pathways = self.synapse.pathways()
        named = set(self.delays) if isinstance(self.delays, dict) else {"pre"} if np.any(self.delay_array(1)) else set()
        if named - set(pathways):
            raise DescriptionError(f"{where}.delays", f"delays for pathways {sorted(named - set(pathways))}; "
                                                      f"pathways: {sorted(pathways)}")

    @property
    def dense(self):
        return len(self.i) == 0

    def value_array(self, name, n_synapses):
        value = self.values[name]
        if isinstance(value, str):
            return np.full(n_synapses, si_value(value, f"Projection {self.name!r}.values[{name!r}]"))
        return np.asarray(value, dtype=float).reshape(-1)

    def synapses(self, n_source, n_target):
        """(i, j) of every synapse; a dense projection connects all pairs in row-major order."""
        if self.dense:
            return np.divmod(np.arange(n_source * n_target), n_target)
        return self.index_arrays

    def initial_delays(self, populations, pathway="pre", i=None, j=None):
        """Every synapse's delay in seconds at the start of the run on `pathway`: from `delays`, or from the delay
        variable's initial values (of the synapses, or of their target / source neurons among `populations`
        {name: Population or PopulationPlan}). With i and j None (a dense projection checked without building
        its synapses): the values that stand for all synapses."""
        n_synapses = 1 if i is None else len(i)
        if not self.delay_variable or pathway != "pre":
            return self.delay_array(n_synapses, pathway)
        side, variable = delay_owner(self.delay_variable)
        if side == "synapse":
            return self.value_array(variable, n_synapses)
        values = populations[self.target if side == "target" else self.source].initial_array(variable)
        return values if i is None else values[j if side == "target" else i]

    def delay_array(self, n_synapses, pathway="pre"):
        """The pathway's delays (seconds), one per synapse."""
        delays = self.delays if pathway == "pre" else "0*ms"
        if isinstance(self.delays, dict):
            delays = self.delays.get(pathway, "0*ms")
        where = f"Projection {self.name!r}.delays" + (f"[{pathway!r}]" if isinstance(self.delays, dict) else "")
        if isinstance(delays, str):
            return np.full(n_synapses, time_value(delays, where))
        return finite_array(delays, where).reshape(-1)


@register
@dataclass(frozen=True)
class Network:
    """Populations of neurons, spike sources, current injections, projections between them, Poisson inputs and
    operations (run_regularly)."""
    populations: tuple = ()
    sources: tuple = ()
    currents: tuple = ()
    projections: tuple = ()
    poisson_inputs: tuple = ()
    operations: tuple = ()

    def __post_init__(self):
        elements = {"populations": (Population,), "sources": (SpikeTrains, PoissonTrains),
                    "currents": (CurrentInjection,), "projections": (Projection,), "poisson_inputs": (PoissonInput,),
                    "operations": (Operation,)}
        for attr, kinds in elements.items():
            set_field(self, attr, tuple(getattr(self, attr)))
            for element in getattr(self, attr):
                if not isinstance(element, kinds):
                    raise DescriptionError(f"Network.{attr}", f"{str(element)[:60]} is not a "
                                                              f"{' or '.join(k.__name__ for k in kinds)} object "
                                                              "(each needs its \"type\")")
        names = [x.name for x in self.populations + self.sources + self.currents + self.projections +
                 self.poisson_inputs + self.operations]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise DescriptionError("Network", f"duplicate names {duplicates}; every element needs its own name")
        monitors = {brian_parse.monitor_name(kind, p.name) for p in self.populations for kind in
                    brian_parse.MONITOR_KINDS} | {brian_parse.event_monitor_name(p.name, event)
                                                  for p in self.populations for event in p.model.events}
        if set(names) & monitors:
            raise DescriptionError("Network", f"names {sorted(set(names) & monitors)} are those of spikebridge's own "
                                              "Brian2 monitors (spikes_<population>, state_<population>, "
                                              "events_<population>_<event>); choose other names")
        for current in self.currents:
            checks.check_current(current, self._population(current.target, f"CurrentInjection {current.name!r}.target"))
        for population in self.populations:
            self._check_links(population, "Population", checks.variable_dims(population.model), population.n)
        for proj in self.projections:
            self._check_projection(proj)
            if proj.links:
                dims = brian_parse.equations(proj.synapse.model)
                self._check_links(proj, "Projection", {name: dims[name].dim for name in proj.links},
                                  self.width(proj.name))
        for poisson in self.poisson_inputs:
            poisson.check(self._population(poisson.target, f"PoissonInput {poisson.name!r}.target"))
        for operation in self.operations:
            population = self._population(operation.target, f"Operation {operation.name!r}.target")
            operation.neurons(population.n)
            checks.check_operation(operation, population)

    def _population(self, name, where, sources_allowed=False):
        pool = self.populations + (self.sources if sources_allowed else ())
        for element in pool:
            if element.name == name:
                return element
        raise DescriptionError(where, f"unknown name {name!r}; known: {[p.name for p in pool]}")

    def size(self, name):
        return self._population(name, "name", sources_allowed=True).n

    def width(self, owner):
        """The elements of a population or source, or the synapses of a projection."""
        proj = next((p for p in self.projections if p.name == owner), None)
        if proj is None:
            return self.size(owner)
        return self.width(proj.source) * self.width(proj.target) if proj.dense else len(proj.i)

    def _endpoint(self, proj, side):
        """A projection's source or target: a population or a spike source (as target, its spikes trigger
        on_post), or a projection listed before it (synapses onto synapses: its synapses are the elements, read and
        written by the code of this one, but never emit events)."""
        name, where = getattr(proj, side), f"Projection {proj.name!r}.{side}"
        earlier = self.projections[:self.projections.index(proj)]
        synapses = next((p for p in earlier if p.name == name), None)
        if synapses is None:
            if name in {p.name for p in self.projections}:
                raise DescriptionError(where, f"the projection {name!r} is listed after {proj.name!r}; list a "
                                              "projection before those that connect to its synapses")
            return self._population(name, where, sources_allowed=True)
        triggered = {"source": "pre", "target": "post"}[side]
        pathways = [pathway for pathway, (on, _, _) in proj.synapse.pathways().items() if on == triggered]
        if pathways:
            raise DescriptionError(where, f"the projection {name!r} emits no events for the pathways {pathways}; "
                                          "synapses onto synapses read and write them by code and summed variables")
        return synapses

    def _check_links(self, element, kind, variable_dims, n):
        """Each link of a population or projection (`kind`; `n` neurons or synapses, its variables' dimensions
        `variable_dims`) reads a variable of a population of n neurons (element k reads neuron k) or of one, in
        the linked variable's units."""
        for variable, link in element.links.items():
            where = f"{kind} {element.name!r}.links[{variable!r}]"
            owner, name = record_key(link)
            source = self._population(owner, where)
            dims = checks.variable_dims(source.model)
            if name not in dims or source.n not in (1, n):
                raise DescriptionError(where, f"{link!r}: give 'population.variable' of a population of {n} "
                                              f"neurons or of one")
            if dims[name] != variable_dims[variable]:
                raise DescriptionError(where, f"{link!r} is in {dims[name]}; {variable} is in "
                                              f"{variable_dims[variable]}")

    def _check_projection(self, proj):
        source, target = self._endpoint(proj, "source"), self._endpoint(proj, "target")
        n_source, n_target = self.width(proj.source), self.width(proj.target)
        if not proj.dense:
            for attr, indices, n in zip(("i", "j"), proj.index_arrays, (n_source, n_target)):
                _check_range(indices, n, f"Projection {proj.name!r}.{attr}")
        n_synapses = len(proj.i) if not proj.dense else n_source * n_target
        expected = (n_synapses,) if not proj.dense else (n_source, n_target)
        for name, value in proj.values.items():
            where = f"Projection {proj.name!r}.values[{name!r}]"
            if isinstance(value, str):
                continue
            shape = finite_array(value, where).shape
            if shape != expected:
                raise DescriptionError(where, f"shape {shape}; expected {expected} "
                                              f"({'n_source x n_target' if proj.dense else 'one per synapse'})")
        delays = proj.delays if isinstance(proj.delays, dict) else {"pre": proj.delays}
        for pathway, value in delays.items():
            where = f"Projection {proj.name!r}.delays"
            if not isinstance(value, str) and finite_array(value, where).shape != expected:
                raise DescriptionError(where, f"shape {np.shape(value)} (pathway {pathway!r}); expected {expected}")
        checks.check_projection(proj, source, target)
        if proj.delay_variable:
            checks.check_delay_variable(proj, source, target)


@register
@dataclass(frozen=True)
class Timing:
    """The timing conventions, explicit, with Brian2's defaults.

    dt: the shared time step. schedule: order within a step (only Brian2's default is executed): record
    state ('start'), state update with the refractory check ('groups'), thresholds, synapses (each pathway
    pushes this step's spikes, then delivers the current slot; pre pathways before post), resets ('resets').
    A spike emitted at step n with a delay of k steps is delivered in the synapses slot of step n + k.
    delay_rounding: 'half_up' is Brian2's int(d/dt + 0.5); 'exact_steps' demands delays be whole steps.
    Spike times go to step int((t + 1e-3*dt)/dt); refractoriness ends when
    timestep(t - lastspike) >= timestep(refractory); state is recorded at the start of a step."""
    dt: str = "0.1*ms"
    schedule: tuple = BRIAN_SCHEDULE
    delay_rounding: str = "half_up"

    def __post_init__(self):
        set_field(self, "schedule", tuple(self.schedule))
        time_value(self.dt, "Timing.dt", positive=True)
        if self.schedule != BRIAN_SCHEDULE:
            raise DescriptionError("Timing.schedule", f"{self.schedule} is not supported; allowed: {BRIAN_SCHEDULE}")
        if self.delay_rounding not in DELAY_ROUNDING:
            raise DescriptionError("Timing.delay_rounding", f"{self.delay_rounding!r}; allowed: {DELAY_ROUNDING}")

    @property
    def dt_seconds(self):
        return si_value(self.dt, "Timing.dt")

    def delay_rule(self, proj):
        """A projection's DelayRule under this Timing: dt, max_delay in steps, rounding and overflow rules."""
        where = f"Projection {proj.name!r}"
        max_delay = si_value(proj.max_delay, f"{where}.max_delay")
        max_steps = int(self.delay_steps(max_delay, f"{where}.max_delay"))
        field_name = "delay_variable" if proj.delay_variable else "delays"
        return DelayRule(f"{where}.{field_name}", self.dt_seconds, max_steps, self.delay_rounding, proj.delay_overflow)

    def delay_steps(self, delays, where="delays"):
        """Delays (seconds) in whole steps by the declared rule."""
        ratio = np.asarray(delays, dtype=np.float64) / self.dt_seconds
        return round_steps(ratio, self.delay_rounding, where).astype(np.int64)


class Recording(NamedTuple):
    """What a record key asks for: `variable` of `owner` (a population or a projection) at the elements
    `indices` (None: all of them), at the start of every `every`-th step from step 0."""
    owner: str
    variable: str
    indices: object
    every: int

    def rows(self, n_steps):
        return -(-n_steps // self.every)

    def due(self, n):
        """Whether step n is recorded."""
        return not n % self.every

    def width(self, n):
        return n if self.indices is None else len(self.indices)


@register
@dataclass(frozen=True)
class RunSettings:
    """How long to run, in which float type, and what to record: "owner.variable" records a variable of every
    element at the start of each step, "owner.variable[0, 5, 10:20] every 1*ms" of the elements selected (indices,
    or Python slices of them) every 1 ms (whole steps), as Brian2's StateMonitor(record=..., dt=...). The run is made
    of `segments`, Brian2 run() calls: a number of equal runs, or the duration of each (whole steps, adding up to
    `duration`); 'between_runs' delays are read at the start of each, and `changes` (Change: values set between
    runs, bridge/constructs/run_changes.py) are made as the segment they name starts.
    White noise (`xi` in equations) and rand() / randn() in thresholds, resets and operations are drawn once per
    run from `noise_seed` (bridge/plan.py), the same for both backends. Spikes are always recorded; `events`
    "population.event" records a custom event of a population as well (Brian2's EventMonitor)."""
    duration: str
    dtype: str = "float64"
    record: tuple = ()
    timing: Timing = field(default_factory=Timing)
    segments: object = 1
    noise_seed: int = 0
    changes: tuple = ()
    events: tuple = ()

    def __post_init__(self):
        set_field(self, "record", tuple(self.record))
        set_field(self, "events", tuple(self.events))
        for key in self.record:
            check_record_key(key, "RunSettings.record")
        time_value(self.duration, "RunSettings.duration", positive=True)
        check_dtype(self.dtype, "RunSettings.dtype")
        check_integer(self.noise_seed, "RunSettings.noise_seed", 0)
        if self.n_steps < 1:
            raise DescriptionError("RunSettings.duration", f"{self.duration!r} is shorter than one step of dt = "
                                                           f"{self.timing.dt}")
        set_field(self, "changes", tuple(self.changes))
        for change in self.changes:
            if not isinstance(change, Change):
                raise DescriptionError("RunSettings.changes", f"{change!r} is not a Change object")
        if isinstance(self.segments, (list, tuple)):
            set_field(self, "segments", tuple(self.segments))
            if sum(self.segment_lengths) != self.n_steps:
                raise DescriptionError("RunSettings.segments", f"{self.segments} add up to "
                                       f"{sum(self.segment_lengths)} steps; the run has {self.n_steps}")
            return
        check_integer(self.segments, "RunSettings.segments", 1)
        if self.n_steps % self.segments:
            raise DescriptionError("RunSettings.segments", f"{self.segments} segments do not divide the run's "
                                                           f"{self.n_steps} steps; give a divisor")

    @property
    def n_steps(self):
        return int(round(si_value(self.duration, "duration") / self.timing.dt_seconds))

    @property
    def segment_lengths(self):
        """The steps of each run segment."""
        if isinstance(self.segments, tuple):
            return tuple(whole_steps(duration, self.timing.dt_seconds, f"RunSettings.segments[{k}]")
                         for k, duration in enumerate(self.segments))
        return (self.n_steps // self.segments,) * self.segments

    @property
    def segment_starts(self):
        """The first step of each run segment."""
        return tuple(np.cumsum((0,) + self.segment_lengths[:-1]).tolist())

    def recording(self, key, width, where="RunSettings.record"):
        """The Recording a record key asks for, of an owner with `width` elements."""
        where = f"{where}[{key!r}]"
        owner, variable, selection, period = record_parts(key)
        try:
            indices = selected_indices(selection, width) if selection else None
        except ValueError as error:
            raise DescriptionError(where, f"{error} (the owner has {width} elements)") from None
        every = whole_steps(period, self.timing.dt_seconds, where) if period else 1
        return Recording(owner, variable, indices, every)


@register
@dataclass(frozen=True)
class Simulation:
    """A network and how to run it: the unit a paired run feeds to both backends."""
    network: Network
    run: RunSettings

    def __post_init__(self):
        """Checks that hold on any machine (the memory a run needs is checked when it is lowered, bridge/plan.py)."""
        net = self.network
        populations = {p.name: p for p in net.populations}
        for proj in net.projections:  # delays in range under the declared rules (a dense projection's synapses
            # are not built for it: its delays are given for all of them)
            i, j = (None, None) if proj.dense else proj.synapses(net.width(proj.source), net.width(proj.target))
            for pathway in proj.synapse.pathways():
                self.run.timing.delay_rule(proj).steps(proj.initial_delays(populations, pathway, i, j))
        for key in self.run.record:
            self.recording(key)
        for key in self.run.events:
            population = net._population(record_key(key)[0], f"RunSettings.events[{key!r}]")
            if record_key(key)[1] not in population.model.events:
                raise DescriptionError(f"RunSettings.events[{key!r}]", f"{population.name!r} has the custom events "
                                                                       f"{sorted(population.model.events)}")
        for change in self.run.changes:
            change.check(net, len(self.run.segment_lengths))
        for operation in net.operations:
            operation.period_steps(self.dt)
        for source in net.sources:
            if isinstance(source, SpikeTrains):
                source.spike_steps(self.dt, self.run.n_steps)
        for current in net.currents:
            rows = len(current.values)
            if rows not in (1, self.run.n_steps):
                raise DescriptionError(f"CurrentInjection {current.name!r}.values",
                                       f"{rows} rows; need 1 or n_steps = {self.run.n_steps}")
            if len(current.values[0]) != net.size(current.target):
                raise DescriptionError(f"CurrentInjection {current.name!r}.values",
                                       f"{len(current.values[0])} columns; expected {net.size(current.target)}")

    @property
    def dt(self):
        return self.run.timing.dt_seconds

    def recording(self, key, where="RunSettings.record"):
        """The Recording of a record key, refused unless the network has what it names and can record it."""
        check_record_key(key, where)
        owner, var = record_key(key)
        net, named = self.network, f"{where}[{key!r}]"
        projections = {p.name: p for p in net.projections}
        if owner in projections:
            checks.check_recordable_synaptic(projections[owner], var, named)
        else:
            checks.check_recordable(net._population(owner, f"{named} (a population or projection)"), var, named)
        return self.run.recording(key, net.width(owner), where)

    def to_json(self, **kwargs):
        return to_json(self, **kwargs)


def check_record_key(key, where):
    if not isinstance(key, str) or not record_parts(key)[0]:
        raise DescriptionError(f"{where}[{key!r}]", "expected 'owner.variable', optionally followed by a selection "
                                                    "'[0, 5, 10:20]' and a period 'every 1*ms'")


def check_dtype(dtype, where):
    """A float type both backends run: float64 (the exact class) or float32."""
    if dtype not in DTYPES:
        raise DescriptionError(where, f"{dtype!r}; allowed: {list(DTYPES)}")


def _indices(values, n, where):
    """Neuron indices as int64, each a whole number in 0..n-1 (1.7 is refused, not truncated)."""
    values = _whole_numbers(values, where)
    _check_range(values, n, where)
    return values


def _whole_numbers(values, where):
    """Indices as int64, each a whole number (1.7 is refused, not truncated)."""
    values = np.asarray(values).reshape(-1)
    if not np.issubdtype(values.dtype, np.integer):
        values = finite_array(values, where)
        fractional = values[values != np.round(values)]
        if len(fractional):
            raise DescriptionError(where, f"{float(fractional[0])!r} is not a whole number; indices are integers")
    return values.astype(np.int64)


def _check_range(indices, n, where):
    if len(indices) and (indices.min() < 0 or indices.max() >= n):
        raise DescriptionError(where, f"index out of range 0..{n - 1}")


def encode(obj):
    if is_dataclass(obj):
        return {"type": type(obj).__name__, **{f.name: encode(getattr(obj, f.name)) for f in fields(obj)}}
    if isinstance(obj, (list, tuple)):
        return [encode(v) for v in obj]
    if isinstance(obj, dict):
        return {k: encode(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        raise DescriptionError("value", f"{obj} cannot be written to JSON")
    return obj


def decode(data):
    if isinstance(data, dict) and "type" in data:
        kind = data["type"]
        if kind not in REGISTRY:
            raise DescriptionError("type", f"unknown type {kind!r}; known: {sorted(REGISTRY)}")
        cls = REGISTRY[kind]
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known - {"type"}
        if unknown:
            raise DescriptionError(kind, f"unknown fields {sorted(unknown)}; allowed: {sorted(known)}")
        missing = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING} - set(data)
        if missing:
            raise DescriptionError(kind, f"missing required fields {sorted(missing)}")
        values = {k: decode(v) for k, v in data.items() if k != "type"}
        for f in fields(cls):  # a field that holds one object: an object of its type (a dict without "type" is not)
            if f.type in REGISTRY.values() and f.name in values and not isinstance(values[f.name], f.type):
                raise DescriptionError(f"{kind}.{f.name}", f"expected a {f.type.__name__} object "
                                                           f"({{\"type\": \"{f.type.__name__}\", ...}})")
        return cls(**values)
    if isinstance(data, list):
        return [decode(v) for v in data]
    if isinstance(data, dict):
        return {k: decode(v) for k, v in data.items()}
    return data


def to_json(obj, **kwargs):
    return json.dumps(encode(obj), **kwargs)


def from_json(text, expected=None):
    """The description a JSON text holds: a Simulation, or an object of the type `expected` names."""
    expected = expected or Simulation
    try:
        loaded = decode(json.loads(text))
    except RecursionError:
        raise DescriptionError("JSON", "nested too deeply to be a description") from None
    if not isinstance(loaded, expected):
        raise DescriptionError("JSON", f"holds a {type(loaded).__name__}; expected a {expected.__name__} "
                                       f"({{\"type\": \"{expected.__name__}\", ...}})")
    return loaded
