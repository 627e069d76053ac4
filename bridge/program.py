"""The one Brian2 lowering: a Plan as the Python statements that create its Brian2 objects.

The Brian2 backend executes the statements (brian_models/network.build); the abstract code the torch backend
runs is read from the objects they create (bridge/abstract_code.py); the export prints them as a plain Brian2
script (bridge/app/export.py). So the objects a run builds, the code torch executes and the script an export
writes cannot disagree. A statement names the values it
uses (equations, arrays, namespaces): executed, the names are bound to the values themselves (no text is
evaluated); printed, each is written as a literal, or as the description's own text where it has one (a
quantity string such as '10*ms'). Helper functions (spikebridge's Poisson draws) are real functions here:
executed, they are called; printed, their source goes into the script.

One function per construct, in Brian2's order of creation: populations, spike sources, current injections,
Poisson inputs, operations, projections, monitors.
"""
from dataclasses import dataclass

import brian2
import numpy as np
from brian2 import SpikeGeneratorGroup, StateUpdateMethod, TimedArray
from brian2.utils.stringtools import word_substitute

from bridge import brian_parse
from bridge.description import PoissonTrains, poisson_spikes
from bridge.names import record_key
from bridge.quantities import parse_quantity, quantity_text, unit_text
from bridge.user_function import UserFunction, brian2_function

TRIPLE_QUOTE = "'" * 3


@dataclass(frozen=True)
class Written:
    """A value with the text a script writes for it (the description's quantity string)."""
    value: object
    text: str


class Program:
    """Lines of Python that create Brian2 objects, the values they name, and the helpers they call."""

    def __init__(self):
        self.lines, self.values, self.helpers, self.objects, self.monitors = [], {}, [], [], []

    def value(self, value, text=None):
        """The name that stands for `value` in the lines (printed as `text`, or as a literal of the value)."""
        name = f"_value_{len(self.values)}"
        self.values[name] = value if text is None else Written(value, text)
        return name

    def add(self, line, creates=None, monitor=None):
        """A line; `creates`: the name of the Brian2 object it creates, one of the network's; `monitor`: the
        name of the monitor it creates."""
        self.lines.append(line)
        self.objects += [creates] if creates else []
        self.monitors += [monitor] if monitor else []

    def helper(self, function):
        if function not in self.helpers:
            self.helpers.append(function)

    def execute(self):
        """Run the lines: {name: object} of every name they bind."""
        scope = {**vars(brian2), "np": np, **{f.__name__: f for f in self.helpers},
                 **{name: _unwritten(value) for name, value in self.values.items()}}
        exec(compile("\n".join(self.lines), "<spikebridge Brian2 program>", "exec"), scope)  # our own lines
        return scope

    def text(self):
        """The lines as a script's statements, every value written out."""
        literals = {name: literal(value) for name, value in self.values.items()}
        return "\n".join(word_substitute(line, literals) for line in self.lines)


def _unwritten(value):
    if isinstance(value, Written):
        return value.value
    if isinstance(value, dict):
        return {key: _unwritten(item) for key, item in value.items()}
    return value


def literal(value):
    """Python code for a value: code strings quoted (several lines triple-quoted), quantities in SI units that
    read back to the same floats, arrays as np.array(...) times their unit, TimedArrays as their constructor."""
    if isinstance(value, Written):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key!r}: {literal(item)}" for key, item in value.items()) + "}"
    if isinstance(value, str):
        lines = [line.strip() for line in value.strip().splitlines()]
        return repr(lines[0] if lines else "") if len(lines) <= 1 else TRIPLE_QUOTE + "\n".join(lines) + TRIPLE_QUOTE
    if isinstance(value, TimedArray):
        values = brian2.Quantity(np.asarray(value.values), dim=value.dim)
        return f"TimedArray({literal(values)}, dt={literal(value.dt * brian2.second)})"
    if isinstance(value, brian2.Quantity) and value.ndim == 0:
        return quantity_text(value, value.dim, "value")
    if isinstance(value, (brian2.Quantity, np.ndarray)):
        numbers = f"np.array({np.asarray(value).tolist()!r})"
        dim = getattr(value, "dim", None)
        if dim is None or dim.is_dimensionless:
            return numbers
        unit = unit_text(dim)
        return f"{numbers} * {unit if unit.isidentifier() else f'({unit})'}"
    return repr(value)


def poisson_trains(name, n, rate, seed, n_steps, dt):
    """spikebridge's PoissonTrains: poisson_spikes at rate*dt (a rate, or one per step: (n_steps, 1 or n))."""
    indices, steps = poisson_spikes(n, np.asarray(rate * dt, dtype=float), n_steps, seed)
    return SpikeGeneratorGroup(n, indices, steps * dt, name=name, dt=dt)


NATIVE = ("noise", "inputs")


def program(plan, native=()):
    """The Program of a Plan. `native`: what Brian2 draws itself instead of the plan's draws, among NATIVE:
    'noise' (white noise, rand() and randn(): the model's own code), 'inputs' (PoissonTrains as Brian2's
    PoissonGroup, PoissonInputs as Brian2's PoissonInput)."""
    code = Program()
    code.add(f"dt = {code.value(plan.dt * brian2.second, plan.simulation.run.timing.dt)}")
    constructs = ((_population, plan.populations), (_source, plan.sources), (_current, plan.currents),
                  (_construct, plan.poisson_inputs), (_operation, plan.operations),
                  (_projection, plan.projections))
    for emit, elements in constructs:
        for element in elements.values():
            emit(code, element, plan, native)
    _links(code, plan)
    _monitors(code, plan)
    return code


def _described(plan, kind, name):
    """The description's element of a plan's element."""
    return next(element for element in getattr(plan.simulation.network, kind) if element.name == name)


def _namespace(code, values, parameters):
    """A namespace's name in the lines; printed with the description's quantity strings, and user functions
    as calls of the helper that defines them."""
    written = {}
    for name, value in values.items():
        parameter = parameters.get(name)
        if isinstance(parameter, UserFunction):
            code.helper(brian2_function)
            value = Written(value, parameter.brian2_text(name))
        written[name] = Written(value, parameter) if isinstance(parameter, str) else value
    return code.value(written)


def drawn_noise(method, tables):
    """Brian2's state updater `method` (a name) with the white noise drawn in advance: each noise variable's
    `xi = dt**.5 * randn()` of its code reads the standard normal of the TimedArray tables[xi] (t, i) instead."""
    def integrate(equations, variables=None, method_options=None):
        code = StateUpdateMethod.apply_stateupdater(equations, variables, method)
        lines = [line.replace("randn()", f"{tables[line.split('=')[0].strip()]}(t, i)") if "randn()" in line
                 else line for line in code.splitlines()]
        return "\n".join(lines)
    integrate.__name__ = f"{method} (white noise drawn in advance)"
    return integrate


def _population(code, population, plan, native):
    model, native_noise = population.model, "noise" in native
    lowered = model if native_noise else population
    namespace = brian_parse.brian_namespace(model.parameters) if native_noise else population.namespace
    method = repr(model.method)
    if population.noise and not native_noise:
        code.helper(drawn_noise)
        method = f"drawn_noise({method}, {code.value(population.noise)})"
    refractory = brian_parse.refractory(model.refractory)
    refractory = code.value(refractory, model.refractory if isinstance(refractory, brian2.Quantity) else None)
    events = f", events={code.value(dict(model.events))}" if model.events else ""
    code.add(f"{population.name} = NeuronGroup({population.n}, {code.value(model.equations)}, "
             f"threshold={code.value(lowered.threshold or None)}, "
             f"reset={code.value(lowered.reset if model.threshold else None)}, refractory={refractory}, "
             f"method={method}, namespace={_namespace(code, namespace, model.parameters)}, "
             f"name={population.name!r}{events}, dt=dt)", creates=population.name)
    for event, statements in model.run_on_event.items():
        code.add(f"{population.name}.run_on_event({event!r}, {code.value(statements)})")
    given = _described(plan, "populations", population.name).initial
    dims = brian_parse.equations(model.equations)
    for variable, values in population.initial.items():
        value = brian2.Quantity(_uniform(values), dim=dims[variable].dim)
        text = given[variable] if isinstance(given[variable], str) else None
        code.add(f"{population.name}.{variable} = {code.value(value, text)}")


def _uniform(values):
    """Per-element values as one value when every element holds it (a shared variable takes no array)."""
    return values[0] if len(values) and np.all(values == values[0]) else values


def _source(code, source, plan, native):
    described = _described(plan, "sources", source.name)
    if isinstance(described, PoissonTrains) and "inputs" in native:  # Brian2's own draws
        rate = described.rate
        if isinstance(rate, str):
            rates, namespace = code.value(parse_quantity(rate, "rate"), rate), "None"
        else:
            rates = repr(f"{source.name}_rates(t{', i' if np.ndim(rate.values) == 2 else ''})")
            namespace = code.value({f"{source.name}_rates": brian_parse.brian_timed_array(rate)})
        code.add(f"{source.name} = PoissonGroup({source.n}, {rates}, namespace={namespace}, name={source.name!r}, "
                 "dt=dt)", creates=source.name)
        return
    if isinstance(described, PoissonTrains):
        code.helper(poisson_spikes)
        code.helper(poisson_trains)
        rate = code.value(parse_quantity(described.rate, "rate"), described.rate) if isinstance(described.rate, str) \
            else code.value(brian2.Quantity(described.rates(plan.dt, plan.n_steps), dim=brian2.Hz.dim))
        code.add(f"{source.name} = poisson_trains({source.name!r}, {source.n}, {rate}, {described.seed}, "
                 f"{plan.n_steps}, dt)", creates=source.name)
        return
    times = brian2.Quantity(np.asarray(described.times, dtype=float), dim=brian2.second.dim)
    code.add(f"{source.name} = SpikeGeneratorGroup({source.n}, {code.value(np.asarray(described.indices))}, "
             f"{code.value(times)}, name={source.name!r}, dt=dt)", creates=source.name)


def _current(code, current, plan, native):
    """A CurrentInjection: a TimedArray of one row per step, set before the state update."""
    dim = brian_parse.equations(plan.populations[current.target].model.equations)[current.variable].dim
    values = TimedArray(brian2.Quantity(current.values, dim=dim), dt=plan.dt * brian2.second)
    code.add(f"{current.target}.namespace['{current.name}_values'] = {code.value(values)}")
    code.add(f"{current.name} = {current.target}.run_regularly('{current.variable} = {current.name}_values(t, i)', "
             f"when='before_groups', name={current.name!r}, dt=dt)", creates=current.name)


def _construct(code, entry, plan, native):
    """The plan entry of a construct module (bridge/constructs/): the statements it adds itself."""
    entry.brian2(code, plan, native)


def _operation(code, operation, plan, native):
    """An Operation: run_regularly on the target (or the subgroup it names); the plan's draws in the target's
    namespace."""
    described, n, native_noise = operation.operation, plan.populations[operation.target].n, "noise" in native
    if not native_noise and operation.namespace:
        code.add(f"{operation.target}.namespace.update({code.value(operation.namespace)})")
    whole = (operation.start, operation.stop) == (0, n)
    group = operation.target if whole else f"{operation.target}[{operation.start}:{operation.stop}]"
    period = code.value(operation.period_steps * plan.dt * brian2.second, described.dt) if described.dt else "dt"
    statements = code.value(described.code if native_noise else operation.code)
    code.add(f"{operation.name} = {group}.run_regularly({statements}, "
             f"dt={period}, when={described.when!r}, name={operation.name!r})", creates=operation.name)


def _projection(code, proj, plan, native):
    synapse = proj.synapse
    method = f", method={synapse.method!r}" if synapse.method else ""
    on_event = f", on_event={code.value(dict(synapse.on_event))}" if synapse.on_event else ""
    namespace = _namespace(code, proj.namespace, synapse.parameters)
    code.add(f"{proj.name} = Synapses({proj.source}, {proj.target}, model={code.value(synapse.model)}, "
             f"on_pre={code.value(synapse.on_pre or None)}, on_post={code.value(synapse.on_post or None)}, "
             f"namespace={namespace}, name={proj.name!r}{method}{on_event}, dt=dt)", creates=proj.name)
    code.add(f"{proj.name}.connect(i={code.value(proj.i)}, j={code.value(proj.j)})")
    given, dims = _described(plan, "projections", proj.name).values, brian_parse.equations(synapse.model)
    for variable, values in proj.values.items():
        text = given[variable] if isinstance(given[variable], str) else None
        value = brian2.Quantity(_uniform(values), dim=dims[variable].dim)
        code.add(f"{proj.name}.{variable} = {code.value(value, text)}")
    for name, pathway in proj.pathways.items():
        if np.any(pathway.delay_steps):  # whole steps: Brian2 rounds d/dt + 0.5 of an exact multiple, the same step
            code.add(f"{proj.name}.{name}.delay = {code.value(pathway.delay_steps)} * dt")


def _links(code, plan):
    """The linked variables of populations and projections, once every population and synapse exists."""
    net = plan.simulation.network
    for element in (*net.populations, *net.projections):
        for variable, link in element.links.items():
            owner, name = record_key(link)
            code.add(f"{element.name}.{variable} = linked_var({owner}, {name!r})")


def _monitors(code, plan):
    """A SpikeMonitor of every population with a threshold, an EventMonitor of each custom event recorded; a
    StateMonitor of each recorded population, order 1: after the operations of the 'start' slot (order 0).
    Brian2 names them in the order they are created (an import reads records in that order)."""
    for population in plan.populations.values():
        if population.model.threshold:
            name = brian_parse.monitor_name("spikes", population.name)
            code.add(f"{name} = SpikeMonitor({population.name})", monitor=name)
    for key in plan.simulation.run.events:
        population, event = record_key(key)
        name = brian_parse.event_monitor_name(population, event)
        code.add(f"{name} = EventMonitor({population}, {event!r}, name={name!r})", monitor=name)
    for name, (owner, indices, every, variables) in state_monitors(plan).items():
        record = "True" if indices is None else code.value(np.asarray(indices))
        period = "" if every == 1 else f", dt={every}*dt"
        code.add(f"{name} = StateMonitor({owner}, {list(dict.fromkeys(variables.values()))!r}, record={record}, "
                 f"order=1{period})", monitor=name)


def state_monitors(plan):
    """The StateMonitors of a plan's records, one per owner, selection and period: {name: (owner, indices or
    None, steps between records, {record key: variable})}, named 'state_<owner>', then 'state_<owner>_1', ..."""
    selections = {}
    for key, recording in plan.records.items():
        indices = None if recording.indices is None else tuple(recording.indices.tolist())
        selections.setdefault((recording.owner, indices, recording.every), {})[key] = recording.variable
    monitors, per_owner = {}, {}
    for (owner, indices, every), variables in selections.items():
        k = per_owner[owner] = per_owner.get(owner, -1) + 1
        name = brian_parse.monitor_name("state", owner) + (f"_{k}" if k else "")
        monitors[name] = (owner, indices, every, variables)
    return monitors
