"""Anything numeric learns by name (bridge/learn.py, torch_models/learning.py): gradients of every kind against
finite differences and against formulas worked out by hand, learned values written back into a description that
Brian2 runs identically, delays that learn step by step, and the guards of `learn`."""
import dataclasses
import math

import numpy as np
import pytest
import torch

import torch_models
from bridge.description import (Network, NeuronModel, Population, Projection, RunSettings, Simulation, SpikeTrains,
                                SynapseModel, TimedArray)
from bridge.errors import DescriptionError
from bridge.quantities import si_value
from brian_models.network import run as run_brian

DELAYS = (0.001, 0.002, 0.0005, 0.003)  # 10, 20, 5, 30 steps of 0.1 ms, exactly


def leaky(delays=DELAYS, delay_mode="static", on_pre="v_post += w*we", parameters=None):
    """Three leaky neurons (no threshold: every loss below is smooth) kicked by two spike trains."""
    post = Population("post", NeuronModel("dv/dt = (v_rest - v)/tau : volt",
                                          parameters=parameters or {"v_rest": "-70*mV", "tau": "10*ms"}), 3,
                      initial={"v": "-65*mV"})
    pre = SpikeTrains("pre", 2, (0, 1, 0, 1), (0.001, 0.002, 0.004, 0.0035))
    dynamic = {"delay_mode": delay_mode, "delay_variable": "d", "delays": "0*ms"} if delay_mode != "static" else {}
    synapse = SynapseModel("w : 1" + ("\nd : second" if dynamic else ""), on_pre=on_pre, parameters={"we": "1*mV"})
    values = {"w": (0.5, 1.0, 1.5, 2.0), **({"d": DELAYS} if dynamic else {})}
    syn = Projection("syn", "pre", "post", synapse, i=(0, 0, 1, 1), j=(0, 1, 1, 2), values=values,
                     max_delay="5*ms", **({"delays": delays} | dynamic))
    return Simulation(Network(populations=(post,), sources=(pre,), projections=(syn,)),
                      RunSettings(duration="10*ms", record=("post.v",)))


def loss(module):
    """A smooth loss of the membrane traces (mV²)."""
    return ((module().traces["post.v"] + 0.068) ** 2).sum() * 1e6


def finite_differences(module, parameter, h=1e-6, one_sided=False):
    """The loss's derivative in each entry of `parameter` by finite differences of second order: central, or
    one-sided from above (-3 L(x) + 4 L(x + h) - L(x + 2h)) / 2h."""
    offsets, weights = ((0, 1, 2), (-3, 4, -1)) if one_sided else ((-1, 1), (-1, 1))
    gradient = []
    with torch.no_grad():
        for k in range(parameter.numel()):
            value = parameter.view(-1)[k].item()
            losses = []
            for offset in offsets:
                parameter.view(-1)[k] = value + offset * h
                losses.append(float(loss(module)))
            parameter.view(-1)[k] = value
            gradient.append(np.dot(weights, losses) / (2 * h))
    return np.array(gradient)


@pytest.mark.parametrize("key, how", [
    ("post.tau", {"shared": True, "low": "1*ms"}),            # a neuron parameter, bounded below
    ("post.v_rest", "per_element"),                           # ... one per neuron: a variable of the model
    ("syn.we", {"shared": True, "low": "0*mV", "high": "5*mV"}),  # a synaptic constant, bounded
    ("syn.we", "per_element"),                                # ... one per synapse
    ("syn.w", "per_element"),                                 # synaptic values
    ("post.v", "shared"),                                     # an initial value
    ("post.v", "per_element"),
])
def test_gradient_of_each_kind_equals_finite_differences(key, how):
    module = torch_models.compile(leaky(), learn={key: how}, dtype="float64")
    parameter = module.learning.raw[key.replace(".", ":")]
    loss(module).backward()
    assert parameter.grad is not None and np.all(parameter.grad.numpy().reshape(-1) != 0)
    np.testing.assert_allclose(parameter.grad.numpy().reshape(-1), finite_differences(module, parameter), rtol=1e-6)
    learning = [name for name, p in module.named_parameters() if p.requires_grad]
    assert learning == [f"learning.raw.{key.replace('.', ':')}"]


def test_gradients_equal_the_formulas_of_exact_integration():
    """Without input v_k = v_rest + (v0 - v_rest) a^k, a = exp(-dt/tau), k = 0 .. 99 (recorded at each step's
    start): d(sum v_k)/dv0 = (1 - a^100)/(1 - a) and d(sum v_k)/dtau = (v0 - v_rest) sum_k a^k k dt/tau²."""
    simulation = leaky()
    simulation = Simulation(Network(populations=simulation.network.populations), simulation.run)
    module = torch_models.compile(simulation, learn={"post.v": "shared", "post.tau": "shared"}, dtype="float64")
    module().traces["post.v"].sum().backward()
    a, k, dt, tau = math.exp(-1e-4 / 0.01), np.arange(100), 1e-4, 0.01
    by_hand_v0 = 3 * (1 - a ** 100) / (1 - a)  # three neurons
    by_hand_tau = 3 * 0.005 * np.sum(a ** k * k * dt / tau ** 2)
    # the raw parameters are the values divided by a power of two: v0 by 2**-4 (|v0| = 65 mV), tau by 2**-7
    assert module.learning.raw["post:v"].grad.item() * 2 ** 4 == pytest.approx(by_hand_v0, rel=1e-12)
    assert module.learning.raw["post:tau"].grad.item() * 2 ** 7 == pytest.approx(by_hand_tau, rel=1e-9)


def test_learned_values_of_every_kind_are_written_back_and_run_identically_in_brian2():
    learn = {"post.tau": {"shared": True, "low": "1*ms"}, "post.v_rest": "per_element", "syn.we": "per_element",
             "syn.w": "per_element", "post.v": "shared", "syn.delay": "per_element"}
    module = torch_models.compile(leaky(), learn=learn, dtype="float64")
    for key, values in {"post.tau": 0.012, "post.v_rest": [-0.071, -0.069, -0.07], "syn.we": [2e-3, 1e-3, 5e-4, 3e-3],
                        "syn.w": [0.25, 1.25, 1.0, 0.75], "post.v": -0.064,
                        "syn.delay": [0.00112, 0.00029, 0.0026, 0.00421]}.items():
        module.learning.set_value(key, values)
    fitted = module.to_simulation()
    post, syn = fitted.network.populations[0], fitted.network.projections[0]
    assert post.model.equations.endswith("v_rest : volt (constant)") and "v_rest" not in post.model.parameters
    assert syn.synapse.model.endswith("we : volt (constant)") and "we" not in syn.synapse.parameters
    assert float(post.model.parameters["tau"].split("*")[0]) == pytest.approx(0.012, rel=1e-12)
    np.testing.assert_allclose(syn.values["we"], [2e-3, 1e-3, 5e-4, 3e-3], rtol=1e-15)
    np.testing.assert_allclose(post.initial["v_rest"], [-0.071, -0.069, -0.07], rtol=1e-15)
    np.testing.assert_allclose(np.array(syn.delays) / 1e-4, [11, 3, 26, 42])  # whole steps floor(d/dt + 1/2)
    with torch.no_grad():
        learned = module().traces["post.v"][0].numpy()
    assert np.array_equal(run_brian(fitted).traces["post.v"], learned)
    assert np.array_equal(torch_models.run(fitted).traces["post.v"], learned)


def driven():
    """Three leaky neurons driven by TimedArrays of rows every 2 ms, read at t per neuron (`drive`), at a time per
    neuron (`late`, 0-2 ms late) and by the synapses (`kick`, at each spike's arrival)."""
    rng = np.random.default_rng(5)
    parameters = {"tau": "10*ms", "drive": TimedArray(rng.uniform(-0.07, -0.06, (5, 3)), "2*ms", "volt"),
                  "late": TimedArray(rng.uniform(0, 0.01, 5), "2*ms", "volt"),
                  "kick": TimedArray(rng.uniform(0, 0.002, 5), "2*ms", "volt")}
    post = Population("post", NeuronModel("dv/dt = (drive(t, i) + late(t - lag) - v)/tau : volt\n"
                                          "lag : second (constant)", parameters=parameters, method="euler"), 3,
                      initial={"v": "-65*mV", "lag": (0.0, 0.001, 0.002)})
    pre = SpikeTrains("pre", 2, (0, 1, 0, 1), (0.001, 0.002, 0.0045, 0.0065))
    syn = Projection("syn", "pre", "post", SynapseModel("", on_pre="v_post += kick(t)", parameters=parameters),
                     i=(0, 0, 1, 1), j=(0, 1, 1, 2), delays="1*ms", max_delay="5*ms")
    return Simulation(Network(populations=(post,), sources=(pre,), projections=(syn,)),
                      RunSettings(duration="10*ms", record=("post.v",)))


def test_timed_arrays_learn_value_by_value_in_each_start_and_run_identically_in_brian2():
    """A TimedArray's values learn, read at t per neuron, at a time per neuron and by synapses: gradients equal
    finite differences; two starts run as one batch equal their runs one by one; written back, Brian2 runs the
    learned values identically."""
    learn = dict.fromkeys(("post.drive", "post.late", "syn.kick"), "per_element")
    module = torch_models.compile(driven(), learn=learn, dtype="float64")
    loss(module).backward()
    for key in learn:
        raw = module.learning.raw[key.replace(".", ":")]
        assert np.count_nonzero(raw.grad.numpy()) >= 3  # kick: rows 1, 2, 3 (arrivals at 2, 3, 5.5, 7.5 ms)
        np.testing.assert_allclose(raw.grad.numpy().reshape(-1), finite_differences(module, raw), rtol=1e-6,
                                   atol=1e-9 * float(raw.grad.abs().max()))
    rng = np.random.default_rng(6)
    tables = {key: rng.uniform(-0.07, 0.0, (2, len(item.start))) for key, item in module.learning.items.items()}
    batched = torch_models.compile(driven(), learn=learn, dtype="float64", starts=tables)
    with torch.no_grad():
        together = batched().traces["post.v"]
        for start in range(2):
            for key, values in tables.items():
                module.learning.set_value(key, values[start])
            alone = module().traces["post.v"][0]
            assert torch.equal(together[start], alone)
            fitted = module.to_simulation()
            assert np.array_equal(fitted.network.populations[0].model.parameters["drive"].values,
                                  tables["post.drive"][start].reshape(5, 3))
            assert np.array_equal(run_brian(fitted).traces["post.v"], alone.numpy())
    assert not torch.equal(together[0], together[1])


def test_delays_that_learn_run_whole_steps_with_the_slope_of_the_interpolation():
    """Mode 'integer' runs the description's whole-step delays exactly; its gradient is the slope of the linear
    interpolation above each delay: the one-sided differences of mode 'fractional' there. Between whole steps
    'fractional' interpolates the runs at the whole steps around (the model is linear in its input) and its
    gradient equals finite differences."""
    integer = torch_models.compile(leaky(), learn={"syn.delay": "per_element"}, dtype="float64")
    fractional = torch_models.compile(leaky(), learn={"syn.delay": "per_element"}, dtype="float64",
                                      delay_gradient="fractional")
    with torch.no_grad():
        assert np.array_equal(integer().traces["post.v"][0].numpy(), run_brian(leaky()).traces["post.v"])
        assert np.array_equal(fractional().traces["post.v"][0].numpy(), run_brian(leaky()).traces["post.v"])
    loss(integer).backward()
    slope = integer.learning.raw["syn:delay"].grad.numpy().reshape(-1)
    assert np.all(slope != 0)
    np.testing.assert_allclose(slope, finite_differences(fractional, fractional.learning.raw["syn:delay"],
                                                         one_sided=True), rtol=1e-6)
    between = torch_models.compile(leaky((0.00103, 0.002, 0.0005, 0.003)), learn={"syn.delay": "per_element"},
                                   dtype="float64", delay_gradient="fractional")
    with torch.no_grad():  # 10.3 steps: 0.7 of the run with 10 steps and 0.3 of the one with 11
        interpolated = 0.7 * run_brian(leaky()).traces["post.v"] + 0.3 * run_brian(
            leaky((0.0011, 0.002, 0.0005, 0.003))).traces["post.v"]
        np.testing.assert_allclose(between().traces["post.v"][0].numpy(), interpolated, rtol=1e-12)
    between = torch_models.compile(leaky((0.00103, 0.00217, 0.00052, 0.00314)), learn={"syn.delay": "per_element"},
                                   dtype="float64", delay_gradient="fractional")
    parameter = between.learning.raw["syn:delay"]
    loss(between).backward()
    np.testing.assert_allclose(parameter.grad.numpy().reshape(-1), finite_differences(between, parameter), rtol=1e-6)


def recurrent(rng, duration="50*ms"):
    """Ten neurons, all to all with delays of 1 to 4 ms: spikes reach each other."""
    model = NeuronModel("dv/dt = (2 - v)/(10*ms) : 1", threshold="v > 1", reset="v = 0", method="exact")
    net = Network(populations=(Population("rec", model, 10, initial={"v": rng.random(10)}),),
                  projections=(Projection("recurrent", "rec", "rec", SynapseModel("w : 1", on_pre="v_post += w"),
                                          values={"w": rng.normal(0, 0.2, (10, 10))},
                                          delays=rng.integers(10, 40, (10, 10)) * 1e-4, max_delay="5*ms"),))
    return Simulation(net, RunSettings(duration=duration, record=("rec.v",)))


def test_delays_that_learn_in_a_recurrent_network_are_identical_in_brian2():
    """Spikes reach each other through delays that learn; learned delays validated in Brian2."""
    rng = np.random.default_rng(3)
    simulation = recurrent(rng)
    module = torch_models.compile(simulation, learn={"recurrent.delay": "per_element"}, dtype="float64")
    spikes = module().spikes["rec"]
    (spikes.sum() + module().traces["rec.v"].sum()).backward()
    assert spikes.sum() > 20 and module.learning.raw["recurrent:delay"].grad.abs().sum() > 0
    module.learning.set_value("recurrent.delay", rng.integers(0, 50, 100) * 1e-4)
    fitted = module.to_simulation()
    with torch.no_grad():
        learned = module().spikes["rec"][0].numpy()
    brian = run_brian(fitted).spikes["rec"]
    assert sorted(zip(*brian)) == sorted(zip(*np.nonzero(learned.T)))
    assert sorted(zip(*brian)) != sorted(zip(*run_brian(simulation).spikes["rec"]))  # the delays learned matter



def test_weights_read_at_every_step_sum_their_gradients_as_autograd_does(monkeypatch):
    """A recurrent network whose weights learn: each step's reads of the weights sum their gradients in one
    tensor in place (torch_models/learning.summing_reads); the gradient equals autograd's own sum of the reads
    (plain indexing) to rounding, and a second backward pass of the same graph adds it once more, exactly."""
    simulation = recurrent(np.random.default_rng(3))

    def gradient(twice=False):
        module = torch_models.compile(simulation, learn={"recurrent.w": "per_element"}, dtype="float64")
        run = module()
        loss = ((run.spikes["rec"].sum(1) - 3) ** 2).sum() + run.traces["rec.v"].pow(2).sum()
        loss.backward(retain_graph=twice)
        if twice:
            loss.backward()
        return module.learning.raw["recurrent:w"].grad.clone()

    summed, twice = gradient(), gradient(twice=True)
    assert summed.abs().sum() > 0 and torch.equal(twice, 2 * summed)
    monkeypatch.setattr(torch_models.stepwise, "summing_reads", lambda values: values)
    torch.testing.assert_close(summed, gradient(), rtol=1e-12, atol=1e-12)

GUARDS = {
    "unknown owner": ({"elsewhere.tau": "shared"}, r"learn\['elsewhere.tau'\]: names no population or projection"),
    "unknown name": ({"post.tau_m": "shared"}, r"learn\['post.tau_m'\]: names no parameter or state variable of "
                                               r"population 'post'; parameters \['tau', 'v_rest'\], variables \['v'\]"),
    "unknown kind": ({"post.tau": "per_neuron"}, r"learn\['post.tau'\]: 'per_neuron'; give one of \('shared', "
                                                 r"'per_element'\)"),
    "shared for different values": ({"syn.w": "shared"}, r"learn\['syn.w'\]: 'shared' for values that differ"),
    "start outside the bounds": ({"post.tau": {"shared": True, "low": "10*ms"}}, r"learn\['post.tau'\]: values from "
                                                                                 r"0.01 to 0.01 \(SI\) outside"),
    "bound in other units": ({"post.tau": {"shared": True, "low": "1*mV"}},
                             r"learn\['post.tau'\].low: '1\*mV' is not in the unit of what learns \(second\)"),
    "empty": ({}, r"learn: \{\}; give"),
}


@pytest.mark.parametrize("name", GUARDS)
def test_what_cannot_learn_is_refused_naming_it(name):
    learn, message = GUARDS[name]
    with pytest.raises(DescriptionError, match=message):
        torch_models.compile(leaky(), learn=learn)


def test_delays_learn_where_they_are_static_and_the_code_adds():
    with pytest.raises(DescriptionError, match=r"learn\['syn.delay'\]: delays of delay_mode 'dynamic'; static"):
        torch_models.compile(leaky(delay_mode="dynamic"), learn={"syn.delay": "per_element"})
    with pytest.raises(DescriptionError, match=r"learn\['syn.delay'\]: the pathway 'pre' does more than add"):
        torch_models.compile(leaky(on_pre="v_post += w*we\nw *= 0.5"), learn={"syn.delay": "per_element"})
    with pytest.raises(DescriptionError, match=r"learn\['post.drive'\]: 'shared' for a TimedArray; its values learn "
                                               "one by one"):
        torch_models.compile(driven(), learn={"post.drive": "shared"})
    with pytest.raises(DescriptionError, match=r"strategy 'layered': learn= is the step-by-step module's"):
        torch_models.compile(leaky(), "layered", learn={"post.tau": "shared"})


def test_the_surrogate_is_as_wide_in_volts_as_in_units_of_the_threshold_distance():
    """The same neuron in volts (threshold -50 mV, reset to -70 mV) and in units of that 20 mV distance
    (threshold 1, reset to 0): the surrogate's unit of margin is the reset's distance from the threshold, so the
    spike count's gradient in the drive is the same, by the change of units (dE_volts = 20 mV dE_units)."""
    def neuron(equations, threshold, reset, drive, start):
        model = NeuronModel(equations, threshold=threshold, reset=reset, parameters={"E": drive})
        return Simulation(Network(populations=(Population("n", model, 2, initial={"v": start}),)),
                          RunSettings(duration="50*ms"))
    volts = neuron("dv/dt = (E - v)/(10*ms) : volt", "v > -50*mV", "v = -70*mV", "-45*mV", "-70*mV")
    units = neuron("dv/dt = (E - v)/(10*ms) : 1", "v > 1", "v = 0", "1.25", "0")
    gradients = []
    for simulation in (volts, units):
        module = torch_models.compile(simulation, learn={"n.E": "shared"}, dtype="float64")
        count = module().spikes["n"].sum()
        count.backward()
        gradients.append(module.learning.raw["n:E"].grad.item() / module.learning.scales["n.E"])
    # from the reset, the threshold is reached after 10 ms ln(25/5) = 16.1 ms: three spikes each in 50 ms
    assert module.populations["n"].margin_scale == 1.0 and count.item() == 2 * 3
    assert gradients[0] != 0 and gradients[0] * 0.02 == pytest.approx(gradients[1], rel=1e-9)


def test_the_backward_pass_s_memory_is_measured_and_a_run_that_will_not_fit_is_refused_early(monkeypatch):
    """The tensors autograd saves grow with the steps run (twice the steps: twice the bytes, within 5 %); a
    run whose backward pass will not fit is refused after its first steps, with the bytes it needs; without
    gradients nothing is saved and nothing is refused."""
    from torch_models import module as module_interface, stepwise

    measured = {}
    original = module_interface.BackwardMemory.done

    def done(self, steps):
        measured[steps] = self.saved_bytes
        original(self, steps)

    monkeypatch.setattr(module_interface.BackwardMemory, "done", done)
    module = torch_models.compile(leaky(), learn={"syn.w": "per_element", "post.tau": "shared"}, dtype="float64")
    module()
    assert measured[100] == pytest.approx(2 * measured[50], rel=0.05) and measured[100] > 100 * 3 * 8
    monkeypatch.setattr(stepwise, "check_memory", lambda parts, device: None)  # the forward pass's own estimate
    half = measured[100] // 2
    monkeypatch.setattr(module_interface, "available_bytes", lambda device: half)
    measured.clear()
    with pytest.raises(DescriptionError, match=r"the backward pass \(tensors saved at every step\): the run needs "
                                               r"about [\d,]+ bytes"):
        module()
    assert max(measured) == module_interface.BackwardMemory.PROBE_STEPS
    with torch.no_grad():
        module()


def test_a_backward_pass_that_recomputes_stretches_gives_the_same_gradients_in_less_memory(monkeypatch):
    """recompute_every=7 (stretches that do not divide the 500 steps): the same spikes and traces, gradients of
    delays, weights and initial values equal to those of the run that keeps every step's tensors (1e-12), with
    the delivery's rings written in place; a run (unconnected neurons) refused for its memory with every step kept
    runs recomputing stretches of 10 (about 10 + 50 steps' tensors instead of 500); one that copies a large ring
    at each stretch's start does not;
    recompute_every must be a number of steps."""
    from torch_models import module as module_interface, stepwise

    learn = {"recurrent.delay": "per_element", "recurrent.w": "per_element", "rec.v": "per_element"}
    module = torch_models.compile(recurrent(np.random.default_rng(3)), learn=learn, dtype="float64")
    gradients, runs = [], []
    for every in (None, 7):
        module.learning.zero_grad()
        out = module(recompute_every=every)
        (out.spikes["rec"].sum() + (out.traces["rec.v"] ** 2).sum()).backward()
        runs.append((out.spikes["rec"].detach(), out.traces["rec.v"].detach()))
        gradients.append({name: raw.grad.clone() for name, raw in module.learning.raw.items()})
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1]) and runs[0][0].sum() > 50
    for name, gradient in gradients[0].items():
        assert gradient.abs().sum() > 0
        torch.testing.assert_close(gradients[1][name], gradient, rtol=1e-12, atol=1e-12 * gradient.abs().max())
    measured = {}
    original = module_interface.BackwardMemory.done
    monkeypatch.setattr(module_interface.BackwardMemory, "done",
                        lambda self, steps: (measured.__setitem__(steps, self.saved_bytes), original(self, steps)))
    monkeypatch.setattr(stepwise, "check_memory", lambda parts, device: None)  # the forward pass's own estimate
    simulation = recurrent(np.random.default_rng(3))
    alone = dataclasses.replace(simulation, network=dataclasses.replace(simulation.network, projections=()))
    unconnected = torch_models.compile(alone, learn={"rec.v": "per_element"}, dtype="float64")  # nothing to copy
    unconnected()
    monkeypatch.setattr(module_interface, "available_bytes", lambda device: measured[4] * 500 // 4 // 5)
    with pytest.raises(DescriptionError, match=r"tensors saved at every step"):
        unconnected()
    unconnected(recompute_every=10).spikes["rec"].sum().backward()
    # the recurrent network's ring of learned delays (52 slots of 100 synapses) is copied at each of 50 stretches
    with pytest.raises(DescriptionError, match=r"recomputing stretches of 10 steps"):
        module(recompute_every=10)
    for wrong in (0, 2.5, True):
        with pytest.raises(DescriptionError, match=r"recompute_every: .*give a number of steps >= 1"):
            module(recompute_every=wrong)


def test_stretches_end_where_parts_run_at_once_end(monkeypatch):
    """BackwardMemory.stretches over parts of 8 steps (calls of the compiled steps) and single steps: with
    gradients, the probe's 4 steps one by one, then each part; with recompute_every=10, parts gathered until a
    stretch holds at least 10 steps, none cut; the memory check then counts the longest stretch's steps (17) and
    one per stretch (2): 100 bytes a step, 1900 bytes."""
    from torch_models import module as module_interface
    from torch_models.module import BackwardMemory

    parts = lambda first: [(first, 8), (first + 8, 1), (first + 9, 8), (first + 17, 8), (first + 25, 1)]
    probe = [(0, 1, False), (1, 2, False), (2, 3, False), (3, 4, False)]
    assert BackwardMemory(30, "cpu").stretches(parts) == probe + [(4, 12, False), (12, 13, False), (13, 21, False),
                                                                  (21, 29, False), (29, 30, False)]
    memory = BackwardMemory(30, "cpu", 10)
    assert memory.stretches(parts) == probe + [(4, 21, True), (21, 30, True)]
    memory.saved_bytes = 400  # the probe's 4 steps
    monkeypatch.setattr(module_interface, "available_bytes", lambda device: 1900)
    memory.done(4)
    monkeypatch.setattr(module_interface, "available_bytes", lambda device: 1899)
    with pytest.raises(DescriptionError, match=r"needs about 1,900 bytes"):
        memory.done(4)
    with torch.no_grad():
        assert BackwardMemory(26, "cpu", 10).stretches(parts) == [(0, 8, False), (8, 9, False), (9, 17, False),
                                                                  (17, 25, False), (25, 26, False)]


def test_delays_written_back_in_whole_steps_raise_max_delay_to_hold_them():
    """max_delay 4.96 ms holds 50 whole steps (4.96/0.1 rounds to 50): a delay learned to 4.96 ms runs as 5 ms,
    and the description written back says max_delay 5 ms, so that it stays valid and runs so in Brian2."""
    simulation = leaky()
    syn = dataclasses.replace(simulation.network.projections[0], max_delay="4.96*ms")
    simulation = dataclasses.replace(simulation, network=dataclasses.replace(simulation.network, projections=(syn,)))
    module = torch_models.compile(simulation, learn={"syn.delay": "per_element"}, dtype="float64")
    module.learning.set_value("syn.delay", [0.00496, 0.001, 0.002, 0.003])
    fitted = module.to_simulation().network.projections[0]
    assert fitted.delays[0] == pytest.approx(0.005, rel=1e-12) == si_value(fitted.max_delay, "max_delay")
    with torch.no_grad():
        learned = module().traces["post.v"][0].numpy()
    assert np.array_equal(run_brian(module.to_simulation()).traces["post.v"], learned)
