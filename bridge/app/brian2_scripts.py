"""Brian2 scripts in: `from_brian2(script)` imports the model a script builds (the way out, a description as a
plain Brian2 script, is bridge.app.export.to_brian2).

Import executes the script as `python script.py` run from its folder would (`__main__`, its folder first on
sys.path); at its `run()` / `Network.run()` calls, which do not run, the network's objects are read with their
realized state (initial values drawn with rand(), connectivity from connect(p=...) or conditions, per-synapse
values and delays, spike generator trains), with the constants their code names (the group's namespace, else
the names where run() was called, as Brian2 resolves them: a function's locals too; user functions traced into
UserFunctions, bridge/user_function.py), dt (the groups';
monitors and run_regularly may run every k steps), the float type (prefs.core.default_float_dtype, restored
after), the run's duration and the monitors (what to record, of which elements, how often; spikes are always
recorded, custom events where an EventMonitor records them). Synapses onto synapses come after the synapses
they connect. A construct the description cannot represent stops the import with an error naming the object
and the construct. A multiprocessing Pool runs its calls in the importing process, one after another.

Spike sources drawn by spikebridge (PoissonTrains, PoissonInput), which an exported script lists in its
SPIKEBRIDGE_POISSON and SPIKEBRIDGE_POISSON_INPUTS, are read back as such (checked against the draws); a Brian2
PoissonGroup with a constant rate is imported as PoissonTrains (seed 0: spikebridge draws the spikes, so that
both backends receive the same ones). What a script draws during its run (PoissonGroup, PoissonInput, white
noise, rand() in code run each step) is so replaced by spikebridge's seeded draws, and the import says so.

Several run() calls: run() does not run during the import (monitors stay empty); the network is read at each
call (spike generators up to the run's end: a later run reaches later spikes), and the values the script
assigned between calls become Changes of run segments (bridge/constructs/run_changes.py); monitors created
between runs record from the start. A run of other
objects, of a network changed in more than values, or a restore() after a run starts a separate simulation:
the runs before it are imported, which is said.
"""
import dataclasses
import math
import multiprocessing
import os
import runpy
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import brian2
import numpy as np
from brian2 import (EventMonitor, NetworkOperation, NeuronGroup, PoissonGroup, PopulationRateMonitor,
                    SpikeGeneratorGroup, StateMonitor, Synapses, TimedArray)
from brian2.core.functions import DEFAULT_FUNCTIONS, Function
from brian2.core.namespace import DEFAULT_CONSTANTS, DEFAULT_UNITS
from brian2.core.variables import Subexpression, VariableView
from brian2.equations.equations import DIFFERENTIAL_EQUATION, SUBEXPRESSION
from brian2.groups.group import CodeRunner, Group
from brian2.groups.subgroup import Subgroup
from brian2.stateupdaters.base import StateUpdateMethod, UnsupportedEquationsException
from brian2.utils.stringtools import get_identifiers

from bridge import description
from bridge.abstract_code import name_in
from bridge.brian_parse import declared_type
from bridge.constructs import poisson_input
from bridge.constructs.run_changes import changes_between
from bridge.description import (OPERATION_SLOTS, CurrentInjection, NeuronModel, Network, Operation, PoissonTrains,
                                Population, Projection, RunSettings, Simulation, SpikeTrains, SynapseModel, Timing,
                                spike_step)
from bridge.errors import DescriptionError
from bridge.names import POISSON_INPUT_REGISTRY, POISSON_REGISTRY, neuron_variable, selection_text, side_variable
from bridge.plan import RANDOM_CALL
from bridge.user_function import UserFunction
from bridge.quantities import quantity_text, steps_of, unit_text

_INTERNAL = {"lastspike", "not_refractory", "t", "dt", "i", "j", "N", "t_in_timesteps", "xi"}


@dataclass
class _RunReached:
    network: object
    duration: object
    namespace: dict
    start: float         # seconds, the durations of the runs before it added


@dataclass
class _Run:
    simulation: object   # the Simulation read at a run() call
    written: set         # the (owner, variable) pairs assigned to since the run() call before
    objects: set         # the Brian2 objects it runs
    drawn: list          # what draws random numbers during the run (replaced by spikebridge's seeded draws)
    duration: float      # seconds, as the script gave it to run()


class _SerialPool:
    """multiprocessing.Pool as an import runs it: each call in the importing process, one after another (each
    run() it reaches is read there; the runs of other networks are separate simulations)."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        return False

    def map(self, function, iterable, chunksize=None):
        return [function(item) for item in iterable]

    imap = imap_unordered = map

    def starmap(self, function, iterable, chunksize=None):
        return [function(*item) for item in iterable]

    def apply(self, function, args=(), kwds=None):
        return function(*args, **(kwds or {}))

    def close(self):
        pass

    join = terminate = close


class _Restored(BaseException):
    """Ends a script at a restore() after a run() (time rewound: what follows is a separate simulation)."""


class _Stop(BaseException):
    """Ends a script at a run() call whose network cannot be imported (the DescriptionError in args[0])."""


def from_brian2(script):
    """The Simulation of the network a Brian2 script builds, read at each of its run() calls (not run): the
    first run's network, then as segments the later runs with the values the script set between them."""
    path = Path(script).resolve()
    if not path.is_file():
        raise DescriptionError(str(script), "not a file; give the path of a Brian2 script")
    dt = brian2.defaultclock.dt  # the script may set it; read through its objects' clocks, then restored
    try:
        runs = _execute(path)
    finally:
        brian2.defaultclock.dt = dt
    if runs[0].drawn:
        warnings.warn(f"{path.name}: {', '.join(runs[0].drawn)} draw random numbers during the run: imported with "
                      "spikebridge's seeded draws (the same for both backends, not the script's own)", stacklevel=2)
    return _protocol(path, runs)


def _execute(path):
    """The Simulation read at each run() of the script, run as `python script.py` from its folder runs it
    (`__main__`, the folder first on sys.path, its working directory), on Brian2's numpy target (its cython
    target draws other numbers from the same seed()); run() does not run (monitors stay empty). The modules
    the script imported from its folder are forgotten after."""
    original, set_item, restore = brian2.Network.run, VariableView.set_item, brian2.Network.restore
    runs, written, importer_process = [], set(), os.getpid()

    def intercept(network, duration, *args, namespace=None, **kwargs):
        if os.getpid() != importer_process:  # a worker of the script's multiprocessing: its error ends the script
            raise RuntimeError("run() in a worker process; spikebridge imports the runs of the script's process")
        if float(duration) == 0:  # a run of no time (scripts use it to compile) changes nothing
            return
        reached = _RunReached(network, duration, namespace if namespace is not None else _caller_namespace(),
                              sum(run.duration for run in runs))
        try:
            importer = _Importer(path, reached)
            simulation = importer.simulation()
            runs.append(_Run(simulation, set(written), set(network.objects), importer.drawn(simulation.network),
                             float(duration)))
        except DescriptionError as error:
            raise _Stop(error) from None
        written.clear()

    def write(view, item, value, level=0, namespace=None):  # an assignment, `G.v = ...`, `S.w[...] = ...`
        written.add((view.variable.owner.name, view.name))
        return set_item(view, item, value, level=level + 1, namespace=namespace)  # names of the frame above

    def rewind(network, *args, **kwargs):  # restore() after a run rewinds time: a separate simulation follows
        if runs and os.getpid() == importer_process:
            raise _Restored
        return restore(network, *args, **kwargs)

    brian2.Network.run, VariableView.set_item, brian2.Network.restore = intercept, write, rewind
    pool, multiprocessing.Pool = multiprocessing.Pool, _SerialPool
    set_device, brian2.set_device = brian2.set_device, lambda *args, **kwargs: None  # any target runs the import
    previous, cwd, modules = brian2.prefs.codegen.target, os.getcwd(), set(sys.modules)
    float_type = brian2.prefs.core.default_float_dtype
    sys.path.insert(0, str(path.parent))
    try:
        os.chdir(path.parent)
        brian2.start_scope()
        brian2.prefs.codegen.target = "numpy"  # what the script draws at build time: the numpy target's numbers
        runpy.run_path(str(path), run_name="__main__")
    except _Stop as stop:
        raise stop.args[0] from None
    except _Restored:
        warnings.warn(f"{path.name}: restore() after {len(runs)} run() call(s) starts a separate simulation; "
                      "imported the runs before it", stacklevel=3)
    except Exception as error:
        if not runs:
            raise DescriptionError(str(path), f"the script failed before run(): {type(error).__name__}: "
                                              f"{error}") from None
        warnings.warn(f"{path.name}: the script raised {type(error).__name__} after {len(runs)} run() call(s) (they "
                      f"do not run during the import: monitors are empty); imported those runs", stacklevel=3)
    finally:
        brian2.Network.run, brian2.set_device, VariableView.set_item = original, set_device, set_item
        brian2.Network.restore, multiprocessing.Pool = restore, pool
        brian2.prefs.codegen.target, brian2.prefs.core.default_float_dtype = previous, float_type
        os.chdir(cwd)
        sys.path.remove(str(path.parent))
        for name in set(sys.modules) - modules:
            if str(getattr(sys.modules[name], "__file__", None) or "").startswith(str(path.parent) + os.sep):
                del sys.modules[name]
    if not runs:
        raise DescriptionError(str(path), "the script never calls run(); spikebridge imports the network at its "
                                          "run()")
    return runs


def _protocol(path, runs):
    """One Simulation of the runs read at each run() call: the first network, the runs as segments, and the
    values set between them as Changes, recording what any of their monitors records. A run of other objects
    (monitors aside), or of a network changed in more than values, starts a separate simulation: the runs
    before it are imported, which is said."""
    protocol, changes = runs[:1], []
    for segment, run in enumerate(runs[1:], start=1):
        where = f"{path.name}: run() call {segment + 1}"
        try:
            if _model_objects(run.objects) != _model_objects(runs[0].objects):
                raise DescriptionError(where, "runs other objects (a separate simulation)")
            _check_spikes_continue(protocol[-1].simulation, run.simulation, where)
            changes += changes_between(protocol[-1].simulation, run.simulation, segment, run.written, where)
        except DescriptionError as error:
            warnings.warn(f"{error}; imported the {len(protocol)} run() call(s) before it", stacklevel=3)
            break
        protocol.append(run)
    runs = [run.simulation for run in protocol]
    if len(runs) == 1:
        return runs[0]
    first = runs[0].run
    ends = [end_step(end, first.timing.dt_seconds) for end in np.cumsum([run.duration for run in protocol])]
    lengths = np.diff([0, *ends]).tolist()
    total = quantity_text(sum(lengths) * first.timing.dt_seconds, brian2.second.dim, "run() durations")
    segments = len(lengths) if len(set(lengths)) == 1 else tuple(
        _duration_text(run.duration, n, first.timing.dt_seconds) for run, n in zip(protocol, lengths))
    record = tuple(dict.fromkeys(key for run in runs for key in run.run.record))
    events = tuple(dict.fromkeys(key for run in runs for key in run.run.events))
    network = dataclasses.replace(runs[0].network, sources=runs[-1].network.sources)  # the spikes of every run
    return Simulation(network, dataclasses.replace(first, duration=total, segments=segments, changes=tuple(changes),
                                                   record=record, events=events))


def _check_spikes_continue(before, after, where):
    """The spike trains read at a run() (the spikes up to its end) continue those read at the run before."""
    for old, new in zip(before.network.sources, after.network.sources):
        if isinstance(old, SpikeTrains):
            indices, times = np.asarray(new.indices), np.asarray(new.times)
            kept = spike_step(times, before.dt) < before.run.n_steps
            if not (np.array_equal(indices[kept], old.indices) and np.array_equal(times[kept], old.times)):
                raise DescriptionError(where, f"the spikes of {old.name!r} before this run were changed (a separate "
                                              "simulation)")


def end_step(end, dt):
    """The step a run() ending at time `end` (the durations of the script's runs added) ends at: rounded up
    unless within 0.01 % of dt of a step (Brian2's Clock)."""
    nearest = round(end / dt)
    return nearest if abs(nearest * dt - end) <= 1e-4 * dt else math.ceil(end / dt)


def _duration_text(seconds, steps, dt):
    """A run's duration as a quantity string: as the script gave it when Brian2 runs it as that many steps,
    else the steps Brian2 runs."""
    return quantity_text(seconds if steps_of(seconds, dt) == steps else steps * dt, brian2.second.dim, "run()")


def _record_keys(monitors):
    """The record keys of the StateMonitors' keys (each as the script lists its variables), monitors ordered by
    their keys: monitors a script leaves unnamed are named in an order that depends on what Brian2 still holds."""
    return tuple(dict.fromkeys(key for keys in sorted(monitors) for key in keys))


def _model_objects(objects):
    """The objects of a network that make its model: all but monitors and what they contain."""
    monitors = [obj for obj in objects if isinstance(obj, (StateMonitor, EventMonitor, PopulationRateMonitor))]
    return set(objects) - set(monitors) - {child for monitor in monitors for child in monitor.contained_objects}


def _hops(group):
    """0 for neurons; for synapses, 1 + the hops of what they connect (synapses onto synapses come after)."""
    if not isinstance(group, Synapses):
        return 0
    return 1 + max(_hops(group.source), _hops(group.target))


def _caller_namespace():
    """The names visible where run() / Network.run() was called (Brian2's run namespace): in the first frame
    outside Brian2 and this module."""
    frame, skipped = sys._getframe(), (os.path.dirname(brian2.__file__) + os.sep, __file__)
    while frame is not None and frame.f_code.co_filename.startswith(skipped):
        frame = frame.f_back
    return {**frame.f_globals, **frame.f_locals} if frame is not None else {}


def equations_text(equations):
    """Brian2 equations (single equations) written back as text with unit names that Brian2 reads."""
    lines = []
    for eq in equations:
        unit = declared_type(eq)
        flags = f" ({', '.join(eq.flags)})" if eq.flags else ""
        if eq.type == DIFFERENTIAL_EQUATION:
            lines.append(f"d{eq.varname}/dt = {eq.expr.code} : {unit}{flags}")
        elif eq.type == SUBEXPRESSION:
            lines.append(f"{eq.varname} = {eq.expr.code} : {unit}{flags}")
        else:
            lines.append(f"{eq.varname} : {unit}{flags}")
    return "\n".join(lines)


def _is_default(name, value):
    """Does `name` resolve to Brian2's own unit, function or constant of that name?"""
    if name in DEFAULT_UNITS:
        return value is DEFAULT_UNITS[name]
    if name in DEFAULT_FUNCTIONS:
        return callable(value) and not isinstance(value, TimedArray)
    return name in DEFAULT_CONSTANTS and np.all(value == DEFAULT_CONSTANTS[name].value)


def _neuron_subexpressions(syn, names):
    """The expressions of the neurons' subexpressions synaptic code reads (`F_pre` of F = ...), with those they
    read in turn: Brian2 substitutes them into the code, so their constants are the synapses' too."""
    expressions, pending = [], list(names)
    while pending:
        side, name = neuron_variable(pending.pop()) or (None, None)
        group = {"source": syn.source, "target": syn.target}.get(side)
        if group is not None and name in group.equations.subexpr_names:
            expression = group.equations[name].expr.code
            expressions.append(expression)
            pending += [side_variable(side, identifier) for identifier in get_identifiers(expression)]
    return expressions


def _expressions(equations):
    """The expressions of Brian2 equations (their declarations' units are no names to resolve)."""
    return [eq.expr.code for eq in equations.ordered if eq.expr is not None]


def _lines(code):
    """Brian2 statements as the script wrote them, each line stripped of its indentation."""
    return "\n".join(line.strip() for line in code.strip().splitlines())


def _in_layout(values, n_source, n_target, dense):
    """Per-synapse values as the description holds them: (n_source, n_target) when dense."""
    return values.reshape(n_source, n_target) if dense and not isinstance(values, str) else values


def _single(codes, side):
    """A side's pathways as SynapseModel holds them: the code alone when its one pathway is named `side`."""
    return codes.get(side, "") if set(codes) <= {side} else codes


def _values(variable, size):
    """A variable's realized values (SI floats), one per element."""
    return np.broadcast_to(np.asarray(variable.get_value(), dtype=float), (size,)).copy()


def _compact(values, dim, where):
    """A quantity string when every element holds the same value, the values otherwise."""
    return quantity_text(values[0], dim, where) if len(values) and np.all(values == values[0]) else values


class _Importer:
    def __init__(self, path, reached):
        self.path, self.reached = path, reached
        self.objects = list(reached.network.objects)
        self.contained = {id(child) for obj in self.objects for child in getattr(obj, "contained_objects", [])}
        self.poisson_registry = reached.namespace.get(POISSON_REGISTRY, {})
        self.poisson_input_registry = reached.namespace.get(POISSON_INPUT_REGISTRY, {})

    def fail(self, obj, construct):
        raise DescriptionError(f"{self.path.name}: {type(obj).__name__} {obj.name!r}",
                               f"{construct} cannot be imported (not representable in a spikebridge description)")

    def simulation(self):
        dt = self.dt = self._dt()
        self.end = self.reached.start + float(self.reached.duration)
        self.n_steps = end_step(self.end, dt)
        populations, sources, projections, record, self.currents, self.poisson_inputs = [], [], [], [], [], []
        self.operations, self.start_operations, self.events = [], [], []
        for obj in sorted(self.objects, key=lambda o: o.name):
            if isinstance(obj, NeuronGroup) and type(obj) is NeuronGroup:
                populations.append(self._population(obj))
            elif isinstance(obj, SpikeGeneratorGroup):
                sources.append(self._spike_trains(obj))
            elif isinstance(obj, PoissonGroup):
                sources.append(self._poisson_group(obj))
            elif isinstance(obj, Synapses):
                projections.append(self._projection(obj))
            elif isinstance(obj, StateMonitor):
                record.append(tuple(self._records(obj)))
            elif isinstance(obj, brian2.PoissonInput):
                resolve = lambda name: obj._group.namespace.get(name, self.reached.namespace.get(name))
                self.poisson_inputs.append(poisson_input.from_brian2(obj, self.fail, resolve))
            elif isinstance(obj, EventMonitor):
                self._event_monitor(obj)
            elif isinstance(obj, PopulationRateMonitor):
                continue  # spikes are always recorded
            elif id(obj) not in self.contained:
                self.fail(obj, "this kind of object")
        duration = _duration_text(self.end, self.n_steps, dt)
        self._check_record_order()
        projections.sort(key=lambda proj: _hops(self.reached.network[proj.name]))  # synapses before those onto them
        network = Network(tuple(populations), tuple(sources), tuple(self.currents), tuple(projections),
                          tuple(self.poisson_inputs), tuple(self.operations))
        float_type = np.dtype(brian2.prefs.core.default_float_dtype).name  # the script's float32 runs in float32
        return Simulation(network, RunSettings(duration, float_type, _record_keys(record),
                                               Timing(dt=quantity_text(dt, brian2.second.dim, "dt")),
                                               events=tuple(dict.fromkeys(self.events))))

    def drawn(self, net):
        """What draws random numbers during the run of the imported Network `net`, as the script wrote it:
        Brian2's PoissonGroups and PoissonInputs (an exported script's spikebridge draws are neither), white
        noise, rand() / randn() in code run each step."""
        drawn = [f"{type(obj).__name__} {obj.name!r}" for obj in self.objects
                 if isinstance(obj, (PoissonGroup, brian2.PoissonInput))]
        for population in net.populations:
            model = population.model
            code = "\n".join([model.threshold, model.reset, *(o.code for o in net.operations
                                                             if o.target == population.name)])
            if brian2.Equations(model.equations).stochastic_variables or RANDOM_CALL.search(code):
                drawn.append(f"NeuronGroup {population.name!r}")
        return sorted(drawn)

    def _check_record_order(self):
        """Brian2 orders the 'start' slot by (order, name): a state monitor before an operation there records
        the state before it, which a description cannot say (it records after the operations)."""
        monitors = [obj for obj in self.objects if isinstance(obj, StateMonitor) and obj.when == "start"]
        for monitor in monitors:
            for operation in self.start_operations:
                if (monitor.order, monitor.name) < (operation.order, operation.name):
                    self.fail(monitor, f"recording before the run_regularly {operation.name!r} of the 'start' slot "
                                       "(spikebridge records after the operations; give the monitor order=1)")

    def _dt(self):
        """The dt every group and synapse runs with (monitors and run_regularly may take whole multiples)."""
        steps = {obj.name: float(obj.clock.dt_) for obj in self.objects
                 if hasattr(obj, "clock") and type(obj) is not CodeRunner
                 and not isinstance(obj, (StateMonitor, EventMonitor, PopulationRateMonitor, NetworkOperation))}
        if len(set(steps.values())) != 1:
            raise DescriptionError(f"{self.path.name}: clocks", f"groups run with different dt {steps}; a "
                                                                "description has one dt")
        return next(iter(steps.values()))

    def _steps(self, obj):
        """The steps of the network's dt between two runs of an object with its own clock."""
        steps = steps_of(float(obj.clock.dt_), self.dt)
        if steps is None:
            self.fail(obj, f"a dt of {obj.clock.dt} that is not a whole number of steps of dt = {self.dt} s")
        return steps

    def _check_children(self, group, known):
        for child in group.contained_objects:
            if child not in known:
                self.fail(group, f"run_regularly or custom code ({type(child).__name__} {child.name!r})")

    def _current(self, group, runner):
        """A CurrentInjection from `group.run_regularly('x = values(t, i)', when='before_groups')` with a
        TimedArray `values` of one row per step (the form to_brian2 writes); None for other code."""
        code = runner.abstract_code
        target, _, call = code.partition("=")
        target, call = target.strip(), call.strip()
        name = call.partition("(")[0]
        values = group.namespace.get(name, self.reached.namespace.get(name))
        if (call == f"{name}(t, i)" and target.isidentifier() and runner.when == "before_groups"
                and isinstance(values, TimedArray) and float(values.dt) == self.dt and runner.group.name == group.name):
            return CurrentInjection(runner.name, group.name, target, np.asarray(values.values, dtype=float))
        return None

    def _operation(self, group, runner):
        """An Operation from any other run_regularly on the group or one of its subgroups."""
        if runner.when not in OPERATION_SLOTS or runner.order != 0:
            self.fail(group, f"run_regularly {runner.name!r} in slot {runner.when!r}, order {runner.order} (operations "
                             f"run in {OPERATION_SLOTS}, order 0)")
        dt = "" if self._steps(runner) == 1 else quantity_text(float(runner.clock.dt_), brian2.second.dim,
                                                               f"{runner.name}.dt")
        owner = runner.group
        start, stop = (owner.start, owner.stop) if isinstance(owner, Subgroup) else (0, len(group))
        if runner.when == "start":
            self.start_operations.append(runner)
        return Operation(runner.name, group.name, _lines(runner.abstract_code), dt, runner.when, start,
                         None if stop == len(group) else stop)

    def _runners(self, group):
        """The code runners a group contains, with those of its subgroups (not groups: Brian2 lists Synapses
        that run_regularly in their source group)."""
        for child in group.contained_objects:
            if isinstance(child, Subgroup):
                yield from self._runners(child)
            elif not isinstance(child, Group):
                yield child

    def _constants(self, obj, code, variables):
        """{name: quantity string, TimedArray or UserFunction} of the external constants and functions `code`
        names, as Brian2 resolves them."""
        constants = {}
        for name in sorted(get_identifiers(code) - set(variables) - _INTERNAL):
            value = obj.namespace.get(name, self.reached.namespace.get(name))
            if value is None or _is_default(name, value):
                continue
            if isinstance(value, TimedArray):
                constants[name] = description.TimedArray.from_brian2(value)
                continue
            if isinstance(value, Function) or callable(value):
                try:
                    constants[name] = UserFunction.from_brian2(value)
                except ValueError as reason:
                    self.fail(obj, f"the function {name!r}: {reason}")
                continue
            quantity = brian2.Quantity(value)
            if quantity.size != 1:
                self.fail(obj, f"the array constant {name!r} (only scalars are parameters)")
            constants[name] = quantity_text(quantity, quantity.dim, f"{self.path.name}: {obj.name}.{name}")
        return constants

    def _population(self, group):
        for event, resetter in group.resetter.items():
            if event != "spike" and (resetter.when, resetter.order) != ("after_resets", group.order):
                self.fail(group, f"run_on_event({event!r}) out of its place in the schedule (when='after_resets', "
                                 "the group's order)")
        known = [group.state_updater, *group.thresholder.values(), *group.resetter.values(),
                 getattr(group, "subexpression_updater", None)]
        operations = []
        for child in self._runners(group):
            registered = self.poisson_input_registry.get(child.name)
            if registered:
                self.poisson_inputs.append(poisson_input.from_exported(group, child.name, registered, self.dt,
                                                                       self.n_steps, self.fail))
            elif child not in known:
                current = self._current(group, child)
                if current:
                    self.currents.append(current)
                else:
                    operations.append(self._operation(group, child))
        self.operations += operations
        equations = group.user_equations
        threshold, reset = group.events.get("spike") or "", _lines(group.event_codes.get("spike") or "")
        refractory = group._refractory  # a quantity, or an expression as written (a period or a condition)
        if refractory is False:
            refractory = ""
        elif not isinstance(refractory, str):
            refractory = quantity_text(refractory, brian2.second.dim, "refractory")
        events = {event: condition for event, condition in group.events.items() if event != "spike"}
        on_event = {event: _lines(code) for event, code in group.event_codes.items() if event != "spike"}
        code = "\n".join([*_expressions(equations), threshold, reset, refractory, *events.values(), *on_event.values(),
                          *(operation.code for operation in operations)])
        model = NeuronModel(equations_text(equations.ordered), threshold, reset, refractory,
                            self._constants(group, code, group.variables), self._method(group), events, on_event)
        initial, links = {}, {}
        for name in equations.names:
            if "linked" in equations[name].flags:
                links[name] = self._link(group, name)
            elif equations[name].type != SUBEXPRESSION:
                values = _values(group.variables[name], len(group))
                if np.any(values != 0):
                    initial[name] = _compact(values, equations[name].dim, f"{group.name}.{name}")
        return Population(group.name, model, len(group), initial, links)

    def _link(self, group, name):
        """The "population.variable" a linked variable of a group or synapses reads: neuron k of a group of the
        same size (element k reads it), or the one neuron of a group of one."""
        variable, owner, index = group.variables[name], group.variables[name].owner, group.variables.indices[name]
        if isinstance(variable, Subexpression):  # Brian2 copies it into `group`, under other names
            self.fail(group, f"the linked variable {name!r} read from a subexpression")
        if isinstance(owner, Subgroup) or (index, len(owner)) not in (("_idx", len(group)), ("0", 1)):
            self.fail(group, f"the linked variable {name!r} read through an index or from a group of another size")
        return f"{owner.name}.{name_in(variable, owner)}"

    def _method(self, group):
        """The state updater Brian2 integrates `group` with ("" when nothing is integrated)."""
        if group.state_updater is None:
            return ""
        choice = group.state_updater.method_choice
        if isinstance(choice, str):
            return choice
        for method in choice:  # Brian2's default order: the first state updater that integrates the equations
            try:
                StateUpdateMethod.apply_stateupdater(group.equations, group.variables, method, group_name=group.name)
                return method
            except UnsupportedEquationsException:
                continue
        self.fail(group, "equations no state updater integrates")

    def _spike_trains(self, group):
        indices = np.asarray(group.variables["neuron_index"].get_value(), dtype=np.int64)
        times = np.asarray(group.variables["spike_time"].get_value(), dtype=float)
        period = float(group.variables["period"].get_value()[0])
        if period:  # spikes repeated every period: unrolled over the run, as whole steps
            steps, period_steps = spike_step(times, self.dt), steps_of(period, self.dt)
            if period_steps is None:
                self.fail(group, f"a period of {period} s, not a whole number of steps of dt = {self.dt} s")
            repeats = np.arange(0, self.n_steps, period_steps)
            indices, times = np.tile(indices, len(repeats)), (steps[None, :] + repeats[:, None]).reshape(-1) * self.dt
        reached = spike_step(times, self.dt) < self.n_steps  # spikes after the end of this run: a later run's
        trains = SpikeTrains(group.name, len(group), indices[reached], times[reached])
        if group.name not in self.poisson_registry:
            return trains
        poisson = PoissonTrains(group.name, len(group), *self.poisson_registry[group.name])
        drawn, given = poisson.spike_steps(self.dt, self.n_steps), trains.spike_steps(self.dt, self.n_steps)
        if not all(np.array_equal(a, b) for a, b in zip(drawn, given)):
            self.fail(group, f"spikes that differ from the PoissonTrains {POISSON_REGISTRY} names")
        return poisson

    def _poisson_group(self, group):
        if isinstance(group.variables["rates"], Subexpression):  # rates='r(t)' or 'r(t, i)' of a TimedArray
            expression = group.variables["rates"].expr.replace(" ", "")
            name = expression.partition("(")[0]
            array = group.namespace.get(name, self.reached.namespace.get(name))
            if not isinstance(array, TimedArray) or expression not in (f"{name}(t)", f"{name}(t,i)"):
                self.fail(group, f"rates given by an expression ({group.variables['rates'].expr!r}; rates of a "
                                 "TimedArray, 'r(t)' or 'r(t, i)', are imported)")
            return PoissonTrains(group.name, len(group), description.TimedArray.from_brian2(array))
        rates = np.asarray(group.variables["rates"].get_value(), dtype=float).reshape(-1)
        if np.all(rates == rates[0]):
            return PoissonTrains(group.name, len(group), quantity_text(rates[0], brian2.Hz.dim, "rates"))
        one_row = description.TimedArray((tuple(rates),), quantity_text(self.dt, brian2.second.dim, "dt"), "hertz")
        return PoissonTrains(group.name, len(group), one_row)  # a rate per neuron, held for the whole run

    def _projection(self, syn):
        links = {eq.varname: self._link(syn, eq.varname) for eq in syn.equations.ordered if "linked" in eq.flags}
        pathways = {pathway.objname: pathway for pathway in syn._pathways}
        updaters = [syn.state_updater] if syn.state_updater is not None else []
        self._check_children(syn, [*syn._pathways, *updaters, *syn.summed_updaters.values()])
        on_pre, on_post = ({name: _lines(p.code) for name, p in pathways.items() if p.prepost == side}
                           for side in ("pre", "post"))
        on_event = {name: pathway.event for name, pathway in pathways.items() if pathway.event != "spike"}
        event_driven = [eq for eq in syn.event_driven.ordered if eq.type == DIFFERENTIAL_EQUATION] if syn.event_driven \
            else []
        summed = [f"{name} = {updater.expression.code} : {unit_text(syn.variables['_summed_' + name].dim)} (summed)"
                  for name, updater in syn.summed_updaters.items()]
        model_text = "\n".join([equations_text(syn.equations.ordered + event_driven), *summed])
        code = "\n".join([*_expressions(syn.equations), *(eq.expr.code for eq in event_driven),
                          *(updater.expression.code for updater in syn.summed_updaters.values()),
                          *on_pre.values(), *on_post.values()])
        code = "\n".join([code, *_neuron_subexpressions(syn, get_identifiers(code))])
        constants = self._constants(syn, code, set(syn.variables))
        source, target = self._whole(syn, syn.source, code), self._whole(syn, syn.target, code)
        i = np.asarray(syn.variables["_synaptic_pre"].get_value(), dtype=np.int64)  # indices in the whole groups
        j = np.asarray(syn.variables["_synaptic_post"].get_value(), dtype=np.int64)
        n_source, n_target = len(source), len(target)
        dense = len(i) == n_source * n_target and np.array_equal(i * n_target + j, np.arange(len(i)))
        values = {}
        state = [*syn.equations.diff_eq_names, *(eq.varname for eq in event_driven)]
        for name in [*(name for name in syn.equations.parameter_names if name not in links), *state]:
            array = _values(syn.variables[name], len(i))
            if name in state and not np.any(array):
                continue  # a differential equation's variable that starts at 0, as Brian2 starts it
            values[name] = _in_layout(_compact(array, syn.variables[name].dim, f"{syn.name}.{name}"), n_source,
                                        n_target, dense)
        delays = {name: _values(pathway.variables["delay"], len(i)) for name, pathway in pathways.items()}
        longest = max([d.max() for d in delays.values() if len(d)], default=0.0)
        max_delay = quantity_text(longest, brian2.second.dim, f"{syn.name}.delay")
        delays = {name: _in_layout(_compact(d, brian2.second.dim, f"{syn.name}.{name}.delay"), n_source, n_target,
                                     dense) for name, d in delays.items() if np.any(d)}
        synapse = SynapseModel(model_text, _single(on_pre, "pre"), _single(on_post, "post"), constants,
                               self._method(syn), on_event)
        return Projection(syn.name, source.name, target.name, synapse,
                          i=() if dense else i, j=() if dense else j, values=values,
                          delays=delays.get("pre", "0*ms") if set(delays) <= {"pre"} else delays, max_delay=max_delay,
                          links=links)
    def _whole(self, syn, group, code):
        """The group a synapse connects, a subgroup's whole group (synapse indices address whole groups)."""
        if not isinstance(group, Subgroup):
            return group
        if {"i", "j"} & get_identifiers(code):
            self.fail(syn, f"code reading i or j on the subgroup {group.name!r} (indices would change meaning)")
        return group.source

    def _event_monitor(self, monitor):
        """Spikes are always recorded, custom events of a whole group as RunSettings.events; values at events are
        not, which is said."""
        if monitor.event != "spike":
            if isinstance(monitor.source, Subgroup) or not isinstance(monitor.source, NeuronGroup):
                self.fail(monitor, f"recording the event {monitor.event!r} of {monitor.source.name!r} (events of a "
                                   "whole NeuronGroup are imported)")
            self.events.append(f"{monitor.source.name}.{monitor.event}")
        values = sorted(set(monitor.record_variables) - {"i", "t"})
        if values:
            warnings.warn(f"{self.path.name}: {type(monitor).__name__} {monitor.name!r} records {values} at spikes; "
                          "imported as its spikes only (record the variables with a StateMonitor)", stacklevel=2)

    def _records(self, monitor):
        """The record keys of a StateMonitor: its variables of the elements it records, on its clock."""
        every = self._steps(monitor)
        period = "" if every == 1 else " every " + quantity_text(float(monitor.clock.dt_), brian2.second.dim,
                                                                 f"{monitor.name}.dt")
        indices, keys = np.asarray(monitor.record, dtype=np.int64), []
        for variable in monitor.record_variables:
            owner, name, selection = self._recorded(monitor, variable, indices)
            keys += [] if selection is None else [f"{owner.name}.{name}{selection}{period}"]
        return keys

    def _recorded(self, monitor, variable, indices):
        """(owner, variable, selection text) a monitor records of a variable: a subgroup's as its whole group's
        elements, a neuron variable read through synapses (`g` for `g_post`) as the neurons' of those synapses;
        selection None for no element."""
        source = monitor.source
        if isinstance(source, (PoissonGroup, SpikeGeneratorGroup)):
            warnings.warn(f"{self.path.name}: {type(monitor).__name__} {monitor.name!r} records {variable!r} of the "
                          f"spike source {source.name!r}; not imported (its spikes are recorded)", stacklevel=2)
            return source, variable, None
        if isinstance(source, Synapses) and source.variables.indices[variable] in ("_postsynaptic_idx",
                                                                                    "_presynaptic_idx"):
            side = "_synaptic_post" if source.variables.indices[variable] == "_postsynaptic_idx" else "_synaptic_pre"
            neurons = source.target if side == "_synaptic_post" else source.source
            indices = np.asarray(source.variables[side].get_value(), dtype=np.int64)[indices]
            return self._recorded_group(neurons, name_in(source.variables[variable], neurons), indices, False)
        return self._recorded_group(source, variable, indices, monitor.record_all)

    def _recorded_group(self, group, variable, indices, every_element):
        if isinstance(group, Subgroup):  # indices of the whole group
            group, indices, every_element = group.source, indices + group.start, False
        if not len(indices):
            return group, variable, None
        return group, variable, "" if every_element else f"[{selection_text(indices)}]"
