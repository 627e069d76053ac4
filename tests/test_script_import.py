"""Brian2 code as people write it, imported as written (bridge/app/brian2_scripts.py): each construct in a
model of our own, pinned by numbers worked out by hand besides the cross-check between the backends."""
import math
import textwrap

import brian2
import numpy as np
import pytest
import random_models

from bridge.app.brian2_scripts import from_brian2
from bridge.app.export import to_brian2
from bridge.description import PoissonTrains
from bridge.plan import lower
from brian_models.network import run as run_brian


def _script(tmp_path, text, name="model.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# dv/dt = (1.2 mV - v)/10 ms, exact: from v0 after k steps v = 1.2 - (1.2 - v0) exp(-k/100) (mV). From 0 the
# threshold 0.8 mV is passed after k > 100 ln 3 = 109.9 updates: the update of step 109 (spike at step 109).
# From the reset 0.4 mV it takes k > 100 ln 2 = 69.3, i.e. 70 updates, the first one at the first step the neuron
# is no longer refractory: 110 when never refractory, 109 + 30 for 3 ms (timestep(t - lastspike) >= 30).
REFRACTORY = """
from brian2 import *
tau_r = 3*ms
G = NeuronGroup(1, 'dv/dt = (1.2*mV - v)/(10*ms) : volt (unless refractory)', threshold='v > 0.8*mV',
                reset='v = 0.4*mV', refractory={refractory}, method='exact', name='G')
spikes = SpikeMonitor(G)
run(21.5*ms)
"""


@pytest.mark.parametrize("refractory, second_spike", [
    ("'v > 0.5*mV'", 110 + 69),  # a condition false right after the reset: never refractory
    ("'v > 0.3*mV'", None),      # a condition true while v is held at 0.4 mV: refractory for ever
    ("'tau_r'", 139 + 69),  # a period named by a constant: held until step 139
])
def test_refractory_conditions_and_expressions(refractory, second_spike, tmp_path, paired):
    simulation = from_brian2(_script(tmp_path, REFRACTORY.format(refractory=refractory)))
    assert simulation.network.populations[0].model.refractory == refractory.strip("'")
    brian_record, _, report = paired(simulation)
    assert report.identical
    assert brian_record.spikes["G"][1].tolist() == [109] + ([second_spike] if second_spike else [])


MONITORS = """
from brian2 import *
G = NeuronGroup(10, 'dv/dt = (i + 1)*volt/second : volt', method='euler', name='G')
S = Synapses(G, G, 'w : 1', name='S')
S.connect(i=[0, 1], j=[9, 4])
few = StateMonitor(G, 'v', record=[7, 2])
coarse = StateMonitor(G[3:6], 'v', record=True, dt=1*ms)
through_synapses = StateMonitor(S, 'v', record=True)  # v of each synapse's target
run(3*ms)
"""


def test_monitors_of_subsets_subgroups_own_dt_and_through_synapses(tmp_path, paired):
    path = _script(tmp_path, MONITORS)
    simulation = from_brian2(path)
    keys = ("G.v[7, 2]", "G.v[3:6] every 0.001*second", "G.v[9, 4]")
    assert sorted(simulation.run.record) == sorted(keys)
    brian_record, torch_record, report = paired(simulation)
    assert report.identical and report.passed
    v = lambda steps, neurons: np.outer(steps, np.add(neurons, 1)) * 1e-4  # (i + 1) V/s for n steps of 0.1 ms
    by_hand = {keys[0]: v(range(30), [7, 2]), keys[1]: v(range(0, 30, 10), [3, 4, 5]), keys[2]: v(range(30), [9, 4])}
    script = {}
    exec(compile(path.read_text(), str(path), "exec"), script)  # the script itself, its own monitors
    own = {keys[0]: script["few"].v_.T, keys[1]: script["coarse"].v_.T, keys[2]: script["through_synapses"].v_.T}
    for key in keys:
        np.testing.assert_allclose(brian_record.traces[key], by_hand[key], rtol=1e-12, atol=0)
        assert np.array_equal(brian_record.traces[key], own[key]) and np.array_equal(torch_record.traces[key],
                                                                                       own[key])


SHARED_DRAW = """
from brian2 import *
G = NeuronGroup(3, '''x : 1 (shared)
                      y : 1''', name='G')
G[1:].run_regularly('''x = rand()
                       y = x + i''', dt=1*ms, name='pick')  # i counts within the subgroup
M = StateMonitor(G, ['x', 'y'], record=True)
run(3*ms)
"""


def test_a_shared_variable_draws_one_value_per_run_of_its_operation(tmp_path, paired):
    """A statement writing a shared variable draws one number (Brian2's scalar statement), not one per neuron:
    spikebridge's draws, numpy's default_rng([noise_seed 0, 1, operation 0]), one per run of the code; written
    from a subgroup, the shared variable changes for the whole group."""
    simulation = from_brian2(_script(tmp_path, SHARED_DRAW))
    brian_record, torch_record, report = paired(simulation)
    assert report.identical and report.passed
    draws = np.random.default_rng([0, 1, 0]).random((3, 1))  # runs at steps 0, 10, 20
    by_hand = np.hstack([np.zeros((30, 1)), np.repeat(draws, 10, axis=0) + np.arange(2)])
    for record in (brian_record, torch_record):
        assert np.array_equal(record.traces["G.y"], by_hand)
        assert np.array_equal(record.traces["G.x"], np.repeat(draws, 10, axis=0) * np.ones((1, 3)))


MODELS_MODULE = """
from brian2 import *

def simulate(I_drive, duration=25*ms):
    v_rest, tau = -70*mV, {tau}  # names of the function that calls run(), in a module beside the script
    G = NeuronGroup(2, 'dv/dt = (v_rest - v + I)/tau : volt\\nI : volt', threshold='v > -60*mV',
                    reset='v = v_rest', method='exact', name='G')
    G.v = v_rest
    G.I = I_drive
    spikes = SpikeMonitor(G)
    run(duration)
    return spikes
"""
MAIN = """
from brian2 import mV
from models import simulate  # a module beside the script, as `python main.py` finds it
spikes = simulate([15, 5]*mV)
"""


@pytest.mark.parametrize("tau, steps", [("10*ms", [109, 219]), ("5*ms", [54, 109, 164, 219])])
def test_a_model_built_in_a_function_of_a_module_beside_the_script(tau, steps, tmp_path, paired):
    """v relaxes to v_rest + 15 mV: threshold (10 mV up) passed after k > (tau/dt) ln 3 updates, 110 for 10 ms
    (spike at step 109, then 110 updates after each reset), 55 for 5 ms. Each folder's own models.py is used."""
    folder = tmp_path / tau.replace("*", "")
    folder.mkdir()
    _script(folder, MODELS_MODULE.format(tau=tau), "models.py")
    simulation = from_brian2(_script(folder, MAIN, "main.py"))
    assert simulation.network.populations[0].model.parameters == {"v_rest": "-0.07*volt",
                                                                  "tau": f"{float(tau[:-3]) / 1000!r}*second"}
    brian_record, _, report = paired(simulation)
    assert report.identical and brian_record.spikes["G"][1].tolist() == steps


HODGKIN_HUXLEY = """
from brian2 import *
seed(11)
area = 2e-4*cm**2
C = 1*ufarad*cm**-2 * area
g_leak, g_sodium, g_potassium = 0.05*msiemens*cm**-2 * area, 100*msiemens*cm**-2 * area, 30*msiemens*cm**-2 * area
E_leak, E_sodium, E_potassium, E_exc, E_inh = -60*mV, 50*mV, -90*mV, 0*mV, -80*mV
V_shift, tau_exc, tau_inh = -63*mV, 5*ms, 10*ms
cell = '''
dv/dt = (g_leak*(E_leak - v) + g_exc*(E_exc - v) + g_inh*(E_inh - v)
         - g_sodium*m**3*h*(v - E_sodium) - g_potassium*n**4*(v - E_potassium))/C : volt
dm/dt = alpha_m*(1 - m) - beta_m*m : 1
dh/dt = alpha_h*(1 - h) - beta_h*h : 1
dn/dt = alpha_n*(1 - n) - beta_n*n : 1
alpha_m = 0.32*(mV**-1)*4*mV/exprel((13*mV - v + V_shift)/(4*mV))/ms : Hz
beta_m = 0.28*(mV**-1)*5*mV/exprel((v - V_shift - 40*mV)/(5*mV))/ms : Hz
alpha_h = 0.128*exp((17*mV - v + V_shift)/(18*mV))/ms : Hz
beta_h = 4./(1 + exp((40*mV - v + V_shift)/(5*mV)))/ms : Hz
alpha_n = 0.032*(mV**-1)*5*mV/exprel((15*mV - v + V_shift)/(5*mV))/ms : Hz
beta_n = .5*exp((10*mV - v + V_shift)/(40*mV))/ms : Hz
dg_exc/dt = -g_exc/tau_exc : siemens
dg_inh/dt = -g_inh/tau_inh : siemens
'''
cells = NeuronGroup(200, cell, threshold='v > -20*mV', refractory=3*ms, method='exponential_euler',
                    name='cells')
cells.v = 'E_leak + (randn()*4 - 5)*mV'
cells.g_exc = '(randn()*1.5 + 4)*10*nS'
cells.g_inh = '(randn()*12 + 20)*10*nS'
exc = Synapses(cells[:160], cells, on_pre='g_exc += 6*nS', name='exc')
inh = Synapses(cells[160:], cells, on_pre='g_inh += 67*nS', name='inh')
exc.connect(p=0.05)
inh.connect(p=0.05)
traces = StateMonitor(cells, 'v', record=range(0, 200, 20))
run(0.5*second)
"""


@pytest.mark.slow
def test_hodgkin_huxley_network_is_bitwise_identical_for_half_a_second(tmp_path, paired):
    """Exponential Euler with exp, exprel, powers and divisions: torch computes them as numpy does, so traces of
    0.5 s agree to the bit (each operation as Brian2's numpy target does it); by torch's own exp and pow they
    drifted apart by 1e-9."""
    simulation = from_brian2(_script(tmp_path, HODGKIN_HUXLEY))
    brian_record, torch_record, report = paired(simulation)
    assert report.identical and brian_record.count("cells") > 500
    assert np.array_equal(brian_record.traces["cells.v[0:181:20]"], torch_record.traces["cells.v[0:181:20]"])


def test_a_run_of_no_time_is_passed_over(tmp_path):
    """run(0*ms) (scripts use it to compile) changes nothing: the import reads the network at the next run()."""
    path = _script(tmp_path, """
        from brian2 import *
        G = NeuronGroup(2, 'dv/dt = -v/(10*ms) : 1', name='G')
        G.v = 1
        run(0*ms)
        G.v = [2, 3]
        run(5*ms)
        """)
    simulation = from_brian2(path)
    assert simulation.network.populations[0].initial == {"v": (2.0, 3.0)} and simulation.run.n_steps == 50


THREE_RUNS = """
from brian2 import *
G = NeuronGroup(3, '''dv/dt = (I - v)/(10*ms) : volt
                      I : volt''', threshold='v > 10*mV', reset='v = 0*mV', method='exact', name='G')
S = Synapses(G, G, 'w : volt', on_pre='v += w', name='S')
S.connect(i=[0], j=[2])
M = StateMonitor(G, 'v', record=True)
G.I = [20, 5, 0]*mV
run(20*ms)
G.I = [20, 15, 0]*mV  # a stimulus protocol: neuron 1 driven harder, synapse 0 -> 2 switched on
S.w = 3*mV
run(30*ms)
G.v = 0*mV  # every neuron reset (to the value it had before the first run)
run(10*ms)
"""


def test_several_runs_with_values_set_between_them(tmp_path, paired):
    """dv/dt = (I - v)/10 ms, exact, from v0: v = I - (I - v0) exp(-k/100) after k steps; threshold 10 mV.
    Neuron 0 (I = 20 mV): 70 updates from 0 (k > 100 ln 2): spikes at 69, 139; at step 200 v = 20 (1 - exp(-0.6))
    mV, 10 more updates (k > 100 ln(10.976/10)) to step 209, then every 70 steps. Neuron 1: v = 5 (1 - exp(-2))
    mV at step 200, then I = 15 mV: 76 updates (k > 100 ln(10.677/5)) to step 275, then 110 each (k > 100 ln 3).
    Neuron 2 gets w = 3 mV at each spike of neuron 0 from run 2 on. All are reset to 0 at step 500."""
    path = _script(tmp_path, THREE_RUNS)
    simulation = from_brian2(path)
    assert simulation.run.segments == ("0.02*second", "0.03*second", "0.01*second")
    assert [(c.segment, c.variable) for c in simulation.run.changes] == [(1, "G.I"), (1, "S.w"), (2, "G.v")]
    brian_record, torch_record, report = paired(simulation)
    assert report.identical and report.passed
    spikes = sorted(zip(*brian_record.spikes["G"]), key=lambda spike: spike[1])
    assert spikes == [(0, 69), (0, 139), (0, 209), (1, 275), (0, 279), (0, 349), (1, 385), (0, 419), (0, 489),
                      (1, 495), (0, 569)]
    v = brian_record.traces["G.v"]
    np.testing.assert_allclose(v[200, :2], [20e-3 * (1 - np.exp(-0.6)), 5e-3 * (1 - np.exp(-2))], rtol=1e-12)
    assert v[209, 2] == 0 and v[210, 2] == pytest.approx(3e-3, rel=1e-12) and not np.any(v[500])
    script = {}
    exec(compile(path.read_text(), str(path), "exec"), script)  # the script's own three runs
    assert np.array_equal(script["M"].v_.T, v) and np.array_equal(script["M"].v_.T, torch_record.traces["G.v"])


def test_an_exported_protocol_runs_as_the_script_and_reads_back(tmp_path):
    """The export writes the values set between runs and each run() call; the exported script, run by Brian2
    alone, records what the import of the original records, and its import gives the same protocol."""
    simulation = from_brian2(_script(tmp_path, THREE_RUNS))
    exported = tmp_path / "exported.py"
    exported.write_text(to_brian2(simulation))
    script = {}
    exec(compile(exported.read_text(), str(exported), "exec"), script)
    assert np.array_equal(script["state_G"].v_.T, run_brian(simulation).traces["G.v"])
    again = from_brian2(exported)
    assert again.run.changes == simulation.run.changes and again.run.segment_lengths == (200, 300, 100)


DELAYED_STIMULUS = """
from brian2 import *
stimulus = TimedArray(np.arange(10) * 10., dt=1*ms)
G = NeuronGroup(3, '''seen = stimulus(t - lag) : 1
                      lag : second''', name='G')
G.lag = [0, 2.5, 5]*ms
M = StateMonitor(G, 'seen', record=True)
run(20*ms)
"""


def test_a_timed_array_read_at_a_time_per_neuron(tmp_path, paired):
    """stimulus(t - lag): row floor((t - lag)/1 ms) of 0, 10, ..., 90, clipped to the table, for each neuron's
    own lag (0, 25 and 50 steps)."""
    brian_record, torch_record, report = paired(from_brian2(_script(tmp_path, DELAYED_STIMULUS)))
    steps, lag = np.arange(200)[:, None], np.array([0, 25, 50])
    by_hand = 10.0 * np.clip((steps - lag) // 10, 0, 9)
    assert report.passed
    assert np.array_equal(brian_record.traces["G.seen"], by_hand)
    assert np.array_equal(torch_record.traces["G.seen"], by_hand)


def test_separate_simulations_import_the_first_and_say_so(tmp_path):
    path = _script(tmp_path, """
        from brian2 import *

        def simulate(rate):
            G = NeuronGroup(1, 'dv/dt = rate : 1', threshold='v > 1', reset='v = 0', name='G')
            run(10*ms)

        for rate in (100*Hz, 300*Hz):  # two networks of their own
            simulate(rate)
        """)
    with pytest.warns(UserWarning, match=r"model.py: run\(\) call 2: runs other objects \(a separate simulation\); "
                                         r"imported the 1 run\(\) call\(s\) before it"):
        simulation = from_brian2(path)
    assert simulation.network.populations[0].model.parameters == {"rate": "100.0*hertz"}


SUMMED_SUBEXPRESSION = """
from brian2 import *
r_max = 10
source = NeuronGroup(2, '''rate = r_max/(1 + exp(-u)) : 1
                           u : 1''', name='source')
target = NeuronGroup(1, 'I : 1', name='target')
S = Synapses(source, target, '''w : 1
                               I_post = w*rate_pre : 1 (summed)''', name='S')
S.connect()
source.u = [0, 1]
S.w = [1, 2]
M = StateMonitor(target, 'I', record=True)
run(1*ms)
"""


def test_a_summed_variable_of_a_presynaptic_subexpression(tmp_path, paired):
    """I = sum of w * r_max/(1 + exp(-u)) over the synapses, r_max a constant of the script that only the
    source's subexpression names: 1*10/2 + 2*10/(1 + e^-1), set in the first step's 'groups' slot."""
    simulation = from_brian2(_script(tmp_path, SUMMED_SUBEXPRESSION))
    brian_record, torch_record, report = paired(simulation)
    assert report.identical and report.passed
    by_hand = 5 + 20 / (1 + np.exp(-1))
    for record in (brian_record, torch_record):
        assert record.traces["target.I"][0, 0] == 0 and record.traces["target.I"][1, 0] == pytest.approx(by_hand,
                                                                                                        rel=1e-15)


def test_units_of_declarations_are_not_names_of_the_script(tmp_path):
    """Brian2 writes a declaration's unit with symbols (S/m^2): a script's own `S` or `m` is no constant of it."""
    path = _script(tmp_path, """
        from brian2 import *
        G = NeuronGroup(2, '''dv/dt = g_density*(1*volt*meter**2/siemens - v)/ms : volt
                              g_density : siemens/meter**2 (constant)''', threshold='v > 1*volt', name='G')
        S, m = SpikeMonitor(G), 'not a constant'
        run(1*ms)
        """)
    assert from_brian2(path).network.populations[0].model.parameters == {}


def test_monitors_left_unnamed_record_in_one_order_whatever_brian2_still_holds(tmp_path):
    """Brian2 names unnamed monitors statemonitor, statemonitor_1... after the names objects still alive hold
    (here H's monitor comes first by name): the records come in one order, with or without another alive."""
    path = _script(tmp_path, """
        from brian2 import *
        G = NeuronGroup(2, 'dv/dt = -v/(10*ms) : 1', name='G')
        H = NeuronGroup(1, 'du/dt = -u/(10*ms) : 1', name='H')
        of_H = StateMonitor(H, 'u', record=True)
        of_G = StateMonitor(G, ['v'], record=True)
        run(1*ms)
        """)
    alone = from_brian2(path).run.record
    held = brian2.StateMonitor(brian2.NeuronGroup(1, "x : 1"), "x", record=True)  # a name taken
    assert held.name.startswith("statemonitor") and from_brian2(path).run.record == alone == ("G.v", "H.u")


def test_what_draws_during_the_run_is_said_at_import(tmp_path):
    path = _script(tmp_path, """
        from brian2 import *
        noisy = NeuronGroup(2, 'dv/dt = -v/(10*ms) + xi/sqrt(ms) : 1', method='euler', name='noisy')
        calm = NeuronGroup(2, 'dv/dt = -v/(10*ms) : 1', threshold='v > 1', reset='v = rand()', name='calm')
        drive = PoissonGroup(3, 20*Hz, name='drive')
        quiet = NeuronGroup(1, 'dv/dt = -v/(10*ms) : 1', name='quiet')
        run(1*ms)
        """)
    with pytest.warns(UserWarning, match=r"model.py: NeuronGroup 'calm', NeuronGroup 'noisy', PoissonGroup 'drive' "
                                         r"draw random numbers during the run: imported with spikebridge's seeded"):
        simulation = from_brian2(path)
    assert simulation.network.sources == (PoissonTrains("drive", 3, "20.0*hertz", seed=0),)


POISSON_RATES = """
from brian2 import *
rate_in_time = TimedArray([10, 400, 50]*Hz, dt=5*ms)
P = PoissonGroup(200, rates='rate_in_time(t)', name='P')
Q = PoissonGroup(3, rates=[0, 100, 800]*Hz, name='Q')
G = NeuronGroup(2, 'v : 1', name='G')
S = Synapses(P, G, on_pre='v += 1', name='S')
S.connect()
T = Synapses(Q, G, on_pre='v += 10', name='T')
T.connect()
run(20*ms)
"""


def test_poisson_groups_with_rates_in_time_or_per_neuron(tmp_path, paired):
    """Bernoulli(rate*dt) per step and neuron from default_rng(seed 0): the rate of step n is row n // 50 of
    the TimedArray (5 ms rows, the last held), or each neuron's own."""
    simulation = from_brian2(_script(tmp_path, POISSON_RATES))
    _, _, report = paired(simulation)
    assert report.identical
    plan = lower(simulation)
    rate_p = np.array([10.0, 400.0, 50.0])[np.minimum(np.arange(200) // 50, 2)][:, None]
    for name, rate in (("P", rate_p), ("Q", np.array([[0.0, 100.0, 800.0]]))):
        n = plan.sources[name].n
        steps, neurons = np.nonzero(np.random.default_rng(0).random((200, n)) < rate * 1e-4)
        order = np.lexsort((neurons, steps))
        drawn = plan.sources[name]
        assert np.array_equal(np.lexsort((drawn.indices, drawn.steps)), np.arange(len(drawn.steps)))
        assert np.array_equal(drawn.indices, neurons[order]) and np.array_equal(drawn.steps, steps[order])
    assert len(plan.sources["P"].steps) > 5


LINKED = """
from brian2 import *
drive = NeuronGroup(3, 'dx/dt = (1 - x)/(5*ms) : 1', method='exact', name='drive')
cells = NeuronGroup(3, '''dv/dt = (I - v)/(10*ms) : 1
                          I : 1 (linked)''', threshold='v > 0.5', reset='v = 0', method='exact', name='cells')
cells.I = linked_var(drive, 'x')
drive.x = [0, 0.5, 1]
M = StateMonitor(cells, 'v', record=True)
run(20*ms)
"""


@pytest.mark.parametrize("source, updated_first", [("drive", False), ("bath", True)])
def test_a_linked_variable_reads_the_other_population_as_it_is(source, updated_first, tmp_path, paired):
    """Brian2 updates groups by name: step n integrates v with I = x_n, x_n = 1 - (1 - x_0) exp(-n/50), when
    'cells' comes first, with x_(n+1) when the source does; v_(n+1) = I + (v_n - I) exp(-1/100), reset to 0
    above 0.5."""
    path = _script(tmp_path, LINKED.replace("'drive'", repr(source)))
    simulation = from_brian2(path)
    assert next(p for p in simulation.network.populations if p.name == "cells").links == {"I": f"{source}.x"}
    brian_record, torch_record, report = paired(simulation)
    assert report.identical and report.passed
    x0, v, by_hand, spikes = np.array([0, 0.5, 1]), np.zeros(3), [], []
    for n in range(200):
        by_hand.append(v.copy())
        x = 1 - (1 - x0) * np.exp(-(n + updated_first) / 50)
        v = x + (v - x) * np.exp(-1 / 100)
        spikes += [(k, n) for k in np.flatnonzero(v > 0.5)]
        v[v > 0.5] = 0
    np.testing.assert_allclose(brian_record.traces["cells.v"], by_hand, rtol=1e-9, atol=1e-12)
    assert sorted(brian_record.spike_set("cells")) == sorted(spikes) and len(spikes) == 6
    script = {}
    exec(compile(path.read_text(), str(path), "exec"), script)
    assert np.array_equal(script["M"].v_.T, torch_record.traces["cells.v"])


def test_restore_after_a_run_starts_a_separate_simulation(tmp_path):
    """store()/restore() rewinds time: the runs before the first restore() after a run are imported (a
    restore() before any run only sets the stored values, which the import reads), and this is said."""
    path = _script(tmp_path, """
        from brian2 import *
        G = NeuronGroup(1, 'dv/dt = drive : 1\\ndrive : Hz', name='G')
        store()
        G.v = 5
        restore()
        for drive in [10, 20]*Hz:
            restore()
            G.drive = drive
            run(3*ms)
        """)
    with pytest.warns(UserWarning, match=r"restore\(\) after 1 run\(\) call\(s\) starts a separate simulation"):
        simulation = from_brian2(path)
    assert simulation.network.populations[0].initial == {"drive": "10.0*hertz"} and simulation.run.n_steps == 30


@pytest.mark.parametrize("seed", range(6))
def test_random_models_cross_check_and_run_as_the_script_itself(seed, tmp_path, paired):
    """Random scripts (tests/random_models.py): nonlinear functions, synaptic code on both pathways, delays on
    either side, summed variables; identical in both backends and to the script's own run (numpy target)."""
    text, keys = random_models.script(seed)
    path = _script(tmp_path, text)
    brian_record, torch_record, report = paired(from_brian2(path))
    assert report.identical and report.passed
    brian2.prefs.codegen.target = "numpy"
    script = {}
    exec(compile(text, str(path), "exec"), script)
    for (monitor, variable), key in keys.items():
        own = getattr(script[monitor], f"{variable}_").T
        assert np.array_equal(brian_record.traces[key], own) and np.array_equal(torch_record.traces[key], own)


def test_a_spike_generator_with_a_period_repeats_its_spikes(tmp_path, paired):
    """Spikes at 1 and 2.5 ms, every 4 ms: steps 10, 25, 50, 65, 90, 105 within 12 ms (Brian2's own run)."""
    path = _script(tmp_path, """
        from brian2 import *
        source = SpikeGeneratorGroup(2, [0, 1], [1, 2.5]*ms, period=4*ms, name='source')
        target = NeuronGroup(2, 'v : 1', name='target')
        S = Synapses(source, target, on_pre='v += 1', name='S')
        S.connect(j='i')
        spikes = SpikeMonitor(source)
        run(12*ms)
        """)
    simulation = from_brian2(path)
    brian_record, _, report = paired(simulation)
    assert report.identical
    steps = sorted(lower(simulation).sources["source"].steps.tolist())
    assert steps == [10, 25, 50, 65, 90, 105]
    brian2.prefs.codegen.target = "numpy"
    script = {}
    exec(compile(path.read_text(), str(path), "exec"), script)  # Brian2's own repetition
    assert sorted(np.rint(script["spikes"].t_ / 1e-4).astype(int).tolist()) == steps


def test_a_monitor_added_between_runs_records_from_the_start(tmp_path):
    """A monitor created after a first run leaves the model as it is: both runs are imported, and what it
    records is recorded from the start."""
    path = _script(tmp_path, """
        from brian2 import *
        G = NeuronGroup(2, 'dv/dt = -v/(10*ms) : 1', name='G')
        run(2*ms)
        G.v = 1
        M = StateMonitor(G, 'v', record=[1])
        run(3*ms)
        """)
    simulation = from_brian2(path)
    assert simulation.run.segments == ("0.002*second", "0.003*second") and simulation.run.record == ("G.v[1]",)


SYNAPSES_LINKED = """
from brian2 import *
modulator = NeuronGroup(N_MODULATOR, 'dm/dt = -m/(20*ms) : 1', method='exact', name='modulator')
modulator.m = M0
kick = SpikeGeneratorGroup(1, [0, 0], [2, 9]*ms, name='kick')
pre = SpikeGeneratorGroup(2, [0, 1, 0, 1], [4, 5, 12, 13]*ms, name='pre')
post = SpikeGeneratorGroup(2, [1, 0], [6, 14]*ms, name='post')
to_modulator = Synapses(kick, modulator, on_pre='m_post += 1', name='to_modulator')
to_modulator.connect()
gated = Synapses(pre, post, '''w : 1
                               M : 1 (linked)''', on_pre='w += M', on_post='w -= 0.5*M', name='gated')
gated.connect(i=[0, 1], j=[0, 1])
gated.M = linked_var(modulator, 'm')
W = StateMonitor(gated, ['w', 'M'], record=True)
run(20*ms)
"""


@pytest.mark.parametrize("m0", [[0.0], [0.0, 0.5]])
def test_a_linked_variable_of_synapses_reads_a_population_of_one_or_one_neuron_per_synapse(m0, tmp_path, paired):
    """A modulator read by plastic synapses between spike sources (a source as the target: on_post): synapse k
    reads the one neuron, or neuron k, of `modulator`, kicked at steps 20 and 90. By hand, m_k at the start of
    step r: m0_k e^(-r/200) + e^(-(r-1-20)/200) (r > 20) + e^(-(r-1-90)/200) (r > 90); the synapses read it at
    step s after the step's state update: M_k(s) = m_k(s) e^(-1/200) (s not a kick); w_0 = M_0(40) + M_0(120) -
    M_0(140)/2, w_1 = M_1(50) - M_1(60)/2 + M_1(130)."""
    path = _script(tmp_path, SYNAPSES_LINKED.replace("N_MODULATOR", str(len(m0))).replace("M0", repr(m0)))
    simulation = from_brian2(path)
    gated = next(p for p in simulation.network.projections if p.name == "gated")
    assert gated.links == {"M": "modulator.m"} and gated.target == "post"
    brian_record, torch_record, report = paired(simulation)
    assert report.identical
    m0 = np.resize(m0, 2)
    m = lambda k, r: m0[k] * np.exp(-r / 200) + sum(np.exp(-(r - 1 - kick) / 200) for kick in (20, 90) if r > kick)
    M = lambda k, s: m(k, s) * np.exp(-1 / 200)
    np.testing.assert_allclose(brian_record.traces["gated.M"], [[m(0, r), m(1, r)] for r in range(200)], rtol=1e-12)
    by_hand = [M(0, 40) + M(0, 120) - M(0, 140) / 2, M(1, 50) - M(1, 60) / 2 + M(1, 130)]
    np.testing.assert_allclose(brian_record.traces["gated.w"][-1], by_hand, rtol=1e-12)
    for key in ("gated.w", "gated.M"):
        np.testing.assert_array_equal(torch_record.traces[key], brian_record.traces[key])


def test_a_network_changed_beyond_values_between_runs_imports_the_runs_before(tmp_path):
    path = _script(tmp_path, """
        from brian2 import *
        G = NeuronGroup(2, 'dv/dt = -v/(10*ms) : 1', threshold='v > 1', name='G')
        S = Synapses(G, G, on_pre='v += 1', name='S')
        S.connect(i=0, j=1)
        run(1*ms)
        S.connect(i=1, j=0)
        run(1*ms)
        """)
    with pytest.warns(UserWarning, match=r"run\(\) call 2: the network differs from the one of the run before in "
                                         r"more than values .*; imported the 1 run\(\) call\(s\) before it"):
        simulation = from_brian2(path)
    assert simulation.run.n_steps == 10 and list(simulation.network.projections[0].i) == [0]


def test_a_linked_variable_of_a_population_of_one(tmp_path, paired):
    """Every neuron reads the one neuron's x (Brian2's linked_var to a group of one); as the script's own run."""
    path = _script(tmp_path, LINKED.replace("NeuronGroup(3, 'dx/dt", "NeuronGroup(1, 'dx/dt")
                   .replace("drive.x = [0, 0.5, 1]", "drive.x = 0.5"))
    simulation = from_brian2(path)
    brian_record, torch_record, report = paired(simulation)
    assert report.identical and simulation.network.populations[0].links == {"I": "drive.x"}
    brian2.prefs.codegen.target = "numpy"
    script = {}
    exec(compile(path.read_text(), str(path), "exec"), script)
    v = script["M"].v_.T
    assert np.array_equal(brian_record.traces["cells.v"], v) and np.array_equal(torch_record.traces["cells.v"], v)
    assert np.array_equal(v[:, 0], v[:, 2]) and brian_record.count("cells") > 0  # the same input for all


def test_run_durations_that_are_no_whole_steps_run_as_brian2_runs_them(tmp_path):
    """Brian2 runs to the step of the end time (the durations added), rounded up unless within 0.01 % of dt:
    run(0.25*ms) at 0.1 ms is 3 steps, a second run(0.25*ms) ends at 0.5 ms, step 5: 2 steps (the script's own
    monitor: 5 rows)."""
    path = _script(tmp_path, """
        from brian2 import *
        G = NeuronGroup(1, 'dv/dt = 1/second : 1', name='G')
        M = StateMonitor(G, 'v', record=True)
        run(0.25*ms)
        G.v = 0
        run(0.25*ms)
        """)
    simulation = from_brian2(path)
    assert simulation.run.segment_lengths == (3, 2)
    brian2.prefs.codegen.target = "numpy"
    script = {}
    exec(compile(path.read_text(), str(path), "exec"), script)
    assert len(script["M"].t) == 5


# Synapses onto synapses: the modulator's spike (2 ms) raises the weight of the synapse it reaches (w += 0.25), the
# gain cell writes its g = 2 into the synapse's gain (summed, every step), and the synapse's weight is summed into a
# readout. Input spikes at 1 and 3 ms (steps 10, 30) add w*gain: v = 0.5*2 = 1 from step 11, + 0.75*2 = 2.5 from
# step 31. The readout's sum is computed in the 'groups' slot: 0.5 recorded from step 1, 0.75 (the weight raised
# in step 20's synapses slot) from step 22.
MODULATED = """
from brian2 import *
source = SpikeGeneratorGroup(1, [0, 0], [1, 3]*ms)
modulator = SpikeGeneratorGroup(1, [0], [2]*ms)
post = NeuronGroup(1, 'v : 1', name='post')
gain_cell = NeuronGroup(1, 'g : 1', name='gain_cell')
gain_cell.g = 2
readout = NeuronGroup(1, 'total : 1', name='readout')
S = Synapses(source, post, '''w : 1
                              gain : 1''', on_pre='v_post += w*gain', name='S')
S.connect()
S.w = 0.5
M = Synapses(modulator, S, on_pre='w_post += 0.25', name='M')
M.connect()
G = Synapses(gain_cell, S, 'gain_post = g_pre : 1 (summed)', name='G')
G.connect()
R = Synapses(S, readout, 'total_post = w_pre : 1 (summed)', name='R')
R.connect()
v = StateMonitor(post, 'v', record=0)
total = StateMonitor(readout, 'total', record=0)
run(4*ms)
"""


def test_synapses_onto_synapses_read_and_write_the_synapses_variables(tmp_path, paired):
    simulation = from_brian2(_script(tmp_path, MODULATED))
    assert [(p.name, p.source, p.target) for p in simulation.network.projections] == [
        ("S", "spikegeneratorgroup", "post"), ("G", "gain_cell", "S"), ("M", "spikegeneratorgroup_1", "S"),
        ("R", "S", "readout")]
    brian_record, torch_record, report = paired(simulation)
    assert report.identical
    by_hand = {"post.v[0]": [0] * 11 + [1] * 20 + [2.5] * 9, "readout.total[0]": [0] + [0.5] * 21 + [0.75] * 18}
    for key, values in by_hand.items():
        assert brian_record.traces[key][:, 0].tolist() == values
        assert torch_record.traces[key][:, 0].tolist() == values


# Spikes at 1, 3 and 5 ms, two runs of 2 ms: the second run reaches the spike at 3 ms, neither the one at 5 ms.
LATER_SPIKES = """
from brian2 import *
source = SpikeGeneratorGroup(1, [0, 0, 0], [1, 3, 5]*ms, name='source')
post = NeuronGroup(1, 'v : 1', name='post')
S = Synapses(source, post, on_pre='v_post += 1')
S.connect()
v = StateMonitor(post, 'v', record=0)
run(2*ms)
run(2*ms)
"""


def test_spikes_a_later_run_reaches_are_imported(tmp_path, paired):
    simulation = from_brian2(_script(tmp_path, LATER_SPIKES))
    assert simulation.run.segments == 2 and simulation.network.sources[0].times == (1e-3, 3e-3)
    brian_record, _, report = paired(simulation)
    assert report.identical and brian_record.traces["post.v[0]"][:, 0].tolist() == [0] * 11 + [1] * 20 + [2] * 9


def test_a_script_in_float32_imports_as_float32_and_leaves_brian2_in_float64(tmp_path):
    script = "from brian2 import *\nprefs.core.default_float_dtype = float32\nG = NeuronGroup(1, 'v : 1')\nrun(1*ms)\n"
    assert from_brian2(_script(tmp_path, script)).run.dtype == "float32"
    assert brian2.prefs.core.default_float_dtype is np.float64
    assert from_brian2(_script(tmp_path, script.replace("float32", "float64"), "f64.py")).run.dtype == "float64"


# v grows by (i + 1)*0.01 a step (euler); the event 'crossed' (v > 0.505, checked after the update) sets v back to
# 0: neuron 0 crosses after 51 updates (steps 50, 101), neuron 1 after 26 (steps 25, 51, 77, 103).
CUSTOM_EVENTS = """
from brian2 import *
G = NeuronGroup(2, 'dv/dt = (i + 1)/(10*ms) : 1', events={'crossed': 'v > 0.505'}, method='euler', name='G')
G.run_on_event('crossed', 'v = 0')
crossings = EventMonitor(G, 'crossed')
run(12*ms)
"""


def test_an_event_monitor_of_a_custom_event_is_recorded_by_both_backends(tmp_path, paired):
    path = _script(tmp_path, CUSTOM_EVENTS)
    simulation = from_brian2(path)
    assert simulation.run.events == ("G.crossed",)
    brian_record, torch_record, report = paired(simulation)
    assert report.identical and "G.crossed" in report.text()
    by_hand = [(1, 25), (0, 50), (1, 51), (1, 77), (0, 101), (1, 103)]
    script = {}
    exec(compile(path.read_text(), str(path), "exec"), script)  # the script itself, its own monitor
    own = list(zip(script["crossings"].i[:].tolist(), np.rint(script["crossings"].t_[:] / 1e-4).astype(int).tolist()))
    for record in (brian_record, torch_record):
        neurons, steps = record.spikes["G.crossed"]
        assert list(zip(neurons.tolist(), steps.tolist())) == by_hand == own


# A function run over parameters by a multiprocessing pool: the import runs the pool's calls in its own process,
# one after another, and imports the first call's run (the second call's network is a separate simulation).
POOL = """
import multiprocessing
from brian2 import *

def simulate(drive):
    G = NeuronGroup(1, 'dv/dt = (drive - v)/(10*ms) : 1', method='exact', name='G')
    M = StateMonitor(G, 'v', record=0)
    run(1*ms)
    return M.v[0]

if __name__ == '__main__':
    with multiprocessing.Pool(2) as pool:
        traces = pool.map(simulate, [0.5, 2.0])
"""


def test_a_multiprocessing_pool_s_first_call_is_imported(tmp_path):
    with pytest.warns(UserWarning, match=r"run\(\) call 2: runs other objects \(a separate simulation\); imported "
                                         r"the 1 run\(\) call\(s\) before it"):
        simulation = from_brian2(_script(tmp_path, POOL))
    assert simulation.network.populations[0].model.parameters == {"drive": "0.5"}
    v = run_brian(simulation).traces["G.v[0]"][:, 0]  # exact: v = drive (1 - exp(-t/10 ms)) at each step's start
    np.testing.assert_allclose(v, 0.5 * (1 - np.exp(-np.arange(10) / 100)), rtol=1e-12, atol=1e-16)


# A shared synaptic constant read by clock-driven code (Brian2 computes exp(-dt/tau_y) once for the group): y jumps
# to 1 at the spike (step 0) and decays by exp(-0.1) a step; the summed v = y is computed before the decay in the
# 'groups' slot, so the record at the start of step k >= 2 holds exp(-0.1 (k - 2)).
SHARED_SYNAPTIC = """
from brian2 import *
source = SpikeGeneratorGroup(1, [0], [0]*ms)
target = NeuronGroup(1, 'v : 1', name='target')
S = Synapses(source, target, '''tau_y : second (shared, constant)
                                dy/dt = -y/tau_y : 1 (clock-driven)
                                v_post = y : 1 (summed)''', on_pre='y += 1', method='exact', name='S')
S.connect()
S.tau_y = 1*ms
m = StateMonitor(target, 'v', record=0)
run(1*ms)
"""


def test_a_shared_synaptic_constant_in_clock_driven_code(tmp_path, paired):
    brian_record, torch_record, report = paired(from_brian2(_script(tmp_path, SHARED_SYNAPTIC)))
    assert report.identical
    by_hand = np.r_[0.0, 0.0, np.exp(-0.1 * np.arange(8))]
    np.testing.assert_allclose(torch_record.traces["target.v[0]"][:, 0], by_hand, rtol=1e-12, atol=0)


# User functions, traced into expressions: v of neuron k rises by euler as u = v + 70 mV, u <- u + (A - u)/100
# with A = 5 mV * softplus(drive_k), so u_n = A (1 - 0.99**n); the threshold u > 10 mV is first passed after
# n = floor(ln(1 - 10 mV/A) / ln 0.99) + 1 updates, i.e. at step n - 1. Neuron 1 (drive 4) kicks neuron 0 by
# kick(w) = 2 w mV through a function with units.
USER_FUNCTIONS = """
from brian2 import *
import numpy as np

@check_units(x=1, result=1)
def softplus(x):
    return np.log(1 + np.exp(x))

@implementation('numpy', discard_units=True)
@check_units(v=volt, result=volt)
def above_rest(v):
    return v - (-70*mV)

@check_units(w=1, result=volt)
def kick(w):
    return 2*w*mV

G = NeuronGroup(2, '''dv/dt = (softplus(drive)*5*mV - above_rest(v))/(10*ms) : volt
                     drive : 1''', threshold='above_rest(v) > 10*mV', reset='v = -70*mV', method='euler', name='G')
G.v, G.drive = -70*mV, [2, 4]
S = Synapses(G, G, 'w : 1', on_pre='v_post += kick(w)', name='S')
S.connect(i=1, j=0)
S.w = 1.5
trace = StateMonitor(G, 'v', record=True)
run(40*ms)
"""


def test_user_functions_are_traced_and_run_as_the_script_runs_them(tmp_path, paired):
    path = _script(tmp_path, USER_FUNCTIONS)
    simulation = from_brian2(path)
    net = simulation.network
    functions = {**net.populations[0].model.parameters, **net.projections[0].synapse.parameters}
    assert functions["softplus"].expression == "log((1 + exp(x0)))"
    assert (functions["above_rest"].expression, functions["above_rest"].argument_units) == ("(x0 - (-0.07))", ("volt",))
    assert (functions["kick"].expression, functions["kick"].unit) == ("((2 * x0) * 0.001)", "volt")
    brian_record, torch_record, report = paired(simulation)
    assert report.identical
    neurons, steps = brian_record.spikes["G"]
    first = math.floor(math.log(1 - 10 / (5 * math.log(1 + math.exp(4)))) / math.log(0.99))
    assert steps[neurons == 1][0] == first
    brian2.prefs.codegen.target = "numpy"
    script = {}
    exec(compile(path.read_text(), str(path), "exec"), script)  # the script itself, its functions called by Brian2
    own = script["trace"].v_.T
    assert np.array_equal(brian_record.traces["G.v"], own) and np.array_equal(torch_record.traces["G.v"], own)
    assert np.any(np.diff(own[:, 0]) > 2.9e-3)  # kicks of 3 mV arrived
    exported = _script(tmp_path, to_brian2(simulation), "exported.py")  # brian2_function defines them there
    assert from_brian2(exported).network == simulation.network
