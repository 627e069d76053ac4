"""What learns by gradient, chosen by name: torch_models.compile(simulation, learn={...}) and `spikebridge fit`.

`learn` maps "owner.name" to how it learns: "shared" (one value for every element), "per_element" (one per neuron
of a population, one per synapse of a projection), or {"shared": bool, "low": quantity, "high": quantity}
with bounds that the values keep (by reparametrisation, torch_models/learning.py). A name may be
- a parameter (a quantity) of a population's NeuronModel or a projection's SynapseModel: shared, it stays a
  parameter; per element, the description's learnable form (`learnable_form`) makes it a variable of the model,
  `name : unit (constant)`, starting at the parameter's value: both backends run that form, so Brian2 runs
  exactly the model torch learned;
- a population's state variable: its initial values;
- a projection's synaptic variable: its values;
- a projection's `delay`: the delays of its pathway 'pre' (static delays; the module says how they are rounded
  to the whole steps a run uses, and gives them so to `written_back`);
- a TimedArray parameter: every value of it (per element: one per row, or per row and neuron).
Values are SI floats; `written_back` puts learned values into the learnable form.
"""
import dataclasses
from dataclasses import dataclass

import numpy as np
from brian2 import Equations, second

from bridge.errors import DescriptionError
from bridge.names import record_key
from bridge.quantities import parse_quantity, quantity_text, si_value, unit_text
from bridge.timed_array import TimedArray

KINDS = ("shared", "per_element")
WHAT = ("parameter", "initial", "synaptic", "delay", "timed_array")


@dataclass(frozen=True)
class Learned:
    """One thing that learns: `what` it is (WHAT) of `owner`, shared or per element, its bounds (SI, or None),
    its dimension and its values at the start, (1,) when shared, one per element otherwise."""
    owner: str
    name: str
    what: str
    shared: bool
    low: object
    high: object
    dim: object
    start: np.ndarray

    @property
    def key(self):
        return f"{self.owner}.{self.name}"

    @property
    def replaces_parameter(self):
        """A shared parameter or a TimedArray: its learned value takes the parameter's place."""
        return self.what == "timed_array" or self.what == "parameter" and self.shared

    @property
    def becomes_variable(self):
        """A parameter learned per element: a variable of the model in the learnable form."""
        return self.what == "parameter" and not self.shared


def learned(simulation, learn):
    """The Learned items of a `learn` mapping, checked against the simulation; errors name `learn[key]`."""
    if not isinstance(learn, dict) or not learn:
        raise DescriptionError("learn", f"{learn!r}; give {{'owner.name': 'shared' or 'per_element' or "
                                        "{'shared': ..., 'low': ..., 'high': ...}}")
    return tuple(_learned(simulation.network, key, how) for key, how in learn.items())


def _learned(network, key, how):
    where, given = f"learn[{key!r}]", how
    if isinstance(how, str):
        how = {"shared": how == "shared"} if how in KINDS else None
    if not isinstance(how, dict) or set(how) - {"shared", "low", "high"} or not isinstance(how.get("shared"), bool):
        raise DescriptionError(where, f"{given!r}; give one of {KINDS} or {{'shared': true/false, 'low': quantity, "
                                      "'high': quantity}")
    owner, name = record_key(key) if isinstance(key, str) and "." in key else (None, None)
    population = next((p for p in network.populations if p.name == owner), None)
    projection = next((p for p in network.projections if p.name == owner), None)
    if population is not None:
        what, dim, values = _of_population(population, name, where)
    elif projection is not None:
        what, dim, values = _of_projection(network, projection, name, where)
    else:
        raise DescriptionError(where, f"names no population or projection; give 'owner.name' with owner one of "
                                      f"{sorted(p.name for p in (*network.populations, *network.projections))}")
    if what == "timed_array" and how["shared"]:
        raise DescriptionError(where, "'shared' for a TimedArray; its values learn one by one: 'per_element'")
    low, high = (_bound(how.get(side), dim, f"{where}.{side}") for side in ("low", "high"))
    start = values[:1] if how["shared"] else values
    if how["shared"] and np.any(values != values[0]):
        raise DescriptionError(where, "'shared' for values that differ between elements; learn them 'per_element'")
    if (low is not None and np.any(start <= low)) or (high is not None and np.any(start >= high)) or \
            (low is not None and high is not None and low >= high):
        raise DescriptionError(where, f"values from {start.min():g} to {start.max():g} (SI) outside the bounds "
                                      f"({low}, {high}); the bounds must hold the start values strictly inside")
    return Learned(owner, name, what, how["shared"], low, high, dim, start.astype(float))


def _of_population(population, name, where):
    model = population.model
    if name in model.parameters:
        return _parameter(model.parameters[name], population.n, where)
    equations = Equations(model.equations)
    if name in equations.names and name not in equations.subexpr_names:
        return "initial", equations[name].dim, population.initial_array(name).astype(float)
    raise DescriptionError(where, f"names no parameter or state variable of population {population.name!r}; "
                                  f"parameters {sorted(model.parameters)}, variables "
                                  f"{sorted(set(equations.names) - set(equations.subexpr_names))}")


def _of_projection(network, projection, name, where):
    synapse = projection.synapse
    n_synapses = network.width(projection.name)
    if name == "delay":
        if projection.delay_mode != "static" or isinstance(projection.delays, dict):
            raise DescriptionError(where, f"delays of delay_mode {projection.delay_mode!r}"
                                          f"{' for several pathways' if isinstance(projection.delays, dict) else ''}"
                                          "; static delays of the pathway 'pre' learn")
        return "delay", second.dim, projection.delay_array(n_synapses)
    if name in synapse.parameters:
        return _parameter(synapse.parameters[name], n_synapses, where)
    equations = Equations(synapse.model)
    variables = [eq.varname for eq in equations.ordered if eq.expr is None or eq.type == "differential equation"]
    if name in variables and "summed" not in equations[name].flags:
        values = projection.value_array(name, n_synapses) if name in projection.values else np.zeros(n_synapses)
        return "synaptic", equations[name].dim, values
    raise DescriptionError(where, f"names no parameter or synaptic variable of projection {projection.name!r}; "
                                  f"parameters {sorted(synapse.parameters)}, variables {sorted(variables)}")


def _parameter(value, n, where):
    """(what, dim, values) of a parameter: a quantity, one value per element, or a TimedArray's values."""
    if isinstance(value, TimedArray):
        return "timed_array", parse_quantity(value.unit, where).dim, np.asarray(value.values, dtype=float).reshape(-1)
    if not isinstance(value, str):
        raise DescriptionError(where, f"a {type(value).__name__}; quantities and TimedArrays learn (a function "
                                      "does not)")
    quantity = parse_quantity(value, where)
    return "parameter", quantity.dim, np.full(n, float(np.asarray(quantity)))


def _bound(text, dim, where):
    return None if text is None else _si(text, dim, where)


def learnable_form(simulation, items):
    """The simulation with every parameter learned per element turned into a variable of its model, starting at
    the parameter's value."""
    return _replaced(simulation, {item.key: item.start for item in items if item.becomes_variable}, items)


def written_back(simulation, items, values):
    """The learnable form `simulation` with the learned `values` {key: SI values, (1,) when shared} in place:
    shared parameters as quantity strings, initial values, per-element parameters and synaptic values as
    arrays."""
    return _replaced(simulation, values, items)


def _replaced(simulation, values, items):
    by_owner = {}
    for item in items:
        if item.key in values:
            by_owner.setdefault(item.owner, []).append((item, np.asarray(values[item.key], dtype=float)))
    network = simulation.network
    populations = tuple(_population(p, by_owner.get(p.name, ())) for p in network.populations)
    projections = tuple(_projection(p, by_owner.get(p.name, ()), _layout(network, p)) for p in network.projections)
    return dataclasses.replace(simulation, network=dataclasses.replace(network, populations=populations,
                                                                       projections=projections))


def _population(population, learned_values):
    model, initial = population.model, dict(population.initial)
    for item, values in learned_values:
        if item.replaces_parameter:
            model = dataclasses.replace(model, parameters=_with(model.parameters, item, values))
            continue
        if item.becomes_variable and item.name in model.parameters:
            model = dataclasses.replace(model, equations=_declared(model.equations, item),
                                        parameters=_without(model.parameters, item.name))
        initial[item.name] = _text(item, values) if item.shared else np.broadcast_to(values, (population.n,))
    return dataclasses.replace(population, model=model, initial=initial)


def _layout(network, projection):
    """The shape of a projection's per-synapse values in the description: (n_source, n_target) when dense."""
    return (network.width(projection.source), network.width(projection.target)) if projection.dense else (-1,)


def _projection(projection, learned_values, layout):
    synapse, values_of = projection.synapse, dict(projection.values)
    for item, values in learned_values:
        if item.replaces_parameter:
            synapse = dataclasses.replace(synapse, parameters=_with(synapse.parameters, item, values))
            continue
        if item.what == "delay":  # whole steps, up to max_delay rounded to steps: max_delay holds them all
            longest = max(si_value(projection.max_delay, "max_delay"), float(values.max()))
            projection = dataclasses.replace(projection, delays=_text(item, values) if item.shared else
                                             values.reshape(layout), max_delay=_text(item, np.array([longest])))
            continue
        if item.becomes_variable and item.name in synapse.parameters:
            synapse = dataclasses.replace(synapse, model=_declared(synapse.model, item),
                                          parameters=_without(synapse.parameters, item.name))
        values_of[item.name] = _text(item, values) if item.shared else values.reshape(layout)
    return dataclasses.replace(projection, synapse=synapse, values=values_of)


def _with(parameters, item, values):
    """`parameters` with a learned shared parameter's quantity, or a learned TimedArray's values."""
    old = parameters[item.name]
    value = dataclasses.replace(old, values=values.reshape(np.shape(old.values))) if item.what == "timed_array" \
        else _text(item, values)
    return {**parameters, item.name: value}


def _declared(equations, item):
    return f"{equations}\n{item.name} : {unit_text(item.dim)} (constant)"


def _without(parameters, name):
    return {key: value for key, value in parameters.items() if key != name}


def _text(item, values):
    return quantity_text(values.reshape(-1)[0], item.dim, f"learn[{item.key!r}]")


def start_values(items, starts):
    """{key: (starts, 1 or elements) SI values} of `starts` {key: a value per start}, each a quantity string (for
    every element) or SI numbers (one per element); every key learns, every list is as long, every value lies
    within its item's bounds. None without starts."""
    if not starts:
        return None
    by_key = {item.key: item for item in items}
    counts = {len(values) if isinstance(values, (list, tuple, np.ndarray)) else None for values in starts.values()}
    if None in counts or len(counts) != 1 or 0 in counts:
        raise DescriptionError("starts", "give each key a non-empty list of values, one per start, all as long")
    values = {}
    for key, given in starts.items():
        where = f"starts[{key!r}]"
        if key not in by_key:
            raise DescriptionError(where, f"names nothing that learns; learn has {sorted(by_key)}")
        item = by_key[key]
        rows = [np.full(len(item.start), _si(value, item.dim, where)) if isinstance(value, str) else
                np.asarray(value, dtype=float).reshape(-1) for value in given]
        if any(len(row) != len(item.start) for row in rows):
            raise DescriptionError(where, f"give a quantity or {len(item.start)} SI values per start")
        array = np.stack(rows)
        if (item.low is not None and np.any(array <= item.low)) or \
                (item.high is not None and np.any(array >= item.high)):
            raise DescriptionError(where, f"values outside the bounds ({item.low}, {item.high}) (SI)")
        values[key] = array
    return values


def _si(text, dim, where):
    quantity = parse_quantity(text, where)
    if quantity.dim != dim:
        raise DescriptionError(where, f"{text!r} is not in the unit of what learns ({unit_text(dim)})")
    return float(np.asarray(quantity))
