"""Brian2 scripts in and out (bridge/app/brian2_scripts.py): an imported script runs as the script itself runs;
export -> import gives the same run back; what cannot be represented is refused, naming object and construct."""
import dataclasses
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bridge import library
from bridge.app.brian2_scripts import from_brian2
from bridge.app.export import to_brian2
from bridge.app.cli import main
from bridge.description import (NeuronModel, Network, PoissonInput, Population, Projection, RunSettings, Simulation,
                                SpikeTrains, SynapseModel, TimedArray)
from bridge.errors import DescriptionError
from bridge.plan import lower
from bridge.quantities import si_value
from brian_models.network import run as run_brian

CUBA = """
from brian2 import *
seed(4)
taum, taue, taui = 20*ms, 5*ms, 10*ms
Vt, Vr, El = -50*mV, -60*mV, -49*mV
eqs = '''
dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
dge/dt = -ge/taue : volt
dgi/dt = -gi/taui : volt
'''
P = NeuronGroup(120, eqs, threshold='v>Vt', reset='v = Vr', refractory=5*ms, method='exact', name='P')
P.v = 'Vr + rand() * (Vt - Vr)'
we, wi = (60*0.27/10)*mV, (-20*4.5/10)*mV
Ce = Synapses(P, P, on_pre='ge += we', name='Ce')
Ci = Synapses(P, P, on_pre='gi += wi', name='Ci')
Ce.connect('i<96', p=0.05)
Ci.connect('i>=96', p=0.05)
Ce.delay = '1*ms + rand()*2*ms'
drive = PoissonGroup(20, 80*Hz, name='drive')
kick = SpikeGeneratorGroup(2, [0, 1, 0], [1, 2, 3.05]*ms, name='kick')
Cd = Synapses(drive, P, 'w : volt', on_pre='v += w', name='Cd')
Cd.connect(p=0.5)
Cd.w = 'rand()*2*mV'
Ck = Synapses(kick, P, on_pre='v += 5*mV', delay=0.5*ms, name='Ck')
Ck.connect(j='i')
spikes = SpikeMonitor(P)
state = StateMonitor(P, ['v', 'ge'], record=True)
run(60*ms)
"""


def _script(tmp_path, text, name="model.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_imported_script_runs_as_the_script_itself(tmp_path):
    path = _script(tmp_path, CUBA.replace("PoissonGroup(20, 80*Hz, name='drive')",
                                          "SpikeGeneratorGroup(20, [3, 7, 7, 19], [4, 9, 20, 31]*ms, name='drive')"))
    simulation = from_brian2(path)
    net = simulation.network
    assert [p.name for p in net.populations] == ["P"] and simulation.run.n_steps == 600
    assert net.populations[0].model.parameters["taum"] == "0.02*second"
    assert net.populations[0].model.refractory == "0.005*second"
    assert simulation.run.record == ("P.v", "P.ge")
    ce = next(p for p in net.projections if p.name == "Ce")
    assert ce.synapse.parameters == {"we": repr(60 * 0.27 / 10 * 1e-3) + "*volt"}
    assert np.all((np.asarray(ce.delays) >= 1e-3) & (np.asarray(ce.delays) <= 3e-3))
    ck = next(p for p in net.projections if p.name == "Ck")
    assert ck.delays == "0.0005*second" and list(ck.j) == [0, 1]
    namespace = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # the script itself, run by Brian2
    record = run_brian(simulation)
    steps = np.rint(np.asarray(namespace["spikes"].t_) / simulation.dt).astype(int)
    assert len(steps) >= 50
    assert set(zip(namespace["spikes"].i[:].tolist(), steps.tolist())) == record.spike_set("P")
    assert np.array_equal(np.asarray(namespace["state"].v_).T, record.traces["P.v"])


def test_poisson_group_becomes_seeded_poisson_trains_and_crosschecks(tmp_path, paired):
    simulation = from_brian2(_script(tmp_path, CUBA))
    drive = next(s for s in simulation.network.sources if s.name == "drive")
    assert (type(drive).__name__, drive.rate, drive.seed) == ("PoissonTrains", "80.0*hertz", 0)
    brian_record, torch_record, report = paired(simulation)
    assert brian_record.count("P") >= 50 and report.identical and report.passed


# one model per scenario; the delay circuit's dynamic delays are refused (below)
EXPORTED = sorted({scenario: name for name, (_, scenario) in reversed(library.MODELS.items())
                   if name != "delay_circuit"}.values())


@pytest.mark.parametrize("name", EXPORTED)
def test_export_then_import_gives_the_same_run(name, tmp_path):
    short = {} if library.MODELS[name][1] is library.MODELS["spiking_net"][1] else {"duration": "50*ms"}
    simulation = library.scenario(name, seed=2, **short)
    path = _script(tmp_path, to_brian2(simulation))
    again = from_brian2(path)
    plan, plan_again = lower(simulation), lower(again)
    assert plan.records == plan_again.records and plan.n_steps == plan_again.n_steps
    for proj in plan.projections.values():
        other = plan_again.projections[proj.name]
        assert np.array_equal(proj.delay_steps, other.delay_steps) and np.array_equal(proj.j, other.j)
        for var, values in proj.values.items():
            np.testing.assert_array_equal(values, other.values[var])
    for source in plan.sources.values():
        assert np.array_equal(source.steps, plan_again.sources[source.name].steps)
    first, second = run_brian(simulation), run_brian(again)
    assert sum(map(first.count, first.spikes)) > 0
    for pop in first.spikes:
        assert first.spike_set(pop) == second.spike_set(pop)
    for key, trace in first.traces.items():
        assert np.array_equal(trace, second.traces[key]), key


def test_exported_script_runs_without_spikebridge(tmp_path):
    simulation = library.scenario("penalty", seed=1, duration="100*ms")
    path = _script(tmp_path, to_brian2(simulation), "penalty.py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", str(path)], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert f"penalty {run_brian(simulation).count('penalty')} spikes" in done.stdout
    assert not any(line.startswith(("import bridge", "from bridge", "import torch")) for line in
                   path.read_text().splitlines())


def test_dynamic_delays_are_refused_by_the_export():
    with pytest.raises(DescriptionError, match="'plastic_input'.delay_mode: 'dynamic'"):
        to_brian2(library.scenario("delay_circuit"))


UNSUPPORTED = {
    "network_operation": ("G = NeuronGroup(2, 'dv/dt = -v/(10*ms) : 1', name='G')\n"
                          "@network_operation\ndef poke():\n    G.v += 1\n", "NetworkOperation"),
    "run_regularly_slot": ("G = NeuronGroup(2, 'dv/dt = -v/(10*ms) : 1', name='G')\n"
                           "G.run_regularly('v += 0.1', when='thresholds', name='poke')\n",
                           "G': run_regularly 'poke' in slot 'thresholds'"),
    "record_before_operation": ("G = NeuronGroup(2, 'dv/dt = -v/(10*ms) : 1', name='G')\n"
                                "G.run_regularly('v += 0.1', name='poke')\n"
                                "M = StateMonitor(G, 'v', record=True, name='a_monitor')\n",
                                "'a_monitor': recording before the run_regularly 'poke'"),
    "function_that_branches": ("@check_units(x=1, result=1)\ndef ramp(x):\n    return x if x > 0 else 0*x\n"
                               "G = NeuronGroup(2, 'dv/dt = (ramp(v) - v)/(10*ms) : 1', name='G')\n",
                               "'G': the function 'ramp': it branches on its arguments"),
    "function_of_math": ("import math\n@check_units(x=1, result=1)\ndef grow(x):\n    return math.exp(x)\n"
                         "G = NeuronGroup(2, 'dv/dt = grow(v)/(10*ms) : 1', name='G')\n",
                         "the function 'grow': it converts its arguments to Python numbers"),
    "function_with_state": ("G = NeuronGroup(2, 'dv/dt = rand()*noisy(v)/(10*ms) : 1', name='G')\n"
                            "noisy = Function(lambda x: x, arg_units=[1], return_unit=1, stateless=False)\n",
                            "the function 'noisy': a function with state"),
    "run_on_event_slot": ("G = NeuronGroup(2, 'dv/dt = -v/(10*ms) : 1', events={'up': 'v > 1'}, name='G')\n"
                          "G.run_on_event('up', 'v = 0', when='end')\n", "run_on_event('up') out of its place"),
    "synapses_run_regularly": ("G = NeuronGroup(2, 'dv/dt = -v/(10*ms) : 1', threshold='v > 1', name='G')\n"
                               "S = Synapses(G, G, 'w : 1', on_pre='v += w', name='S')\nS.connect()\n"
                               "S.run_regularly('w *= 0.5', name='halve')\n",
                               "'S': run_regularly or custom code (CodeRunner 'halve')"),
    "event_monitor_of_a_subgroup": ("G = NeuronGroup(2, 'dv/dt = -v/(10*ms) : 1', events={'up': 'v > 1'}, "
                                    "name='G')\nM = EventMonitor(G[:1], 'up', name='M')\n",
                                    "'M': recording the event 'up' of 'G_subgroup' (events of a whole NeuronGroup"),
    "monitor_dt_not_whole_steps": ("G = NeuronGroup(2, 'dv/dt = -v/(10*ms) : 1', name='G')\n"
                                   "M = StateMonitor(G, 'v', record=[0], dt=0.15*ms, name='M')\n",
                                   "'M': a dt of 150. us that is not a whole number of steps"),
    "groups_with_different_dt": ("G = NeuronGroup(2, 'dv/dt = -v/(10*ms) : 1', name='G')\n"
                                 "H = NeuronGroup(2, 'dv/dt = -v/(10*ms) : 1', dt=0.2*ms, name='H')\n",
                                 "clocks: groups run with different dt"),
    "poisson_rates_expression": ("P = PoissonGroup(2, rates='(1 + t/second)*Hz', name='P')\n",
                                 "'P': rates given by an expression ('(1 + t/second)*Hz'; rates of a TimedArray"),
    "link_to_a_subexpression": ("G = NeuronGroup(2, 'dv/dt = -v/(10*ms) : 1', threshold='v > 1', name='G')\n"
                                "H = NeuronGroup(1, 'x = 2*y : 1\\ny : 1', name='H')\n"
                                "S = Synapses(G, G, 'x : 1 (linked)', on_pre='v += x', name='S')\nS.connect()\n"
                                "S.x = linked_var(H, 'x')\n", "'S': the linked variable 'x' read from a subexpression"),
}


@pytest.mark.parametrize("construct", sorted(UNSUPPORTED))
def test_unsupported_constructs_are_refused_naming_object_and_construct(construct, tmp_path):
    code, message = UNSUPPORTED[construct]
    path = _script(tmp_path, "from brian2 import *\n" + code + "run(10*ms)\n")
    with pytest.raises(DescriptionError, match=re.escape(message)):
        from_brian2(path)


def test_a_spike_source_s_rates_are_not_recorded_and_this_is_said(tmp_path):
    path = _script(tmp_path, "from brian2 import *\nP = PoissonGroup(2, 10*Hz, name='P')\n"
                             "M = StateMonitor(P, 'rates', record=0, name='M')\nrun(1*ms)\n")
    with pytest.warns(UserWarning, match=r"StateMonitor 'M' records 'rates' of the spike source 'P'; not imported"):
        assert from_brian2(path).run.record == ()


def test_values_recorded_at_spikes_are_not_imported_and_this_is_said(tmp_path):
    path = _script(tmp_path, "from brian2 import *\nG = NeuronGroup(2, 'dv/dt = 1/(10*ms) : 1', threshold='v > 1', "
                             "reset='v = 0', name='G')\nM = SpikeMonitor(G, 'v', name='M')\nrun(10*ms)\n")
    with pytest.warns(UserWarning, match=r"SpikeMonitor 'M' records \['v'\] at spikes; imported as its spikes only"):
        simulation = from_brian2(path)
    assert simulation.run.record == () and simulation.network.populations[0].model.threshold == "v > 1"


def test_the_command_line_imports_and_exports(tmp_path, capsys):
    path = _script(tmp_path, "from brian2 import *\nG = NeuronGroup(2, 'dv/dt = -v/(10*ms) : 1', name='G')\n"
                             "G.v = [0.5, 1.5]\nrun(1*ms)\n")
    assert main(["import", str(path), "--out", str(tmp_path / "g.json")]) == 0
    assert main(["export", str(tmp_path / "g.json"), "--brian2", str(tmp_path / "g.py")]) == 0
    assert from_brian2(tmp_path / "g.py").network.populations[0].initial == {"v": (0.5, 1.5)}
    assert main(["import", str(tmp_path / "missing.py")]) == 2
    assert main(["import", str(_script(tmp_path, "from brian2 import *\n", "no_run.py"))]) == 2
    assert "never calls run()" in capsys.readouterr().err


def _counting_network(start=0, stop=None, weight="0.5*mV"):
    counter = NeuronModel("v : volt\ndu/dt = -u/(5*ms) : volt")
    drive = PoissonInput("drive", "cells", "v", 50, "20*Hz", weight, seed=3, start=start, stop=stop)
    return Simulation(Network((Population("cells", counter, 4),), poisson_inputs=(drive,)),
                      RunSettings("30*ms", record=("cells.v",)))


@pytest.mark.parametrize("start, stop", [(0, None), (1, 3)])  # every neuron; a subgroup, cells[1:3]
def test_poisson_input_adds_weight_times_binomial_counts(start, stop, paired, tmp_path):
    simulation = _counting_network(start, stop)
    brian_record, torch_record, report = paired(simulation)
    assert report.identical and report.passed
    counts = np.zeros((300, 4))  # drawn here, independently, for the neurons reached
    counts[:, start:stop] = np.random.default_rng(3).binomial(50, 20 * 1e-4, size=(300, len(range(4)[start:stop])))
    assert counts.sum() > 20  # increments to see
    np.testing.assert_allclose(brian_record.traces["cells.v"], _summed_before_each_step(counts * 0.5e-3), rtol=0,
                               atol=1e-15)
    again = from_brian2(_script(tmp_path, to_brian2(simulation)))
    assert again.network.poisson_inputs == simulation.network.poisson_inputs
    assert np.array_equal(run_brian(again).traces["cells.v"], brian_record.traces["cells.v"])
    edited = to_brian2(simulation).replace("0.5*mV, 3, 300", "0.5*mV, 4, 300")  # the registry still names seed 3
    with pytest.raises(DescriptionError, match="Poisson counts 'drive' that differ from the PoissonInput"):
        from_brian2(_script(tmp_path, edited, "edited.py"))


def _summed_before_each_step(increments):
    """The values a variable holds at the start of each step (as recorded) when `increments` add at each step."""
    return np.vstack([np.zeros((1, increments.shape[1])), np.cumsum(increments, axis=0)[:-1]])


def test_a_poisson_input_weight_changing_in_time(paired, tmp_path):
    """A weight of a TimedArray in 10 ms rows (0.5, 1, 0 mV; Brian2's weight 'f(t)'): step n adds counts times
    row n // 100, the last row held."""
    weight = TimedArray([0.5e-3, 1e-3, 0.0], dt="10*ms", unit="volt")
    brian_record, torch_record, report = paired(_counting_network(weight=weight))
    assert report.identical and report.passed
    counts = np.random.default_rng(3).binomial(50, 20 * 1e-4, size=(300, 4))
    weights = np.array([0.5e-3, 1e-3, 0.0])[np.minimum(np.arange(300) // 100, 2)]
    np.testing.assert_allclose(brian_record.traces["cells.v"], _summed_before_each_step(counts * weights[:, None]),
                               rtol=0, atol=1e-15)
    script = ("from brian2 import *\nG = NeuronGroup(4, 'v : volt')\nf = TimedArray([0.5, 1, 0]*mV, dt=10*ms)\n"
              "P = PoissonInput(G[1:], 'v', 50, 20*Hz, weight='f(t)')\nrun(30*ms)\n")
    (imported,) = from_brian2(_script(tmp_path, script)).network.poisson_inputs
    assert (imported.weight, imported.start, imported.stop) == (dataclasses.replace(weight, dt="0.01*second"), 1, None)


def test_poisson_input_is_dropped_while_its_variable_is_held(paired):
    """A counter held (unless refractory) for 3 ms after each spike: its Poisson increments are dropped then, as
    Brian2 drops them. By hand, step by step in Brian2's order: refractory check, threshold, increment, reset."""
    counter = NeuronModel("dv/dt = 0*mV/ms : volt (unless refractory)", threshold="v > 2*mV", reset="v = 0*mV",
                          refractory="3*ms", method="euler")
    drive = PoissonInput("drive", "cells", "v", 50, "200*Hz", "0.5*mV", seed=3)
    simulation = Simulation(Network((Population("cells", counter, 4),), poisson_inputs=(drive,)),
                            RunSettings("30*ms", record=("cells.v",)))
    brian_record, torch_record, report = paired(simulation)
    assert report.identical and report.passed
    counts = np.random.default_rng(3).binomial(50, 200 * 1e-4, size=(300, 4))
    v, last, trace, spikes = np.zeros(4), np.full(4, -10**8), np.zeros((300, 4)), 0
    for n in range(300):
        trace[n] = v
        receptive = n - last >= 30
        spiked = (v > 2e-3) & receptive
        last = np.where(spiked, n, last)
        receptive &= ~spiked
        v = np.where(receptive, v + 0.5e-3 * counts[n], v)
        v = np.where(spiked, 0.0, v)
        spikes += spiked.sum()
    assert spikes >= 10 and (counts[trace == 0] > 0).any()  # increments fell inside the held periods
    for record in (brian_record, torch_record):
        np.testing.assert_allclose(record.traces["cells.v"], trace, rtol=0, atol=1e-15)


def test_brian2_poisson_input_is_imported_with_spikebridge_draws(tmp_path, paired):
    script = CUBA.replace("spikes = SpikeMonitor(P)", "noise = PoissonInput(P, 'ge', 40, 15*Hz, weight=0.8*mV)\n"
                                                      "spikes = SpikeMonitor(P)")
    simulation = from_brian2(_script(tmp_path, script))
    (noise,) = simulation.network.poisson_inputs
    assert (noise.target, noise.variable, noise.n, noise.rate, noise.weight, noise.seed) == (
        "P", "ge", 40, "15.0*hertz", "0.0008*volt", 0)
    _, _, report = paired(simulation)
    assert report.identical and report.passed


def test_synaptic_code_reads_subexpressions_and_timed_arrays(paired):
    cell = NeuronModel("v : 1")
    synapse = SynapseModel("w : 1\nscaled = 2*w*gain(t) : 1", on_pre="v_post += scaled",
                           parameters={"gain": TimedArray([1.0, 3.0], dt="2*ms")})
    spikes = SpikeTrains("inp", 2, [0, 1, 0, 1], [0.5e-3, 1e-3, 2.5e-3, 4e-3])
    network = Network((Population("cells", cell, 2),), (spikes,),
                      projections=(Projection("links", "inp", "cells", synapse, i=[0, 1], j=[1, 0],
                                              values={"w": [0.25, 0.5]}),))
    brian_record, torch_record, report = paired(Simulation(network, RunSettings("5*ms", record=("cells.v",))))
    assert report.identical and report.passed, report.text()
    # by hand: 2*w*gain, gain 1 before 2 ms and 3 after; inp 0 -> cell 1 (w 0.25), inp 1 -> cell 0 (w 0.5)
    for record in (brian_record, torch_record):
        np.testing.assert_allclose(record.traces["cells.v"][-1], [2 * 0.5 * (1 + 3), 2 * 0.25 * (1 + 3)], rtol=1e-15)


def test_timed_arrays_follow_brian2s_lookup_rule(paired, tmp_path):
    ramp = TimedArray(np.linspace(0, 3e-9, 7), dt="5*ms", unit="amp")
    table = TimedArray(np.arange(30.0).reshape(10, 3) * 1e-3, dt="1.3*ms", unit="volt")  # 1.3 ms: t/dt falls
    # just below whole rows at some steps (e.g. step 91), where Brian2's rounding rule still takes the row
    model = NeuronModel("dv/dt = (E(t, i) - v + R*I(t))/tau : volt\nx = E(t, i) : volt", threshold="v > 5*mV",
                        reset="v = 0*mV", parameters={"I": ramp, "E": table, "R": "1*Gohm", "tau": "10*ms"},
                        method="euler")
    simulation = Simulation(Network((Population("cells", model, 3),)),
                            RunSettings("15*ms", record=("cells.v", "cells.x")))
    brian_record, torch_record, report = paired(simulation)
    assert report.identical and report.passed and brian_record.count("cells") > 10
    rows = np.minimum(np.arange(150) // 13, 9)  # 1.3 ms rows at dt = 0.1 ms, the last row held
    for record in (brian_record, torch_record):
        np.testing.assert_array_equal(record.traces["cells.x"], np.arange(30.0).reshape(10, 3)[rows] * 1e-3)
    again = from_brian2(_script(tmp_path, to_brian2(simulation)))
    imported = again.network.populations[0].model.parameters["E"]
    assert (imported.values, imported.unit) == (table.values, "volt")
    assert si_value(imported.dt, "dt") == si_value(table.dt, "dt")
    assert np.array_equal(run_brian(again).traces["cells.v"], brian_record.traces["cells.v"])


def test_constant_over_dt_subexpressions_are_set_before_the_record(tmp_path, paired):
    path = _script(tmp_path, "from brian2 import *\n"
                             "G = NeuronGroup(3, 'dv/dt = (m - v)/(10*ms) : 1\\nm = 1/(1 + exp(-v)) + 0.5 : 1 "
                             "(constant over dt)', threshold='v > 0.9', reset='v = 0', name='G')\n"
                             "M = StateMonitor(G, ['v', 'm'], record=True)\nrun(30*ms)\n")
    simulation = from_brian2(path)
    brian_record, torch_record, report = paired(simulation)
    assert report.identical and report.passed and brian_record.count("G") >= 3
    for record in (brian_record, torch_record):  # set once per step from the state recorded at that step
        v = record.traces["G.v"]
        np.testing.assert_allclose(record.traces["G.m"], 1 / (1 + np.exp(-v)) + 0.5, rtol=1e-15)


def test_shared_variables_and_lastspike_in_synaptic_code(paired, tmp_path):
    script = """
        from brian2 import *
        G = NeuronGroup(2, '''dv/dt = (drive - v)/(10*ms) : 1
                              drive : 1 (shared)''', threshold='v > 0.5', reset='v = 0', refractory=1*ms,
                        method='exact', name='G')
        G.drive = 0.8
        inp = SpikeGeneratorGroup(2, [0, 1, 0, 1], [1, 2, 5.5, 4.5]*ms, name='inp')
        S = Synapses(inp, G, 'w : 1', on_pre='v_post += w*int(t - lastspike_post > 2*ms)', name='S')
        S.connect(j='i')
        S.w = 0.3
        M = StateMonitor(G, 'v', record=True)
        run(15*ms)
    """
    simulation = from_brian2(_script(tmp_path, script))
    assert simulation.network.populations[0].initial == {"drive": "0.8"}
    brian_record, torch_record, report = paired(simulation)
    assert report.identical and report.passed, report.text()
    v = brian_record.traces["G.v"]
    t = np.arange(10) * 1e-4
    np.testing.assert_allclose(v[:10, 1], 0.8 * (1 - np.exp(-t / 10e-3)), rtol=1e-12)  # shared drive, no input yet
    # by hand: an input lands (0.3) only when its target last spiked more than 2 ms (20 steps) before
    neurons, steps = brian_record.spikes["G"]
    landed = []
    for neuron, arrival in ((0, 10), (1, 20), (0, 55), (1, 45)):  # the last two after refractoriness
        before = steps[(neurons == neuron) & (steps < arrival)]
        jump = v[arrival + 1, neuron] - (0.8 + (v[arrival, neuron] - 0.8) * np.exp(-0.01))
        expected = 0.3 if not len(before) or arrival - before[-1] > 20 else 0.0
        assert jump == pytest.approx(expected, abs=1e-12), (neuron, arrival)
        landed.append(expected)
    assert 0.0 in landed and 0.3 in landed
