"""Records as Neo objects (neo.Block, the field's container for spike trains and signals): `block(records,
simulation)` gives one Segment per record (a crosscheck's Brian2 and torch runs, or the runs of a sweep), named by
its backend; in each, a SpikeTrain per neuron of every population (annotated with the population and the neuron,
times in s, t_stop the run's end) and an AnalogSignal per record key (its unit from the description, its
sampling period the recording's, one channel per element recorded, annotated with the key)."""
import numpy as np

from bridge import brian_parse
from bridge.names import record_parts
from bridge.quantities import unit_text


def block(records, simulation, name=""):
    """The neo.Block of `records` of one `simulation`."""
    import neo
    import quantities as pq

    result = neo.Block(name=name)
    network = simulation.network
    for record in records:
        segment = neo.Segment(name=record.backend)
        for population in record.spikes:
            segment.spiketrains.extend(spike_trains(record, population, network.width(population)))
        for key, values in record.traces.items():
            recording = simulation.run.recording(key, network.width(record_parts(key)[0]))
            segment.analogsignals.append(neo.AnalogSignal(
                np.asarray(values), units=_units(simulation, recording.owner, recording.variable),
                sampling_period=recording.every * record.dt * pq.s, name=key, key=key))
        result.segments.append(segment)
    return result


def spike_trains(record, population, n):
    """The neo.SpikeTrain of each of a population's `n` neurons in `record` (times in s, from 0 to the run's end),
    named population[neuron] and annotated with both."""
    import neo
    import quantities as pq

    neurons, steps = record.spikes[population]
    return [neo.SpikeTrain(steps[neurons == neuron] * record.dt * pq.s, t_stop=record.n_steps * record.dt * pq.s,
                           name=f"{population}[{neuron}]", population=population, neuron=neuron)
            for neuron in range(n)]


def _units(simulation, owner, variable):
    """The unit of a recorded variable, as quantities reads it (Brian2's lastspike in seconds, not_refractory
    dimensionless)."""
    network = simulation.network
    population = next((p for p in network.populations if p.name == owner), None)
    equations = brian_parse.equations(population.model.equations if population else
                                      next(p for p in network.projections if p.name == owner).synapse.model)
    if variable in equations.names:
        text = unit_text(equations[variable].dim)
    else:
        text = "second" if variable == "lastspike" else "1"
    return "dimensionless" if text == "1" else text
