"""Brian2 used as a library: its equation parser and unit checker read our descriptions. Validation builds
Brian2 objects of one model at a time here to check them; a run's objects come from the plan's Brian2 program
(bridge/program.py)."""
import functools
import gc

import brian2
import numpy as np
from brian2 import Equations, NeuronGroup, SpikeGeneratorGroup, Synapses, second
from brian2.equations.equations import BOOLEAN, INTEGER

from bridge.errors import DescriptionError
from bridge.quantities import parse_quantity, si_value, unit_text
from bridge.user_function import UserFunction

# Validation builds Brian2 objects only to check them; Brian2 need not warn that they were never run.
brian2.BrianLogger.suppress_name("unused_brian_object")


MONITOR_KINDS = ("spikes", "state")  # spikebridge's Brian2 monitors of a population: SpikeMonitor, StateMonitor


def monitor_name(kind, population):
    """The name of spikebridge's Brian2 monitor of a population, `kind` one of MONITOR_KINDS."""
    return f"{kind}_{population}"


def event_monitor_name(population, event):
    """The name of spikebridge's Brian2 EventMonitor of a population's custom event."""
    return f"events_{population}_{event}"


def brian_namespace(parameters):
    """{name: Brian2 Quantity, TimedArray or Function} of a model's parameters."""
    return {name: _brian_parameter(name, value) for name, value in parameters.items()}


def _brian_parameter(name, value):
    if isinstance(value, UserFunction):
        return value.brian2(name)
    return brian_timed_array(value) if hasattr(value, "values") else parse_quantity(value, name)


def brian_timed_array(array):
    unit = parse_quantity(array.unit, "TimedArray.unit")
    return brian2.TimedArray(brian2.Quantity(np.asarray(array.values, dtype=float), dim=unit.dim),
                             dt=si_value(array.dt, "TimedArray.dt") * brian2.second)


def brian_arrays(arrays):
    """{name: Brian2 TimedArray} of {name: (values, seconds per row)}."""
    return {name: brian2.TimedArray(values, dt=seconds * brian2.second) for name, (values, seconds) in arrays.items()}


def refractory(text):
    """Brian2's `refractory` argument for NeuronModel.refractory: False for "", the quantity of a quantity string,
    else the expression itself (a period in time units or a condition, which Brian2 checks)."""
    if not text:
        return False
    try:
        return parse_quantity(text, "NeuronModel.refractory")
    except DescriptionError:
        return text


def neuron_group(model, n, name):
    """A Brian2 NeuronGroup for a NeuronModel, to check it (runs build theirs from the plan's program,
    bridge/program.py)."""
    group = NeuronGroup(n, model.equations, threshold=model.threshold or None,
                        reset=model.reset if model.threshold else None,
                        refractory=refractory(model.refractory),
                        events=dict(model.events), method=model.method, namespace=brian_namespace(model.parameters),
                        name=name)
    for event, code in model.run_on_event.items():
        group.run_on_event(event, code)
    return group


def link_to_stand_ins(group):
    """A group's (linked) variables linked to stand-in groups of the same size, so that Brian2 can check its
    code; returns the stand-ins."""
    stand_ins = []
    for name in group.equations.names:
        if "linked" in group.equations[name].flags:
            stand_in = NeuronGroup(len(group), f"{name} : {declared_type(group.equations[name])}")
            setattr(group, name, brian2.linked_var(stand_in, name))
            stand_ins.append(stand_in)
    return stand_ins


def synaptic_stand_in(synapse_model, name):
    """A NeuronGroup of one element declaring a SynapseModel's variables, in their units, for Brian2 to check the
    code of synapses onto those synapses."""
    eqs = Equations(synapse_model.model)
    lines = [f"{eq.varname} : {declared_type(eq)}" for eq in eqs.ordered if "summed" not in eq.flags]
    return NeuronGroup(1, "\n".join(lines), name=name)


def declared_type(equation):
    """What a Brian2 equation declares after the colon: its unit, or integer / boolean."""
    return {INTEGER: "integer", BOOLEAN: "boolean"}.get(equation.var_type) or unit_text(equation.dim)


def spike_source(n, name):
    return SpikeGeneratorGroup(n, [], [] * second, name=name)


def synapses(synapse_model, source, target, name):
    """Brian2 Synapses for a SynapseModel between two existing Brian2 groups (not connected), to check it."""
    method = {"method": synapse_model.method} if synapse_model.method else {}
    on_event = {"on_event": dict(synapse_model.on_event)} if synapse_model.on_event else {}
    return Synapses(source, target, model=synapse_model.model, on_pre=synapse_model.on_pre or None,
                    on_post=synapse_model.on_post or None, **method, **on_event,
                    namespace=brian_namespace(synapse_model.parameters), name=name)


def operation(group, operation):
    """An Operation as Brian2's run_regularly on `group` (or the subgroup it names), to check it."""
    start, stop = operation.neurons(len(group))
    target = group if (start, stop) == (0, len(group)) else group[start:stop]
    return target.run_regularly(operation.code, when=operation.when, name="checked_operation")


def equations(text):
    return Equations(text)


@functools.cache
def freeze_long_lived_objects():
    """Brian2's Network.run starts with a full garbage collection (to warn about objects left out of a network);
    with torch and sympy imported that scans millions of objects, ~0.2 s a run. Called before a run, this
    collects once and moves every object that exists then out of the collector's view (gc.freeze), so that
    later collections scan only newer objects (frozen objects are still freed when unreferenced; only
    reference cycles among them outlive their use)."""
    gc.collect()
    gc.freeze()


def run_checks(objects):
    """Let Brian2 check units and names of `objects` by preparing a zero-length run on the numpy target."""
    previous = brian2.prefs.codegen.target
    brian2.prefs.codegen.target = "numpy"
    try:
        freeze_long_lived_objects()
        brian2.Network(*objects).run(0 * second)
    finally:
        brian2.prefs.codegen.target = previous

