"""Values set between a script's run() calls (Brian2: `run(100*ms); G.I = 2*nA; run(100*ms)`), the whole
construct in one module: its description type and validation, its lowering, what each backend does with it,
and how it is read from a Brian2 script.

A Change sets `variable` ("owner.variable": a state variable or parameter of a population, or a variable of a
projection's synapses) to `value` (a quantity string, or one SI value per element: neuron, or synapse in the
projection's order) as run segment `segment` starts (1: the second run() of RunSettings.segments), before
anything else of that step, as Brian2 sets values between runs.
"""
import json
from dataclasses import dataclass

import numpy as np

from bridge import checks
from bridge.errors import DescriptionError
from bridge.fields import check_integer, finite_array, register, set_field
from bridge.names import record_parts
from bridge.quantities import parse_quantity, unit_text


@register
@dataclass(frozen=True)
class Change:
    """The description: see the module's docstring."""
    segment: int
    variable: str
    value: object

    def __post_init__(self):
        where = self.where
        check_integer(self.segment, f"{where}.segment", 1)
        owner, variable, selection, period = record_parts(self.variable)
        if not owner or selection or period:
            raise DescriptionError(f"{where}.variable", "expected 'owner.variable'")
        if isinstance(self.value, str):
            parse_quantity(self.value, f"{where}.value")
        else:
            set_field(self, "value", tuple(finite_array(self.value, f"{where}.value").reshape(-1).tolist()))

    @property
    def where(self):
        return f"Change {self.variable!r} (segment {self.segment})"

    def check(self, network, segments):
        """Against the network and the number of run segments: a variable the owner holds, in its units, one
        value per element."""
        owner, variable = record_parts(self.variable)[:2]
        if self.segment >= segments:
            raise DescriptionError(f"{self.where}.segment", f"{self.segment}; the run has segments 0 .. "
                                                            f"{segments - 1}, and changes start those after 0")
        projection = next((p for p in network.projections if p.name == owner), None)
        equations = projection.synapse.model if projection else network._population(
            owner, f"{self.where}.variable (a population or projection)").model.equations
        dims = checks.settable_dims(equations)
        if variable not in dims:
            raise DescriptionError(f"{self.where}.variable", f"unknown variable {variable!r}; {owner!r} has "
                                                             f"{sorted(dims)}")
        width = network.width(owner)
        if isinstance(self.value, str):
            value = parse_quantity(self.value, f"{self.where}.value")
            if value.dim != dims[variable]:
                raise DescriptionError(f"{self.where}.value", f"{self.value!r} is in {unit_text(value.dim)}; "
                                                              f"{variable} is in {unit_text(dims[variable])}")
        elif len(self.value) != width:
            raise DescriptionError(f"{self.where}.value", f"{len(self.value)} values; {owner!r} has {width} elements")

    def lower(self, start_step, width):
        owner, variable = record_parts(self.variable)[:2]
        value = float(np.asarray(parse_quantity(self.value, self.where))) if isinstance(self.value, str) else \
            self.value
        return ChangePlan(start_step, owner, variable, np.array(np.broadcast_to(np.asarray(value, float), (width,))))


@dataclass(frozen=True)
class ChangePlan:
    step: int              # the first step of its segment
    owner: str
    variable: str
    values: np.ndarray     # SI, one per element

    def brian2(self, objects):
        """Brian2, between run() calls: the values set (SI, `variable_`)."""
        setattr(objects[self.owner], f"{self.variable}_", self.values)

    def statement(self):
        """The same as a statement of an exported script."""
        return f"{self.owner}.{self.variable}_ = np.array({self.values.tolist()!r})"

    def torch(self, state):
        """torch, as the step starts: `state` (the owner's {variable: tensor}) with the values set, laid out as the
        steps leave a state (contiguous), which the compiled steps were compiled for."""
        old = state[self.variable]
        return {**state, self.variable: old.new_tensor(self.values).expand_as(old).contiguous()}


def changes_between(before, after, segment, written, where):
    """The Changes a script made between two run() calls: `before` and `after`, the Simulations read at them,
    `written` the (owner, variable) pairs it assigned to in between; each Change sets the values read at the
    later call, as the segment `segment` starts. A DescriptionError (at `where`) when the two differ in more
    than values, or a variable written is none a description can set."""
    if _without_values(before) != _without_values(after):
        raise DescriptionError(where, "the network differs from the one of the run before in more than values "
                                      "(objects, connections, code, constants or delays); only values set between "
                                      "runs can be imported")
    changes = []
    for owner, variable in sorted(written):
        values = _values(after.network, owner, variable)
        if values is None:
            raise DescriptionError(where, f"{owner}.{variable} is set before this run; only variables of "
                                          "populations and synapses can change between runs")
        changes.append(Change(segment, f"{owner}.{variable}", values))
    return changes


def _values(net, owner, variable):
    """The SI values of a settable variable of a population or projection, None for any other name."""
    for population in net.populations:
        if population.name == owner and variable in checks.settable_dims(population.model.equations):
            return population.initial_array(variable)
    for projection in net.projections:
        if projection.name == owner and variable in checks.settable_dims(projection.synapse.model):
            width = net.width(owner)
            return projection.value_array(variable, width) if variable in projection.values else np.zeros(width)
    return None


def _without_values(simulation):
    """The description as JSON data without initial values, synaptic values, spike trains' spikes, the run's
    duration, records and events recorded."""
    data = json.loads(simulation.to_json())
    for element in data["network"]["populations"] + data["network"]["projections"]:
        element.pop("initial", None), element.pop("values", None)
    data["run"].pop("duration"), data["run"].pop("record"), data["run"].pop("events")
    for source in data["network"]["sources"]:  # the spikes a run reaches (a script's later runs reach more)
        source.pop("indices", None), source.pop("times", None)
    return data
