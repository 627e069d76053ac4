"""NIR graphs in and out (bridge/app/nir_graphs.py): the discretisation pinned by hand, then round trips with the
real snnTorch and Norse (the `nir` extra; Norse installed with --no-deps, as the README says)."""
import copy
from dataclasses import replace

import nir
import numpy as np
import pytest
import torch

from bridge import library
from bridge.app import nir_graphs
from bridge.app.cli import main
from bridge.errors import DescriptionError

DT = 1e-4


def _one_neuron(kind, **parameters):
    """Input (1) -> Affine (weight 0.6, bias 0.1) -> one neuron node -> Output."""
    return {"input": nir.Input(input_type={"input": np.array([1])}),
            "weights": nir.Affine(np.array([[0.6]]), np.array([0.1])),
            "cell": getattr(nir, kind)(**{k: np.array([v]) for k, v in parameters.items()}),
            "output": nir.Output(output_type={"output": np.array([1])})}, \
        [("input", "weights"), ("weights", "cell"), ("cell", "output")]


# dt/tau = 0.1 and r dt/tau = 1, as snnTorch writes a Leaky neuron; CubaLIF: dt/tau_syn = 0.5, w_in dt/tau_syn = 1
LIF = dict(tau=1e-3, r=10.0, v_leak=0.0, v_threshold=1.0, v_reset=0.0)
CUBA = dict(tau_syn=2e-4, tau_mem=1e-3, r=10.0, v_leak=0.0, v_threshold=1.0, v_reset=0.0, w_in=2.0)
# Input spikes at steps 0 and 1; the node (depth 1) runs from step 1 with the input of the step before; v as
# recorded at each step's start, after the node's step (and before its reset):
#   LIF      v1 = 0 + 0.1 (0 - 0) + 1 (0.6 + 0.1) = 0.7; v2 = 0.7 - 0.07 + 0.7 = 1.33 (spike, reset to 0);
#            v3 = 0 + 0.1 (bias alone) = 0.1; v4 = 0.1 - 0.01 + 0.1 = 0.19
#   CubaLIF  i1 = 0.5 (2 (0.7)) = 0.7, v1 = 0.1 (10 (0.7)) = 0.7; i2 = 0.7 + 0.5 (1.4 - 0.7) = 1.05,
#            v2 = 0.7 + 0.1 (10.5 - 0.7) = 1.68 (spike); i3 = 1.05 + 0.5 (0.2 - 1.05) = 0.625, v3 = 0 + 0.625 = 0.625
#   IF (dt r = 1)  v1 = 0.7, v2 = 1.4 (spike), v3 = 0.1, v4 = 0.2
BY_HAND = {"LIF": (LIF, [0, 0.7, 1.33, 0.1, 0.19]), "CubaLIF": (CUBA, [0, 0.7, 1.68, 0.625]),
           "IF": (dict(r=1e4, v_threshold=1.0, v_reset=0.0), [0, 0.7, 1.4, 0.1, 0.2])}


@pytest.mark.parametrize("kind", sorted(BY_HAND))
def test_a_nir_node_runs_its_euler_step_from_its_depth_in_both_backends(kind, paired):
    parameters, voltages = BY_HAND[kind]
    steps = len(voltages)
    simulation = nir_graphs.to_simulation(_one_neuron(kind, **parameters), "0.1*ms", f"{steps * DT!r}*second",
                                          {"input": ([0, 0], [0.0, DT])})
    brian, torch_record, report = paired(simulation)
    assert report.identical
    np.testing.assert_allclose(brian.traces["cell.v"][:, 0], voltages, rtol=1e-12, atol=1e-15)
    assert brian.spikes["cell"][1].tolist() == [2]


def _snntorch_net(last):
    """Linear(6, 8) -> Leaky -> Linear(8, 5) -> `last` (Leaky, RLeaky or Synaptic), reset to zero (NIR's
    v_reset), seeded weights."""
    import snntorch as snn

    torch.manual_seed(0)
    cell = dict(threshold=torch.ones(5), init_hidden=True, reset_mechanism="zero", reset_delay=False, output=True)
    beta = torch.full((5,), 0.8)
    last = {"Leaky": lambda: snn.Leaky(beta=beta, **cell),
            "RLeaky": lambda: snn.RLeaky(beta=beta, linear_features=5, **cell),
            "Synaptic": lambda: snn.Synaptic(alpha=torch.full((5,), 0.6), beta=beta, **cell)}[last]()
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), snn.Leaky(beta=torch.full((8,), 0.9), threshold=torch.ones(8),
                                                                init_hidden=True, reset_mechanism="zero",
                                                                reset_delay=False),
                              torch.nn.Linear(8, 5), last)
    with torch.no_grad():
        net[0].weight.mul_(3)
        net[2].weight.mul_(3)
    return net


def _raster(steps=60, width=6):
    return (np.random.default_rng(0).random((steps, width)) < 0.3).astype(np.float32)


def _run_torch_net(net, raster, batch=False):
    """The output spikes (steps, elements) of a module stepped as net(x, state) -> (out, state), from rest."""
    state, spikes = None, []
    with torch.no_grad():
        for row in raster:
            out, state = net(torch.tensor(row)[None] if batch else torch.tensor(row), state)
            spikes.append(out.reshape(-1).numpy().copy())
    return np.array(spikes)


def _run_snntorch_net(net, raster):
    """The output spikes of a snnTorch Sequential (its state held inside, init_hidden) from rest."""
    from snntorch import utils

    utils.reset(net)
    return _run_torch_net(lambda x, state: (net(x)[0], None), raster)


def _spike_set(indices, steps, shift=0):
    return sorted(zip((np.asarray(steps) + shift).tolist(), np.asarray(indices).tolist()))


def _imported(path, raster, tmp_path, dt="0.1*ms"):
    np.savez(tmp_path / "in.npz", input=raster)
    return nir_graphs.load(path, dt, spikes_path=tmp_path / "in.npz")


@pytest.mark.parametrize("last", ["Leaky", "RLeaky", "Synaptic"])
def test_a_snntorch_network_runs_the_same_spikes_in_brian2_and_torch(last, tmp_path, paired):
    from snntorch.export_nir import export_to_nir

    net, raster = _snntorch_net(last), _raster()
    nir_graphs.write(tmp_path / "net.nir", export_to_nir(copy.deepcopy(net), torch.zeros(6)))
    expected = _run_snntorch_net(net, raster)
    simulation = _imported(tmp_path / "net.nir", raster, tmp_path)
    brian, _, report = paired(simulation)
    assert report.identical
    output = simulation.network.populations[-1].name
    steps, indices = np.nonzero(expected)
    assert len(steps) > 10
    assert _spike_set(*brian.spikes[output]) == _spike_set(indices, steps, shift=2)  # two neuron nodes deep


@pytest.mark.parametrize("last", ["Leaky", "Synaptic"])
def test_spikebridge_to_nir_to_snntorch_gives_the_same_spikes_back(last, tmp_path):
    """(snnTorch 1.0.0 does not read recurrent graphs back as it runs RLeaky: bench/nir_round_trips.py.)"""
    from snntorch.export_nir import export_to_nir
    from snntorch.import_nir import import_from_nir

    net, raster = _snntorch_net(last), _raster()
    nir_graphs.write(tmp_path / "net.nir", export_to_nir(copy.deepcopy(net), torch.zeros(6)))
    expected = _run_snntorch_net(net, raster)
    simulation = _imported(tmp_path / "net.nir", raster, tmp_path)
    nir_graphs.write(tmp_path / "back.nir", nir_graphs.from_simulation(simulation))
    assert nir_graphs.load(tmp_path / "back.nir", "0.1*ms", spikes_path=tmp_path / "in.npz") == simulation
    back = _run_torch_net(import_from_nir(nir.read(tmp_path / "back.nir")), raster)
    assert back.sum() > 10 and np.array_equal(back, expected)


def _norse_net(cell):
    """Linear(6, 8) -> `cell` -> Linear(8, 5) -> `cell` in Norse at dt = 1: a LIFBoxCell (tau 10 and 5 steps)
    or an IAFCell."""
    import norse.torch as norse

    torch.manual_seed(0)
    ones, zeros = torch.ones, torch.zeros
    cells = {"LIFBox": lambda n, rate: norse.LIFBoxCell(norse.LIFBoxParameters(
        tau_mem_inv=torch.full((n,), rate), v_leak=zeros(n), v_th=ones(n), v_reset=zeros(n)), dt=1.0),
        "IAF": lambda n, rate: norse.IAFCell(norse.IAFParameters(v_th=ones(n), v_reset=zeros(n)), dt=1.0)}
    net = norse.SequentialState(torch.nn.Linear(6, 8), cells[cell](8, 0.1), torch.nn.Linear(8, 5),
                                cells[cell](5, 0.2))
    with torch.no_grad():
        net[0].weight.mul_(30 if cell == "LIFBox" else 2)
        net[2].weight.mul_(30 if cell == "LIFBox" else 2)
    return net


@pytest.mark.parametrize("cell", ["LIFBox", "IAF"])
def test_norse_to_nir_to_spikebridge_and_back_gives_norse_s_spikes(cell, tmp_path, paired):
    """At dt = 1 (time in steps): Norse 1.1.0 writes tau = dt / tau_mem_inv, the time constant only then, and
    reads IF as v <- v + x, NIR's Euler step only then (bench/nir_round_trips.py measures dt = 1 ms)."""
    import norse.torch as norse

    net, raster = _norse_net(cell), _raster()
    expected = _run_torch_net(net, raster, batch=True)
    nir_graphs.write(tmp_path / "net.nir", norse.to_nir(net, torch.zeros(6), dt=1.0))
    simulation = _imported(tmp_path / "net.nir", raster, tmp_path, dt="1*second")
    brian, _, report = paired(simulation)
    steps, indices = np.nonzero(expected)
    assert report.identical and len(steps) > 10
    assert _spike_set(*brian.spikes[simulation.network.populations[-1].name]) == _spike_set(indices, steps, 2)
    nir_graphs.write(tmp_path / "back.nir", nir_graphs.from_simulation(simulation))
    back = _run_torch_net(norse.from_nir(nir.read(tmp_path / "back.nir"), dt=1.0), raster, batch=True)
    assert np.array_equal(back, expected)


def test_delay_nodes_delay_each_source_before_the_weights_and_each_target_after(paired):
    """Input spikes of both neurons at step 0; 2 steps before the weights for neuron 0, 1 step after them for
    all: arrivals at steps 3 (weight 0.6) and 1 (0.3), each read by the next step's update (dt/tau = 0.1, r dt/tau
    = 1): v2 = 0.3, v3 = 0.27, v4 = 0.243 + 0.6 = 0.843."""
    nodes = {"input": nir.Input(input_type={"input": np.array([2])}), "early": nir.Delay(np.array([2e-4, 0.0])),
             "weights": nir.Linear(np.array([[0.6, 0.3]])), "late": nir.Delay(np.array([1e-4])),
             "cell": nir.LIF(**{k: np.array([v]) for k, v in LIF.items()}),
             "output": nir.Output(output_type={"output": np.array([1])})}
    edges = [("input", "early"), ("early", "weights"), ("weights", "late"), ("late", "cell"), ("cell", "output")]
    simulation = nir_graphs.to_simulation((nodes, edges), "0.1*ms", f"{5 * DT!r}*second", {"input": ([0, 1], [0, 0])})
    brian, _, report = paired(simulation)
    assert report.identical
    np.testing.assert_allclose(brian.traces["cell.v"][:, 0], [0, 0, 0.3, 0.27, 0.843], rtol=1e-12)
    graph = nir_graphs.from_simulation(simulation)  # written back as one Delay per source, before the weights
    np.testing.assert_allclose(graph.nodes["weights_delay"].delay, [3e-4, 1e-4])
    nodes, edges = graph.nodes, graph.edges
    assert nir_graphs.to_simulation((nodes, edges), "0.1*ms", f"{5 * DT!r}*second",
                                    {"input": ([0, 1], [0, 0])}) == simulation
    crossed = replace(simulation.network.projections[0], i=[0, 0, 1], j=[0, 0, 0], values={"w": [0.1, 0.2, 0.3]},
                      delays=[1e-4, 2e-4, 1e-4])
    with pytest.raises(DescriptionError, match="'weights'.i: two synapses join one pair"):
        nir_graphs.from_simulation(replace(simulation, network=replace(simulation.network, projections=(crossed,))))


def _brian2_lif(input_steps, method="exact"):
    """One LIF neuron in Brian2's own terms (volts, tau 20 ms) and one input train with 15 mV synapses."""
    from bridge.description import (Network, NeuronModel, Population, Projection, RunSettings, Simulation,
                                    SpikeTrains, SynapseModel)
    model = NeuronModel("dv/dt = (v_rest - v)/tau : volt", threshold="v > v_th", reset="v = v_reset", method=method,
                        parameters={"v_rest": "-70*mV", "v_th": "-50*mV", "v_reset": "-65*mV", "tau": "20*ms"})
    network = Network(populations=(Population("cell", model, 1, {"v": "-70*mV"}),),
                      sources=(SpikeTrains("input", 1, [0] * len(input_steps), [k * DT for k in input_steps]),),
                      projections=(Projection("weights", "input", "cell",
                                              SynapseModel("w : volt", on_pre="v_post += w"), values={"w": [[0.015]]}),))
    return Simulation(network, RunSettings(f"{10 * DT!r}*second", record=("cell.v",)))


@pytest.mark.parametrize("method", ["exact", "euler"])
def test_a_brian2_lif_is_written_as_the_nir_lif_whose_euler_step_is_its_own(method, paired):
    """v <- a v + c with a = exp(-dt/tau) (exact) or 1 - dt/tau (euler), c = (1 - a) v_rest: the NIR LIF of
    tau' = dt/(1 - a), v_leak = v_rest, r = a tau'/dt (the jump w, decayed once, is the input w a step later)."""
    a = np.exp(-DT / 0.02) if method == "exact" else 1 - DT / 0.02
    simulation = _brian2_lif([2, 4], method)
    graph = nir_graphs.from_simulation(simulation)
    lif = graph.nodes["cell"]
    np.testing.assert_allclose([lif.tau[0], lif.r[0], lif.v_leak[0], lif.v_threshold[0], lif.v_reset[0]],
                               [DT / (1 - a), a / (1 - a), -0.07, -0.05, -0.065], rtol=1e-9)
    assert "erases input that reaches a neuron in the step it spikes" in graph.metadata["notes"][0]
    brian, _, _ = paired(simulation)
    again, _, report = paired(nir_graphs.to_simulation((graph.nodes, graph.edges), "0.1*ms", f"{10 * DT!r}*second",
                                                       {"input": ([0, 0], [2 * DT, 4 * DT])}))
    assert report.identical and brian.spikes["cell"][1].tolist() == again.spikes["cell"][1].tolist() == [5]
    # v after each step (the NIR form's step runs before the record): jumps of 15 mV after steps 2 and 4, each
    # read by the next step and decayed once; the spike at 5; the reset to -65 mV, decayed once at step 6
    rest, jump = -0.07, 0.015
    by_hand = [rest, rest, rest, rest + jump * a, rest + jump * a ** 2, rest + jump * (a ** 3 + a),
               rest + 0.005 * a]
    np.testing.assert_allclose(again.traces["cell.v"][:7, 0], by_hand, rtol=1e-12)
    np.testing.assert_allclose(brian.traces["cell.v"][[4, 7], 0], [by_hand[3], by_hand[6]], rtol=1e-12)


def test_brian2_s_reset_erases_input_in_the_spike_step_where_nir_keeps_it(paired):
    """Input at steps 2, 4 and 5 (the spike step): Brian2's reset to -65 mV erases the third jump; the NIR form
    adds it, decayed once, to the next step: 15 mV x a apart at step 6."""
    simulation = _brian2_lif([2, 4, 5])
    graph = nir_graphs.from_simulation(simulation)
    brian, _, _ = paired(simulation)
    again, _, _ = paired(nir_graphs.to_simulation((graph.nodes, graph.edges), "0.1*ms", f"{10 * DT!r}*second",
                                                  {"input": ([0, 0, 0], [2 * DT, 4 * DT, 5 * DT])}))
    assert brian.spikes["cell"][1].tolist() == again.spikes["cell"][1].tolist() == [5]
    np.testing.assert_allclose(again.traces["cell.v"][6, 0] - brian.traces["cell.v"][7, 0],
                               0.015 * np.exp(-DT / 0.02), rtol=1e-9)


def test_depths_count_neuron_nodes_and_not_a_node_s_own_recurrence():
    nodes, edges = _one_neuron("LIF", **LIF)
    nodes.update({"w2": nir.Linear(np.array([[1.0]])), "second": nir.LIF(**{k: np.array([v]) for k, v in LIF.items()}),
                  "loop": nir.Linear(np.array([[0.5]]))})
    edges += [("cell", "w2"), ("w2", "second"), ("second", "loop"), ("loop", "second")]
    assert nir_graphs.depths((nodes, edges)) == {"input": 0, "weights": 0, "cell": 1, "output": 1, "w2": 1,
                                                 "second": 2, "loop": 2}


def _refusal(graph):
    with pytest.raises(DescriptionError) as error:
        nir_graphs.to_simulation(graph)
    return str(error.value)


def test_nodes_and_edges_spikebridge_does_not_read_are_refused_by_name():
    nodes, edges = _one_neuron("LIF", **LIF)
    nodes.update(first=nir.Delay(np.array([1e-4])), second=nir.Delay(np.array([1e-4])))
    looped = edges + [("input", "first"), ("first", "second"), ("second", "first")]
    assert "node 'first': a cycle of Delay nodes" in _refusal((nodes, looped))
    nodes, edges = _one_neuron("LIF", **LIF)
    nodes["weights"] = nir.Conv1d(None, np.ones((1, 1, 1)), 1, 0, 1, 1, np.zeros(1))
    assert "node 'weights'" in _refusal((nodes, edges)) and "Conv1d is not read" in _refusal((nodes, edges))
    nodes, edges = _one_neuron("LI", tau=1e-3, r=1.0, v_leak=0.0)
    nodes.update({"w2": nir.Linear(np.array([[1.0]])), "next": nir.LI(tau=np.array([1e-3]), r=np.array([1.0]),
                                                            v_leak=np.array([0.0]))})
    assert "a LI node feeds a Linear node" in _refusal((nodes, edges + [("cell", "w2"), ("w2", "next")]))
    nodes, edges = _one_neuron("LIF", **LIF)
    nodes["w2"] = nir.Linear(np.ones((1, 3)))
    assert "node 'cell': 1 elements by one node beside it, 3 by 'w2'" in _refusal((nodes, edges + [("cell", "w2")]))
    nodes, edges = _one_neuron("LIF", **LIF)
    nodes["cell"] = nir.LIF(**{k: np.full(2, v) for k, v in LIF.items()})
    assert "node 'cell'.tau" in _refusal((nodes, edges))


def test_what_nir_cannot_hold_is_refused_on_export():
    with pytest.raises(DescriptionError, match="Population 'lif': its model is none of NIR's nodes"):
        nir_graphs.from_simulation(library.simulation("lif"))  # two variables, refractoriness
    simulation = _brian2_lif([2])
    at_or_over = replace(simulation.network.populations[0],
                         model=replace(simulation.network.populations[0].model, threshold="v >= v_th"))
    with pytest.raises(DescriptionError, match="Population 'cell': its model is none of NIR's nodes"):
        nir_graphs.from_simulation(replace(simulation, network=replace(simulation.network, populations=(at_or_over,))))
    quadratic = replace(simulation.network.populations[0], model=replace(
        simulation.network.populations[0].model, method="euler",
        equations="dv/dt = (v_rest - v)/tau + 0.1*(v - v_rest)**2/(tau*volt) : volt"))
    with pytest.raises(DescriptionError, match="Population 'cell': its model is none of NIR's nodes"):
        nir_graphs.from_simulation(replace(simulation, network=replace(simulation.network, populations=(quadratic,))))
    away = replace(simulation.network.populations[0], initial={"v": "-60*mV"})
    with pytest.raises(DescriptionError, match="'cell'.initial\\['v'\\]: a NIR graph holds no state"):
        nir_graphs.from_simulation(replace(simulation, network=replace(simulation.network, populations=(away,))))
    simulation = nir_graphs.to_simulation(_one_neuron("LIF", **LIF))
    nodes, edges = _one_neuron("LIF", **LIF)
    nodes["input"] = nir.Input(input_type={"input": np.array([2])})
    nodes["weights"] = nir.Linear(np.ones((2, 2)))
    nodes["cell"] = nir.LIF(**{k: np.full(2, v) for k, v in LIF.items()})
    simulation = nir_graphs.to_simulation((nodes, edges))
    crossed = replace(simulation.network.projections[0], delays=[[1e-4, 2e-4], [2e-4, 1e-4]],
                      max_delay="1*ms")
    with pytest.raises(DescriptionError, match="'weights'.delays: they vary from synapse to synapse"):
        nir_graphs.from_simulation(replace(simulation, network=replace(simulation.network, projections=(crossed,))))


def test_cli_imports_and_exports_nir_and_refuses_bad_files_in_one_line(tmp_path, capsys):
    nodes, edges = _one_neuron("LIF", **LIF)
    nir_graphs.write(tmp_path / "net.nir", nir.NIRGraph(nodes, edges))
    np.savez(tmp_path / "in.npz", input=np.array([[1], [1], [0], [0]]))
    assert main(["import", str(tmp_path / "net.nir"), "--spikes", str(tmp_path / "in.npz"),
                 "--out", str(tmp_path / "net.json")]) == 0
    assert "5 steps of 0.1 ms" in capsys.readouterr().out  # four raster steps and the node's one
    assert main(["export", str(tmp_path / "net.json"), "--nir", str(tmp_path / "back.nir")]) == 0
    np.testing.assert_array_equal(nir.read(tmp_path / "back.nir").nodes["weights"].weight, [[0.6]])
    np.savez(tmp_path / "graded.npz", input=np.array([[0.5], [1]]))
    (tmp_path / "text.nir").write_text("not hdf5")
    for argv, message in ((["import", str(tmp_path / "net.nir"), "--spikes", str(tmp_path / "graded.npz")],
                           "array 'input': shape (2, 1): give (steps, elements) of 0s and 1s"),
                          (["import", str(tmp_path / "text.nir"), "--duration", "1*ms"], "not a NIR file"),
                          (["import", str(tmp_path / "net.nir")], "give --duration"),
                          (["import", str(tmp_path / "script.py"), "--dt", "1*ms"], "--dt: for NIR files (.nir)")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
