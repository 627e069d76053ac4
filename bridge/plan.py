"""Lowering: a Simulation turned into numbers once, the form both backends read.

`lower(simulation)` parses every quantity string and decodes every naming convention of the description
exactly once, here:
- dt and step counts as numbers; the run's segments (Brian2 run() calls) as step boundaries;
- record keys as Recordings (owner, variable, element indices, steps between records);
- per population its parameters (Brian2 quantities and SI floats) and the initial value of each variable
  given, one SI float per neuron;
- per projection the synapses (i, j), one SI value per synapse of each synaptic variable, its pathways
  (whose events trigger each, and the initial delay of every synapse in steps), its DelayRule and where its
  delay variable lives: ('synapse', name), or a neuron variable `x_post` / `x_pre` as ('target', 'x') /
  ('source', 'x');
- the input spikes of every source as (neuron, step) pairs, and every current injection as (steps, n);
- random numbers drawn once per run, the same for both backends: white noise `xi`, and rand() / randn() in
  thresholds, resets and operations (as TimedArrays of drawn values).

Time-to-step rules: spike times go to step int((t + 1e-3*dt)/dt) (Brian2's SpikeGeneratorGroup rule);
delays by the run's `Timing.delay_rounding` (bridge/delays.py).
"""
import functools
import re
from dataclasses import dataclass

import brian2
import numpy as np

from bridge import abstract_code, memory
from bridge.brian_parse import brian_arrays, brian_namespace
from bridge.delays import DelayRule
from bridge.errors import DescriptionError
from bridge.names import delay_owner, record_key
from bridge.quantities import si_value

PATHWAY_SIDES = {"pre": "source", "post": "target"}  # whose events trigger an on_pre / on_post pathway


def si_constants(quantities):
    """{name: SI float} of the parsed quantities among a namespace's values."""
    return {name: float(np.asarray(value)) for name, value in quantities.items()
            if isinstance(value, brian2.Quantity)}


def timed_arrays(parameters):
    """{name: (values as SI floats, dt in seconds)} of the TimedArrays among a model's parameters."""
    return {name: (np.asarray(value.values, dtype=float), si_value(value.dt, name))
            for name, value in parameters.items() if hasattr(value, "values")}


@dataclass(frozen=True)
class PopulationPlan:
    name: str
    n: int
    model: object          # the NeuronModel
    namespace: dict        # parameter -> Brian2 Quantity
    constants: dict        # parameter -> SI float
    arrays: dict           # TimedArray parameter -> (values, dt), with the white noise drawn for the run
    initial: dict          # variable -> (n,) SI floats, for the variables given
    noise: dict            # white noise xi of the equations -> the TimedArray of its draws (bridge/program.py)
    threshold: str         # its threshold and reset, rand() / randn() replaced by the drawn values
    reset: str
    links: dict            # linked variable -> (population, variable) it reads

    def initial_array(self, variable):
        """The initial value of `variable` for each neuron (0 when not given)."""
        return self.initial.get(variable, np.zeros(self.n))


@dataclass(frozen=True)
class SourcePlan:
    name: str
    n: int
    indices: np.ndarray    # neuron of each input spike
    steps: np.ndarray      # step of each input spike

    def raster(self, n_steps):
        """The spikes as a (n_steps, n) 0/1 array."""
        raster = np.zeros((n_steps, self.n))
        raster[self.steps, self.indices] = 1
        return raster


@dataclass(frozen=True)
class CurrentPlan:
    name: str
    target: str
    variable: str
    values: np.ndarray     # (n_steps, n) SI floats, set at the start of each step


@dataclass(frozen=True)
class PathwayPlan:
    name: str
    side: str              # whose events trigger it: 'source' (an on_pre pathway) or 'target' (on_post)
    event: str             # 'spike' or a custom event of those neurons
    delay_steps: np.ndarray  # every synapse's delay in steps at the start of the run
    code: str


@dataclass(frozen=True)
class ProjectionPlan:
    name: str
    source: str
    target: str
    n_source: int
    n_target: int
    synapse: object        # the SynapseModel
    namespace: dict        # parameter -> Brian2 Quantity or TimedArray
    constants: dict        # parameter -> SI float
    arrays: dict           # TimedArray parameter -> (values, dt)
    i: np.ndarray
    j: np.ndarray
    values: dict           # synaptic variable -> (synapses,) SI floats
    pathways: dict         # name -> PathwayPlan; a delay variable sets the delays of 'pre'
    rule: DelayRule
    delay_mode: str
    delay_owner: tuple     # (side, variable) of the delay variable, or None for static delays
    shape: tuple           # the description's layout of per-synapse arrays: (n_source, n_target) when dense
    links: dict            # linked variable -> (population, variable) it reads

    @property
    def dense(self):
        return len(self.shape) == 2

    @property
    def delay_steps(self):
        """The delays of the pathway 'pre' in steps (the ones a delay variable sets and torch can learn)."""
        return self.pathways["pre"].delay_steps if "pre" in self.pathways else np.zeros(len(self.i), np.int64)

    def in_layout(self, values):
        """Per-synapse values (synapses,) in the description's layout."""
        return values.reshape(self.shape)

    def changing(self, pathway):
        """Whether a pathway's delays may change during the run: those of 'pre' unless 'static'."""
        return pathway == "pre" and self.delay_mode != "static"

    def slots(self, pathway):
        """Steps of events a pathway keeps: its longest delay + 1, or the rule's whole range when delays change."""
        return self.rule.slots if self.changing(pathway) else int(self.pathways[pathway].delay_steps.max(initial=0)) + 1


@dataclass(frozen=True)
class OperationPlan:
    name: str
    operation: object      # the Operation
    target: str
    start: int
    stop: int
    period_steps: int      # runs at the steps that are multiples of it
    code: str              # its code, every rand() / randn() replaced by a TimedArray of drawn values
    arrays: dict           # name -> ((runs, stop - start) drawn values, seconds between runs)
    namespace: dict        # name -> Brian2 TimedArray of those values


@dataclass(frozen=True)
class Plan:
    simulation: object     # the Simulation lowered
    dt: float
    n_steps: int
    segment_lengths: tuple  # steps of each run segment (Brian2 run() call)
    segment_starts: tuple   # the first step of each
    dtype: str
    records: dict          # record key -> Recording (bridge/description.py), in the description's order
    populations: dict      # name -> PopulationPlan
    sources: dict          # name -> SourcePlan
    currents: dict         # name -> CurrentPlan
    projections: dict      # name -> ProjectionPlan, in the description's order
    poisson_inputs: dict   # name -> PoissonInputPlan (bridge/constructs/poisson_input.py), in name order
    operations: dict       # name -> OperationPlan, in name order (Brian2's order within a slot)
    changes: dict          # first step of a segment -> its ChangePlans (bridge/constructs/run_changes.py)

    def size(self, name):
        return (self.populations.get(name) or self.sources[name]).n

    def width(self, owner):
        """The elements of a population or source, or the synapses of a projection."""
        return len(self.projections[owner].i) if owner in self.projections else self.size(owner)

    @functools.cached_property
    def code(self):
        """Brian2's abstract code of every code object (bridge/abstract_code.py: NetworkCode), extracted at the
        first use (Brian2's state updaters take tens of ms per model; Brian2's own runs do not need it)."""
        return abstract_code.extract(self)


def lower(simulation):
    """The Plan of a Simulation (a Plan is returned as it is)."""
    if isinstance(simulation, Plan):
        return simulation
    memory.refuse_beyond(memory.lowering_bytes(simulation), memory.system_available_bytes(), "this machine")
    net, run = simulation.network, simulation.run
    dt, n_steps = run.timing.dt_seconds, run.n_steps
    populations = {p.name: _population(p, k, run, n_steps) for k, p in enumerate(net.populations)}
    sizes = {element.name: net.width(element.name) for element in net.populations + net.sources + net.projections}
    return Plan(
        simulation=simulation, dt=dt, n_steps=n_steps, segment_lengths=run.segment_lengths,
        segment_starts=run.segment_starts, dtype=run.dtype,
        records={key: run.recording(key, net.width(record_key(key)[0])) for key in run.record},
        populations=populations,
        sources={s.name: SourcePlan(s.name, s.n, *s.spike_steps(dt, n_steps)) for s in net.sources},
        currents={c.name: CurrentPlan(c.name, c.target, c.variable, c.array(n_steps)) for c in net.currents},
        projections={p.name: _projection(p, run.timing, populations, sizes) for p in net.projections},
        poisson_inputs={p.name: p.lower(dt, n_steps, sizes[p.target])
                        for p in sorted(net.poisson_inputs, key=lambda p: p.name)},
        operations={o.name: _operation(o, k, run, populations[o.target]) for k, o in
                    sorted(enumerate(net.operations), key=lambda item: item[1].name)},
        changes=_changes(run, net))


def _changes(run, net):
    """{first step of a segment: [ChangePlan]} of the run's Changes, in their order."""
    changes = {}
    for change in run.changes:
        lowered = change.lower(run.segment_starts[change.segment], net.width(record_key(change.variable)[0]))
        changes.setdefault(lowered.step, []).append(lowered)
    return changes


def _population(population, index, run, n_steps):
    quantities = brian_namespace(population.model.parameters)
    arrays = timed_arrays(population.model.parameters)
    initial = {var: population.initial_array(var) for var in population.initial}
    model, where, dt = population.model, f"Population {population.name!r}.model", run.timing.dt_seconds
    _refuse_random_calls(where, model.equations, *model.events.values(), *model.run_on_event.values())
    noise = white_noise(population, index, run, n_steps)
    drawn_arrays = {name: (values, dt) for name, values in noise.values()}
    rng, rows = np.random.default_rng([run.noise_seed, 2, index]), (n_steps, population.n)
    threshold, reset = (drawn(code, f"drawn_{part}", rng, rows, dt, drawn_arrays)
                        for part, code in (("threshold", model.threshold), ("reset", model.reset)))
    quantities.update(brian_arrays(drawn_arrays))
    return PopulationPlan(population.name, population.n, model, quantities, si_constants(quantities),
                          {**arrays, **drawn_arrays}, initial, {xi: name for xi, (name, _) in noise.items()},
                          threshold, reset,
                          {variable: record_key(link) for variable, link in population.links.items()})


def white_noise(population, index, run, n_steps):
    """{xi: (name, (n_steps, n) draws)}: each white noise `xi...` of the equations as standard normal values drawn
    once per run (numpy's default_rng([noise_seed, population index])), one per step and neuron, a TimedArray
    `name` that the state updater reads where Brian2's calls randn() (program.drawn_noise): `xi = dt**.5 *
    randn()`, the Wiener increment of any of Brian2's stochastic methods (euler, heun, milstein)."""
    stochastic = sorted(brian2.Equations(population.model.equations).stochastic_variables)
    rng = np.random.default_rng([run.noise_seed, index])
    return {xi: (f"drawn_{xi}", rng.standard_normal((n_steps, population.n))) for xi in stochastic}  # not xi_...


RANDOM_CALL = re.compile(r"\b(randn|rand)\(\)")


def drawn(code, prefix, rng, rows, row_seconds, arrays, shared=frozenset()):
    """`code` with each rand() / randn() replaced by `<prefix>_<k>(t, i)`: a TimedArray (added to `arrays` {name:
    (values, row_seconds)}) of uniform / standard normal values drawn from `rng`, shape `rows`, a row per run; in
    a statement writing one of the `shared` variables, one value per run: `<prefix>_<k>(t, 0)`."""
    def line_drawn(line):
        one = line.split("=")[0].strip(" +-*/") in shared

        def draw(match):
            name = f"{prefix}_{len(arrays)}"
            shape = (rows[0], 1) if one else rows
            arrays[name] = (rng.standard_normal(shape) if match.group(1) == "randn" else rng.random(shape),
                            row_seconds)
            return f"{name}(t, {0 if one else 'i'})"
        return RANDOM_CALL.sub(draw, line)
    return "\n".join(line_drawn(line) for line in code.split("\n"))


def _operation(operation, index, run, target):
    """An Operation's plan: its rand() / randn() drawn once per run from numpy's default_rng([noise_seed, 1,
    operation index]), one row per run of the code, one column per neuron it runs on (one for a shared
    variable)."""
    dt, (start, stop) = run.timing.dt_seconds, operation.neurons(target.n)
    period, arrays = operation.period_steps(dt), {}
    equations = brian2.Equations(target.model.equations)
    shared = frozenset(name for name in equations.names if "shared" in equations[name].flags)
    code = drawn(operation.code, f"drawn_{operation.name}", np.random.default_rng([run.noise_seed, 1, index]),
                 (-(-run.n_steps // period), stop - start), period * dt, arrays, shared)
    return OperationPlan(operation.name, operation, operation.target, start, stop, period, code, arrays,
                         brian_arrays(arrays))


def _refuse_random_calls(where, *codes):
    for code in codes:
        if RANDOM_CALL.search(code or ""):
            raise DescriptionError(where, f"rand() / randn() in {code!r}: both backends draw the same numbers in "
                                          "thresholds, resets and operations only (white noise: xi in equations)")


def _projection(proj, timing, populations, sizes):
    _refuse_random_calls(f"Projection {proj.name!r}.synapse", proj.synapse.model,
                         *(code for _, code, _ in proj.synapse.pathways().values()))
    noise = sorted(brian2.Equations(proj.synapse.model).stochastic_variables)
    if noise:
        raise DescriptionError(f"Projection {proj.name!r}.synapse.model", f"white noise {noise}: both backends share "
                                                                          "the white noise of populations only")
    i, j = proj.synapses(sizes[proj.source], sizes[proj.target])
    rule, quantities = timing.delay_rule(proj), brian_namespace(proj.synapse.parameters)
    shape = (sizes[proj.source], sizes[proj.target]) if proj.dense else (len(i),)
    return ProjectionPlan(
        name=proj.name, source=proj.source, target=proj.target, n_source=sizes[proj.source],
        n_target=sizes[proj.target], synapse=proj.synapse, namespace=quantities,
        constants=si_constants(quantities), arrays=timed_arrays(proj.synapse.parameters), i=i, j=j,
        values={name: proj.value_array(name, len(i)) for name in proj.values},
        pathways={name: PathwayPlan(name, PATHWAY_SIDES[side], event,
                                    rule.steps(proj.initial_delays(populations, name, i, j)).astype(np.int64), code)
                  for name, (side, code, event) in proj.synapse.pathways().items()}, rule=rule,
        delay_mode=proj.delay_mode, delay_owner=delay_owner(proj.delay_variable) if proj.delay_variable else None,
        shape=shape, links={variable: record_key(link) for variable, link in proj.links.items()})
