"""The description: lossless JSON round trip, and clear errors naming the field for bad input."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from bridge.plan import lower
from bridge import library
from bridge.description import (NeuronModel, Network, Population, Projection, RunSettings, Simulation, SpikeTrains,
                                SynapseModel, Timing, from_json, to_json)
from bridge.errors import DescriptionError


def _spikes(n=3):
    return SpikeTrains("inp", n, indices=[0, 1], times=[1e-3, 2e-3])


def _simulation(projection, timing=Timing(), populations=None):
    populations = populations or (Population("lif", library.lif(), 4),)
    return Simulation(Network(populations, (_spikes(),), (), (projection,)), RunSettings("10*ms", timing=timing))


def _projection(**changes):
    fields = dict(name="p", source="inp", target="lif", synapse=SynapseModel("w : amp", on_pre="I_syn_post += w"),
                  i=[0, 1, 2], j=[0, 1, 3], values={"w": [1e-10, 2e-10, 3e-10]}, delays=[0.0, 1e-3, 2e-3])
    return Projection(**{**fields, **changes})


@pytest.mark.parametrize("name", sorted(library.MODELS))
def test_library_scenarios_round_trip_losslessly(name):
    simulation = library.scenario(name, seed=2)
    text = to_json(simulation)
    again = from_json(text)
    assert again == simulation
    assert to_json(again) == text
    for name, source in lower(simulation).sources.items():
        assert np.array_equal(lower(again).sources[name].steps, source.steps)


def test_example_json_round_trips():
    text = Path("examples/izhikevich.json").read_text()
    simulation = from_json(text)
    assert from_json(to_json(simulation)) == simulation
    assert json.loads(to_json(simulation))["network"]["populations"][0]["model"]["method"] == "euler"


def test_unit_mismatch_in_equations_names_the_field():
    with pytest.raises(DescriptionError, match=r"NeuronModel\.equations: DimensionMismatchError: Inconsistent units"):
        NeuronModel("dv/dt = (I - v)/tau : volt\nI : amp", parameters={"tau": "10*ms"})


def test_unit_mismatch_in_threshold_and_initial_value():
    with pytest.raises(DescriptionError, match=r"NeuronModel\.threshold.*units"):
        dataclasses.replace(library.lif(), threshold="v > 1*nA")
    with pytest.raises(DescriptionError, match=r"initial\['v'\].*needs"):
        Population("lif", library.lif(), 2, initial={"v": "3*nA"})


def test_unit_mismatch_in_synaptic_code():
    with pytest.raises(DescriptionError, match=r"Projection 'p'\.synapse\.on_pre.*DimensionMismatchError"):
        _simulation(_projection(synapse=SynapseModel("w : amp", on_pre="v_post += w")))


def test_unknown_variable_in_code():
    with pytest.raises(DescriptionError, match=r"Projection 'p'\.synapse\.on_pre: unknown identifier: g_post"):
        _simulation(_projection(synapse=SynapseModel("w : amp", on_pre="g_post += w")))
    with pytest.raises(DescriptionError, match=r"NeuronModel\.reset: unknown identifier: .*\"V_rest\" could not be resolved"):
        dataclasses.replace(library.lif(), reset="v = V_rest")
    with pytest.raises(DescriptionError, match=r"RunSettings\.record\['lif\.g'\].*unknown variable"):
        Simulation(Network((Population("lif", library.lif(), 2),)), RunSettings("1*ms", record=["lif.g"]))


def test_negative_delay():
    with pytest.raises(DescriptionError, match=r"Projection 'p'\.delays: negative delay -0\.001 s; .*\[0, max_delay\]"):
        _projection(delays=[0.0, -1e-3, 0.0])


def test_delay_above_declared_maximum():
    with pytest.raises(DescriptionError, match=r"Projection 'p'\.delays: delay 0\.03 s exceeds max_delay = 20\*ms"):
        _projection(delays=[0.0, 0.03, 0.0])


def test_nan_parameter():
    with pytest.raises(DescriptionError, match=r"NeuronModel\.parameters\['tau_m'\].*NaN"):
        dataclasses.replace(library.lif(), parameters={**library.lif().parameters, "tau_m": "nan*ms"})
    with pytest.raises(DescriptionError, match=r"values\['w'\].*NaN"):
        _simulation(_projection(values={"w": [1e-10, float("nan"), 0.0]}))


def test_weight_matrix_of_wrong_shape():
    with pytest.raises(DescriptionError, match=r"values\['w'\]: shape \(4, 3\); expected \(3, 4\)"):
        _simulation(_projection(i=[], j=[], values={"w": np.zeros((4, 3))}, delays="1*ms"))
    with pytest.raises(DescriptionError, match=r"values\['w'\]: shape \(2,\); expected \(3,\)"):
        _simulation(_projection(values={"w": [1e-10, 2e-10]}))


def test_delays_not_whole_steps_under_exact_rule():
    projection = _projection(delays=[0.0, 1.05e-3, 2e-3])
    with pytest.raises(DescriptionError, match=r"delays: delay of 10\.5 steps of dt is not a whole number.*exact_steps"):
        _simulation(projection, timing=Timing(delay_rounding="exact_steps"))
    # half_up as Brian2 computes it: 1.05e-3/1e-4 is 10.499999999999998 in float64, so 10 steps
    assert list(lower(_simulation(projection)).projections[projection.name].delay_steps) == [0, 10, 20]


def test_other_bad_fields():
    with pytest.raises(DescriptionError, match=r"Timing\.schedule"):
        Timing(schedule=("start", "thresholds", "groups", "synapses", "resets", "end"))
    with pytest.raises(DescriptionError, match=r"RunSettings\.dtype.*allowed"):
        RunSettings("1*ms", dtype="float16")
    with pytest.raises(DescriptionError, match=r"unknown type 'Neuron'"):
        from_json('{"type": "Neuron"}')
    with pytest.raises(DescriptionError, match=r"unknown fields \['tau'\]"):
        from_json('{"type": "Timing", "tau": "1*ms"}')
    with pytest.raises(DescriptionError, match=r"Projection 'p'\.target: unknown name 'lfi'"):
        _simulation(_projection(target="lfi"))
    with pytest.raises(DescriptionError, match=r"same time step"):
        SpikeTrains("x", 1, indices=[0, 0], times=[1e-3, 1.04e-3]).spike_steps(1e-4, 100)
