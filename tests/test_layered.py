"""The layered (time-batched) torch module equals the step-by-step one and Brian2; export and errors."""
import dataclasses

import numpy as np
import pytest
import torch

from bridge.plan import lower
from bridge import batch, library
from experiments import ipd
from bridge.description import Network, Projection, SynapseModel
from bridge.errors import DescriptionError
from brian_models import network as brian_network
from torch_models.layered import LayeredNetwork
from torch_models.stepwise import StepwiseNetwork

TASK = ipd.IPDTask(n_classes=4, fibres=6, duration=0.05)


def small_classifier(seed, per_source_delays=False, n_hidden=5, tau_synapse=None):
    rng = np.random.default_rng(seed)
    n_in = 2 * TASK.fibres
    weights = {"ears_hidden": rng.normal(0.25, 0.2, (n_in, n_hidden)),
               "hidden_output": rng.normal(0, 1, (n_hidden, TASK.n_classes))}
    steps = rng.integers(0, 9, n_in)[:, None].repeat(n_hidden, 1) if per_source_delays else \
        rng.integers(0, 9, (n_in, n_hidden))
    scale = 1 if tau_synapse is None else 3  # a current synapse gives a smaller peak v per spike
    weights["ears_hidden"] *= scale
    return ipd.classifier(TASK, weights, steps * TASK.dt, n_hidden, tau_synapse=tau_synapse, max_delay="8*ms")


def test_lif_scenario_equals_the_step_by_step_module():
    simulation = library.scenario("lif", seed=1, duration="100*ms")  # refractory LIF, current synapses
    with torch.no_grad():
        step_by_step, layered = StepwiseNetwork(simulation)(batch_size=2), LayeredNetwork(simulation)(batch_size=2)
    assert step_by_step.spikes["lif"].sum() > 20
    assert torch.equal(step_by_step.spikes["lif"], layered.spikes["lif"])
    assert layered.spikes["lif"].dtype == step_by_step.spikes["lif"].dtype == torch.bool  # no gradients recorded
    for key in simulation.run.record:
        scale = step_by_step.traces[key].abs().max()
        assert torch.allclose(step_by_step.traces[key], layered.traces[key], rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("axonal, tau_synapse", [(False, None), (True, None), (True, "2*ms")])
def test_two_layers_equal_the_step_by_step_module_and_brian2(axonal, tau_synapse):
    simulation = small_classifier(seed=2, per_source_delays=axonal, tau_synapse=tau_synapse)
    spikes, _, _ = TASK.draw(4, np.random.default_rng(5))
    inputs = {"ears": torch.as_tensor(spikes, dtype=torch.float64)}
    kinds = {"ears_hidden": "axonal"} if axonal else {}
    with torch.no_grad():
        layered = LayeredNetwork(simulation, delays=kinds)(inputs)
        step_by_step = StepwiseNetwork(simulation)(inputs)
    counts = layered.spikes["hidden"].sum((1, 2))
    assert counts.min() > 5 and len(set(counts.tolist())) > 1
    assert torch.equal(layered.spikes["hidden"], step_by_step.spikes["hidden"])
    assert torch.allclose(layered.traces["output.v"], step_by_step.traces["output.v"], rtol=0, atol=1e-12)
    record = brian_network.run(batch.replicate(simulation, {"ears": spikes}))
    brian_v = batch.split(record.traces["output.v"], 4)
    assert np.allclose(brian_v, layered.traces["output.v"].numpy(), rtol=0, atol=1e-12)
    copy, neuron = np.divmod(record.spikes["hidden"][0], 5)
    for b in range(4):
        torch_steps, torch_neurons = np.nonzero(layered.spikes["hidden"][b].numpy())
        assert sorted(zip(neuron[copy == b], record.spikes["hidden"][1][copy == b])) == \
            sorted(zip(torch_neurons, torch_steps))


def test_learned_weights_and_delays_export_to_a_description():
    simulation = small_classifier(seed=3, per_source_delays=True)
    module = LayeredNetwork(simulation, delays={"ears_hidden": "axonal"})
    with torch.no_grad():
        module.projections["ears_hidden"].delays.steps.copy_(torch.arange(12, dtype=torch.float64) * 0.7)
        module.parameter("hidden_output", "w").mul_(-2)
    exported = module.to_simulation()
    proj = exported.network.projections[0]
    expected = np.floor(np.arange(12) * 0.7 + 0.5)
    assert np.array_equal(lower(exported).projections[proj.name].delay_steps.reshape(12, 5), expected[:, None].repeat(5, 1))
    spikes, _, _ = TASK.draw(3, np.random.default_rng(6))
    inputs = {"ears": torch.as_tensor(spikes, dtype=torch.float64)}
    with torch.no_grad():
        assert torch.equal(module(inputs).traces["output.v"], LayeredNetwork(exported)(inputs).traces["output.v"])


def test_delays_beyond_the_declared_maximum_are_refused_in_the_description():
    with pytest.raises(DescriptionError, match="exceeds max_delay"):
        ipd.classifier(TASK, {"ears_hidden": np.ones((12, 2)), "hidden_output": np.ones((2, 4))},
                       np.full((12, 2), 9e-3), 2, max_delay="8*ms")


def test_what_the_layered_module_cannot_run_is_refused():
    simulation = small_classifier(seed=0)
    net = simulation.network
    loop = Projection("back", "hidden", "hidden", SynapseModel("w : 1", on_pre="v_post += w"), values={"w": "1"})
    with pytest.raises(DescriptionError, match="form a loop"):
        LayeredNetwork(dataclasses.replace(simulation, network=dataclasses.replace(
            net, projections=net.projections + (loop,))))
    setter = dataclasses.replace(net.projections[1], synapse=SynapseModel("w : 1", on_pre="v_post = w"))
    with pytest.raises(DescriptionError, match=r"hidden_output'\.synapse\.on_pre"):
        LayeredNetwork(dataclasses.replace(simulation, network=Network(
            net.populations, net.sources, projections=(net.projections[0], setter))))
    with pytest.raises(ValueError, match=r"delays: unknown projections \['nope'\]"):
        LayeredNetwork(simulation, delays={"nope": "axonal"})
    with pytest.raises(DescriptionError, match="one delay per source neuron"):
        LayeredNetwork(simulation, delays={"ears_hidden": "axonal"})
    with pytest.raises(ValueError, match=r"\['ears'\]: shape \(2, 50, 11\); expected"):
        LayeredNetwork(simulation)({"ears": torch.zeros(2, 50, 11)})
