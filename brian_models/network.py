"""A Simulation compiled to Brian2 objects, run on the numpy, cython or cpp_standalone target."""
import os
import tempfile

import brian2
import numpy as np
from brian2 import Network, SpikeMonitor, StateMonitor, TimedArray, second

from bridge import brian_parse
from bridge.record import Record

TARGETS = ("numpy", "cython", "cpp_standalone")


def build(simulation):
    """Brian2 objects for a Simulation: {name: object} plus the monitors, ready to run."""
    dt, net = simulation.dt, simulation.network
    objects = {}
    for pop in net.populations:
        group = brian_parse.neuron_group(pop.model, pop.n, pop.name, dt)
        for var, value in pop.initial.items():
            dim = group.variables[var].dim
            group.variables[var].set_value(brian_parse.parse_quantity(value, var) if isinstance(value, str)
                                           else brian2.Quantity(np.asarray(value), dim=dim))
        objects[pop.name] = group
    inputs = simulation.input_spikes()
    for source in net.sources:
        indices, steps = inputs[source.name]
        objects[source.name] = brian_parse.spike_source(source.n, source.name, indices, steps * dt, dt)
    for current in net.currents:
        group = objects[current.target]
        dim = group.variables[current.variable].dim
        values = TimedArray(brian2.Quantity(current.array(simulation.run.n_steps), dim=dim), dt=dt * second,
                            name=f"{current.name}_values")
        group.namespace[values.name] = values  # run_regularly resolves names in the group's namespace
        objects[current.name] = group.run_regularly(f"{current.variable} = {values.name}(t, i)",
                                                    when="before_groups", name=current.name)
    for proj in net.projections:
        syn = brian_parse.synapses(proj.synapse, objects[proj.source], objects[proj.target], proj.name, dt)
        i, j = simulation.synapses(proj)
        syn.connect(i=i, j=j)
        for name in proj.values:
            syn.variables[name].set_value(brian2.Quantity(proj.value_array(name, len(i)),
                                                          dim=syn.variables[name].dim))
        if proj.synapse.on_pre:
            # whole steps by the declared rule; Brian2 then rounds d/dt + 0.5 of an exact multiple: the same step
            syn.pre.delay = simulation.delay_steps(proj) * dt * second
        objects[proj.name] = syn
    monitors = {f"spikes_{p.name}": SpikeMonitor(objects[p.name], name=f"spikes_{p.name}") for p in net.populations}
    by_population = {}
    for key in simulation.run.record:
        population, variable = key.split(".")
        by_population.setdefault(population, []).append(variable)
    for population, variables in by_population.items():
        monitors[f"state_{population}"] = StateMonitor(objects[population], variables, record=True,
                                                       name=f"state_{population}")
    return objects, monitors


def run(simulation, target="numpy", build_dir=None):
    """Run a Simulation in Brian2 and return the common Record (float64, SI units)."""
    if target not in TARGETS:
        raise ValueError(f"target {target!r}; allowed: {TARGETS}")
    if target == "cpp_standalone":
        brian2.set_device("cpp_standalone", directory=build_dir or tempfile.mkdtemp(prefix="spikebridge_"),
                          build_on_run=True)
    else:
        brian2.prefs.codegen.target = target
    try:
        objects, monitors = build(simulation)
        network = Network(*objects.values(), *monitors.values())
        network.run(simulation.run.n_steps * simulation.dt * second)
        return _record(simulation, monitors)
    finally:
        if target == "cpp_standalone":
            brian2.device.reinit()
            brian2.set_device("runtime")


def _record(simulation, monitors):
    dt, n_steps = simulation.dt, simulation.run.n_steps
    spikes = {}
    for pop in simulation.network.populations:
        monitor = monitors[f"spikes_{pop.name}"]
        steps = np.rint(np.asarray(monitor.t_) / dt).astype(np.int64)
        spikes[pop.name] = (np.asarray(monitor.i[:], dtype=np.int64), steps)
    traces = {}
    for key in simulation.run.record:
        population, variable = key.split(".")
        traces[key] = np.asarray(getattr(monitors[f"state_{population}"], variable + "_")).T.astype(np.float64)
    return Record("brian2", dt, n_steps, spikes, traces)
