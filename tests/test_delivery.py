"""Event delivery (torch_models/delivery.py), each kernel on its own against arrivals worked out by hand."""
import numpy as np
import pytest
import torch

from torch_models.delivery import Arrived, ArrivedPerRow, EventLists, RingBuffer

INDEX = torch.tensor([0, 0, 1, 2])  # the source neuron of each of 4 synapses
DELAYS = [2, 0, 1, 2]               # in steps


def by_synapse(index):
    """`written` for EventLists: each synapse writes to a neuron of its own number."""
    return torch.arange(len(index)), len(index)


def real(arrived):
    """The (row, synapse, count) entries of an ArrivedPerRow that are not padding."""
    entries = zip(arrived.rows.tolist(), arrived.synapses.tolist(), arrived.written.tolist(), arrived.counts.tolist())
    return [(row, synapse, count) for row, synapse, written, count in entries if written == synapse]


def run(delivery, events, delays=None):
    """{step: arrivals} over the steps of `events` (steps, batch, neurons)."""
    buffer, arrived = delivery.buffer(events.shape[1], "cpu"), {}
    for step, now in enumerate(events):
        result = delivery.arrivals(buffer, now, step, delays(step) if delays else None)
        if result is not None:
            arrived[step] = result
    return arrived


def test_event_lists_deliver_each_event_after_its_synapses_delay():
    """Neuron 0 fires at step 0 (batch row 0), neuron 2 at step 1 (row 1): synapse 1 (delay 0) at step 0,
    synapse 0 (delay 2) at step 2 in row 0; synapse 3 (delay 2) at step 3 in row 1; nothing else."""
    events = torch.zeros(5, 2, 3, dtype=torch.float64)
    events[0, 0, 0] = events[1, 1, 2] = 1
    arrived = run(EventLists(INDEX, torch.tensor(DELAYS).numpy(), 3, torch.float64), events)
    assert sorted(arrived) == [0, 2, 3]
    assert arrived[0].synapses.tolist() == [1] and arrived[0].counts.tolist() == [[1.0], [0.0]]
    assert arrived[2].synapses.tolist() == [0] and arrived[2].counts.tolist() == [[1.0], [0.0]]
    assert arrived[3].synapses.tolist() == [3] and arrived[3].counts.tolist() == [[0.0], [1.0]]
    per_row = run(EventLists(INDEX, torch.tensor(DELAYS).numpy(), 3, torch.float64, by_synapse(INDEX)), events)
    assert isinstance(per_row[3], ArrivedPerRow) and real(per_row[3]) == [(1, 3, 1.0)]


def test_ring_buffer_keeps_the_delay_in_force_at_emission():
    """Neuron 0 fires at steps 0 and 1; synapse 0's delay is 2 at step 0, then 0: the first event arrives at
    step 2, the second at step 1 (emitted with delay 0), and a change after emission moves neither."""
    events = torch.zeros(4, 1, 3, dtype=torch.float64)
    events[0, 0, 0] = events[1, 0, 0] = 1
    delays = lambda step: torch.tensor([2 if step == 0 else 0, 0, 1, 2])
    arrived = run(RingBuffer(INDEX, 3, torch.float64), events, delays)
    counts = {step: result.counts[0, 0].item() for step, result in arrived.items()}
    assert counts == {0: 0.0, 1: 1.0, 2: 1.0, 3: 0.0}
    assert all(isinstance(result, Arrived) and result.synapses is None for result in arrived.values())
    assert arrived[0].counts[0].tolist() == [0.0, 1.0, 0.0, 0.0]  # synapse 1: delay 0, at once


def arrivals_by_definition(index, delays, events):
    """{step: {(row, synapse): count}}: synapse s receives at step t the events of its neuron at t - delay."""
    expected = {}
    for step in range(len(events)):
        for synapse, (neuron, delay) in enumerate(zip(index.tolist(), delays.tolist())):
            for row in range(events.shape[1]):
                count = float(events[step - delay, row, neuron]) if step >= delay else 0.0
                if count:
                    expected.setdefault(step, {})[(row, synapse)] = count
    return expected


def random_network(hub=0):
    """400 random synapses of neurons 5-29 (0-4 have none: events of a group that only a subgroup's synapses
    leave) with delays 0-4 steps, `hub` more of neuron 5 at delay 0; events of 12 steps, 3 batch rows, counts up
    to 2: (index, delays, events)."""
    rng = np.random.default_rng(4)
    index = np.concatenate([np.full(hub, 5), rng.integers(5, 30, 400)])
    delays = np.concatenate([np.zeros(hub, int), rng.integers(0, 5, 400)])
    return index, delays, torch.as_tensor(rng.choice([0.0, 0.0, 0.0, 0.0, 1.0, 2.0], size=(12, 3, 30)))


def delivered(arrived, index, delays, per_row):
    """{step: {(row, synapse): count}} of the arrivals at each step; asserts they are listed in the order of
    Brian2's spike queue (the longest delay first, then by neuron, then by synapse; per batch row where listed
    per row)."""
    queue_order = lambda synapses: sorted(synapses, key=lambda synapse: (-delays[synapse], index[synapse], synapse))
    got = {}
    for step, result in arrived.items():
        if per_row:
            pairs = real(result)
            for row in {row for row, _, _ in pairs}:
                listed = [synapse for pair_row, synapse, _ in pairs if pair_row == row]
                assert listed == queue_order(listed)
        else:
            assert result.synapses.tolist() == queue_order(result.synapses.tolist())
            pairs = ((row, int(synapse), count) for k, synapse in enumerate(result.synapses)
                     for row, count in enumerate(result.counts[:, k].tolist()))
        got[step] = {(row, synapse): count for row, synapse, count in pairs if count}
    return {step: pairs for step, pairs in got.items() if pairs}


@pytest.mark.parametrize("hub", [0, 3000], ids=["padded", "packed"])
def test_event_lists_match_the_definition_in_both_layouts(hub):
    """Random synapses, delays and events against the definition, in the order of Brian2's spike queue; `hub`
    extra synapses of one neuron make padding every key to the longest list too costly: the lists stay packed."""
    index, delays, events = random_network(hub)
    for per_row in (False, True):
        delivery = EventLists(torch.as_tensor(index), delays, 5, torch.float64, by_synapse(index) if per_row else None)
        assert delivery.padded == (hub == 0)
        assert delivered(run(delivery, events), index, delays, per_row) == arrivals_by_definition(index, delays, events)


def test_event_lists_in_fixed_shapes_match_the_definition_once_their_capacity_holds_every_event():
    """Fixed shapes (a compiled step's; steps as tensors): every step lists `capacity` events. The first run's
    capacity, 16, is below the events due in most steps (up to 131 here): those past it are not delivered, and
    `grown` says so, raising the capacity to the next power of two, 256; the run again delivers what the
    definition says, and `grown` is then False."""
    index, delays, events = random_network()
    due = [sum(int(torch.count_nonzero(events[step - delay, :, 5:])) for delay in set(delays) if step >= delay)
           for step in range(len(events))]
    delivery = EventLists(torch.as_tensor(index), delays, 5, torch.float64, by_synapse(index))
    delivery.fix_shapes()
    runs = []
    for _ in range(2):
        buffer = delivery.buffer(3, "cpu")
        arrived = {step: delivery.arrivals(buffer, now, torch.tensor(step)) for step, now in enumerate(events)}
        assert all(result.written.shape == (capacity * delivery.longest,) for result in arrived.values()
                   for capacity in [runs[0][2] if runs else 16])
        runs.append((delivered(arrived, index, delays, True), delivery.grown(buffer, 3), delivery.capacities[3]))
    expected = arrivals_by_definition(index, delays, events)
    (first, grew, capacity), (second, grew_again, same_capacity) = runs
    assert max(due) == 131 and grew and capacity == same_capacity == 256 and first != expected
    assert not grew_again and second == expected


@pytest.mark.parametrize("slots", [1, 3])
def test_event_lists_without_synapses_deliver_nothing(slots):
    events = torch.ones(2, 1, 3, dtype=torch.float64)
    for per_row in (False, True):
        empty = torch.zeros(0, dtype=torch.int64)
        written = by_synapse(empty) if per_row else None
        assert run(EventLists(empty, empty.numpy(), slots, torch.float64, written), events) == {}
