"""Event delivery: which synapses a pathway's events reach at each step, behind one small interface, so that
another kernel (dense products, CSR, a GPU kernel) is another class:

    delivery.buffer(batch, device)                      -> the tensors it keeps between steps, a tuple (maybe ())
    delivery.arrivals(buffer, events, step, delays)     -> Arrived, ArrivedPerRow, or None when nothing arrives

`events` (batch, neurons): this step's events of the pathway's side; `delays` (changing delays only): every
synapse's delay in steps in force now. Events arriving in one step are listed in the order Brian2's spike queue
delivers them (that of their emission, then by neuron, then by synapse): code adding to one neuron variable adds
them in that order. `may_repeat`: whether one synapse can receive several events in one step
(they are then delivered one after the other, as Brian2's queue delivers them); `reads_delays`: whether it
takes the delays in force (delays that change during the run). `step` is a Python int, or a 0-d tensor where
the step goes through torch.compile (its value then is no constant of the compiled code).
"""
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from torch_models.delays import _split


@dataclass
class Arrived:
    counts: torch.Tensor     # (batch, synapses listed): events arriving at each
    synapses: object         # (k,) synapse indices in the order Brian2's spike queue delivers them; None: all


class ArrivedPerRow:
    """Arrivals listed one entry per (event, synapse it reaches), each (k,): `rows` (batch row), `counts`,
    `written` (the neuron of the side the code writes) and `synapses`, in the order Brian2's spike queue delivers
    them within a batch row. Events whose synapses are a padded table's row have `width` entries each; those of
    padding reach synapse 0 and written neuron n, one past the last (`flat` maps them to a spare element)."""

    def __init__(self, rows, counts, written, synapses, width=1):
        """`rows`, `counts`: per event, each repeated for its `width` entries; `synapses`: a tensor, or a function
        computing it (where the code reads synaptic values)."""
        self._rows, self._counts, self.written, self._synapses, self.width = rows, counts, written, synapses, width
        self._computed = {}

    def _per_entry(self, values):
        return values if self.width == 1 else values[:, None].expand(-1, self.width).reshape(-1)

    # computed where read, once (functools.cached_property takes a lock, which torch.compile cannot trace)
    rows = property(lambda self: self._once("rows", lambda: self._per_entry(self._rows)))
    counts = property(lambda self: self._once("counts", lambda: self._per_entry(self._counts)))
    synapses = property(lambda self: self._once("synapses", self._synapses if callable(self._synapses)
                                                else lambda: self._synapses))

    def _once(self, name, compute):
        if name not in self._computed:
            self._computed[name] = compute()
        return self._computed[name]

    def flat(self, batch, n):
        """Each entry's (row, written neuron) in (batch, n) values as one dimension, row * n + neuron; padding
        to the element after them, batch * n."""
        if batch == 1:
            return self.written
        written = self.written.view(-1, self.width)
        return torch.where(written < n, self._rows[:, None] * n + written, batch * n).view(-1)


class EventLists(nn.Module):
    """Fixed delays, event-driven: the events of the last `slots` steps are kept per neuron (slots x batch x
    neurons); the synapses reached now are looked up by (neuron, delay) for the events due now: those of
    the neurons with an event d steps ago, for each delay d that synapses have. `written`: for code that adds
    per batch row (ProjectionStep.add), (the neuron each synapse writes to, the number n of those neurons):
    arrivals are then listed per batch row (ArrivedPerRow).

    The synapses of each (neuron, delay) key with synapses are a row of a table padded to the longest list, so
    that a lookup is a few operations whatever the number of events; where padding would more than quadruple
    the synapses (a few keys with many more synapses than the rest), the lists stay packed (CSR) and a lookup
    expands them, in more operations. Listed per row, a padded table's rows are delivered whole, padding
    included (no operation sorts it out, but each entry of padding then costs what a synapse costs: padding
    may at most double them); otherwise padding is -1 and dropped.

    With fixed shapes (`fix_shapes`, for a step through torch.compile; padded tables listed per row only), each
    step lists a fixed number, the capacity, of the events due (torch.nonzero_static; the places left empty
    reach the table's row of padding), whatever the number due. The buffer then keeps the most events due in
    one step; `grown` tells after a run whether that exceeded the capacity (the run then is to be repeated:
    events past the capacity were not delivered) and raises the capacity to it."""
    may_repeat = reads_delays = False
    PADDING_LIMIT, PADDING_LIMIT_PER_ROW = 4, 2
    FIRST_CAPACITY = 16  # a capacity only grows: events listed cost as much as the events due
    capacities = None  # with fixed shapes: {batch size: the events listed per step}

    def __init__(self, index, delay_steps, slots, dtype, written=None):
        """`index`: the neuron of the pathway's side at each synapse; `delay_steps`: its delays.
        Only the events of the neurons from the first to the last with synapses are kept (a subgroup's)."""
        super().__init__()
        self.slots, self.dtype, self.per_row = slots, dtype, written is not None
        self.first = int(index.min()) if len(index) else 0
        self.n_side = int(index.max()) + 1 - self.first if len(index) else 0
        index = index - self.first
        self.register_buffer("index", index)
        self.register_buffer("delay_steps", torch.as_tensor(delay_steps))
        delays, delay_index = np.unique(-np.asarray(delay_steps), return_inverse=True)  # the delays synapses
        delays = -delays  # have, longest first: events then arrive in the order they were emitted
        self.n_synapses, self.n_delays = len(index), len(delays)  # as numbers: len() of a tensor is slow
        self.delays = delays.tolist()
        self.register_buffer("listed_delays", torch.as_tensor(self.delays, dtype=torch.int64))
        keys = index.numpy() * len(delays) + delay_index  # k = neuron*len(delays) + its delay's index
        order = np.argsort(keys, kind="stable")  # the synapses by key, in synapse order within one
        offsets = np.searchsorted(keys[order], np.arange(self.n_side * len(delays) + 1))
        lengths = np.diff(offsets)
        used = np.flatnonzero(lengths)
        self.longest = longest = int(lengths.max(initial=0))
        limit = self.PADDING_LIMIT_PER_ROW if self.per_row else self.PADDING_LIMIT
        self.padded = len(used) * longest <= limit * len(order) + 1024
        if self.padded:  # key -> its row of `table` (the last row, all padding, for keys without synapses)
            row_of_key = np.full(len(lengths), len(used))
            row_of_key[used] = np.arange(len(used))
            table = np.full((len(used) + 1, longest), -1)
            rows = np.repeat(np.arange(len(used)), lengths[used])
            table[rows, np.arange(len(order)) - np.repeat(offsets[used], lengths[used])] = order
            self.register_buffer("row_of_key", torch.as_tensor(row_of_key))
            if self.per_row:
                index_written, n_written = written
                self.register_buffer("written_table", torch.as_tensor(
                    np.where(table >= 0, np.asarray(index_written)[np.maximum(table, 0)], n_written)))
                table = np.maximum(table, 0)
            self.register_buffer("table", torch.as_tensor(table))
        else:  # the synapses of key k: by_key[offsets[k]:offsets[k + 1]]
            self.register_buffer("by_key", torch.as_tensor(order))
            self.register_buffer("offsets", torch.as_tensor(offsets))
            if self.per_row:
                self.register_buffer("index_written", written[0])

    @property
    def can_fix_shapes(self):
        return self.per_row and self.padded and self.n_synapses > 0

    def fix_shapes(self):
        """List a fixed number of events per step from now on (the class's docstring)."""
        self.capacities, self._lookups = {}, {}

    def buffer(self, batch, device):
        """(past events per neuron,); () when every delay is 0 (events arrive at once); with fixed shapes, then
        the most events due in one step, a 0-d tensor."""
        history = () if self.slots == 1 else (torch.zeros(self.slots, batch, self.n_side, dtype=self.dtype,
                                                          device=device),)
        if self.capacities is None:
            return history
        self.capacities.setdefault(batch, self.FIRST_CAPACITY)
        key = (batch, torch.device(device))
        if key not in self._lookups:
            self._lookups[key] = self._lookup(batch, device)
        return history + (torch.zeros((), dtype=torch.int64, device=device),)

    def grown(self, buffer, batch):
        """After a run with fixed shapes: whether more events were due in one step than the capacity listed
        (then raised to the next power of two at least that many)."""
        if int(buffer[-1]) <= self.capacities[batch]:
            return False
        self.capacities[batch] = _power_of_two(int(buffer[-1]))
        return True

    def _lookup(self, batch, device):
        """For each place of the events due (delays, batch, neurons) as one dimension, and one past them (the
        fill of empty places): (its table row, its batch row)."""
        place = torch.arange(self.n_delays * batch * self.n_side, device=device)
        delay_index, rows, neurons = place // (batch * self.n_side), place // self.n_side % batch, place % self.n_side
        padding = torch.tensor([len(self.table) - 1], device=device)
        return (torch.cat((self.row_of_key.index_select(0, self._keys(delay_index, neurons)), padding)),
                torch.cat((rows, torch.zeros_like(padding))))

    def arrivals(self, buffer, events, step, delays=None):
        if not self.n_synapses:
            return None
        history, due = self._history_and_due(buffer, events[:, self.first:self.first + self.n_side], step)
        if self.capacities is not None:
            return self._reached_fixed(due, buffer[-1])
        if self.per_row:
            return self._reached_per_row(due)
        delay_index, neurons = torch.nonzero(due.any(1), as_tuple=True)  # an event in any batch row
        if not neurons.shape[0]:
            return None
        keys = self._keys(delay_index, neurons)
        if self.padded:
            reached = self.table.index_select(0, self.row_of_key.index_select(0, keys)).reshape(-1)
            chosen = reached.index_select(0, torch.nonzero(reached >= 0).squeeze(1))
        else:
            chosen = self._packed(keys)[1]
        if not chosen.shape[0]:
            return None
        return Arrived(history[(step - self.delay_steps[chosen]) % self.slots, :, self.index[chosen]].T, chosen)

    def _history_and_due(self, buffer, events, step):
        """(the events of the last `slots` steps, this step's among them; the events due now (delays, batch,
        neurons))."""
        if self.slots == 1:
            return events[None], events[None]
        history = buffer[0]
        if isinstance(step, torch.Tensor):  # slots as tensors: torch.compile traces no Python index from them
            history.index_copy_(0, (step % self.slots)[None], events[None])
            return history, history.index_select(0, (step - self.listed_delays) % self.slots)
        history[step % self.slots] = events
        due_slots = [(step - delay) % self.slots for delay in self.delays]
        return history, history[due_slots] if self.n_delays > 1 else history[due_slots[0]][None]

    def _reached_per_row(self, due):
        delay_index, rows, neurons = torch.nonzero(due, as_tuple=True)
        if not neurons.shape[0]:
            return None
        keys, counts = self._keys(delay_index, neurons), due[delay_index, rows, neurons]
        if self.padded:
            return self._table_rows(self.row_of_key.index_select(0, keys), rows, counts)
        event, synapses = self._packed(keys)
        if not synapses.shape[0]:
            return None
        return ArrivedPerRow(rows.index_select(0, event), counts.index_select(0, event),
                             self.index_written.index_select(0, synapses), synapses)

    def _reached_fixed(self, due, most):
        """_reached_per_row in fixed shapes: the first `capacity` events due, then places of padding."""
        batch, due = due.shape[1], due.reshape(-1)
        most.copy_(torch.maximum(most, due.count_nonzero()))
        listed = torch.nonzero_static(due, size=self.capacities[batch], fill_value=due.shape[0]).squeeze(1)
        table_rows, rows = self._lookups[(batch, due.device)]
        return self._table_rows(table_rows.index_select(0, listed), rows.index_select(0, listed),
                                torch.cat((due, due.new_zeros(1))).index_select(0, listed))

    def _table_rows(self, table_rows, rows, counts):
        """Arrivals per row: the synapses of the padded table's rows `table_rows`, each event's whole row."""
        return ArrivedPerRow(rows, counts, self.written_table.index_select(0, table_rows).reshape(-1),
                             lambda: self.table.index_select(0, table_rows).reshape(-1), self.longest)

    def _keys(self, delay_index, neurons):
        """The (neuron, delay) keys of events of `neurons`, each due for the synapses of its neuron with the
        delay `delays[delay_index]`."""
        return neurons * self.n_delays + delay_index if self.n_delays > 1 else neurons

    def _packed(self, keys):
        """(event, synapse) for every synapse the events of `keys` reach, from the packed lists."""
        starts, lengths = self.offsets[keys], self.offsets[keys + 1] - self.offsets[keys]
        total = int(lengths.sum())
        event = torch.repeat_interleave(torch.arange(len(keys), device=keys.device), lengths, output_size=total)
        position = torch.arange(total, device=keys.device) - (lengths.cumsum(0) - lengths)[event]
        return event, self.by_key[starts[event] + position]


class RingBuffer(nn.Module):
    """Delays that change (re-read at segment starts or at every emission): an event enters a per-synapse ring
    of `slots` steps at slot step + delay when emitted, so later changes do not move it (emission-time
    semantics); every synapse's count arrives each step."""
    may_repeat = reads_delays = True

    def __init__(self, index, slots, dtype):
        super().__init__()
        self.slots, self.dtype = slots, dtype
        self.register_buffer("index", index)
        self._grids = {}

    def buffer(self, batch, device):
        return (torch.zeros(self.slots, batch, len(self.index), dtype=self.dtype, device=device),)

    def arrivals(self, buffer, events, step, delays):
        (ring,) = buffer
        self._push(ring, events[:, self.index], step, delays)
        slot = step % self.slots
        arrived = ring[slot].clone()
        ring[slot] = 0
        return Arrived(arrived, None)

    def _push(self, ring, counts, step, delays):
        """Events now enter the ring at slot step + delay."""
        slots = ((step + delays) % self.slots).expand_as(counts)
        rows, columns = _grid(self._grids, counts)
        ring.index_put_((slots, rows, columns), counts.to(ring.dtype), accumulate=True)


@dataclass
class ArrivedWeighted(Arrived):
    active: torch.Tensor     # (batch, synapses): where an event arrives, with its weight in counts (0 or more)


class LearnedDelays(nn.Module):
    """Per-synapse delays that learn, relaxed: an event emitted now enters a per-synapse ring at step + n with
    weight 1 - f and at step + n + 1 with weight f, from the delay in steps d (torch_models/delays.py's split:
    mode 'integer' n = floor(d + 1/2) and f of value 0 and gradient 1, so the run is exactly that of whole-step
    delays and the gradient that of the linear interpolation; 'fractional' n = floor(d), f = d - n). Both
    arrivals are delivered even at weight 0, so that the weight's gradient reaches the delay; the code must add
    its increment times the weight (an additive pathway)."""
    may_repeat = False
    reads_delays = True

    def __init__(self, index, max_steps, mode, dtype):
        super().__init__()
        self.max_steps, self.mode, self.dtype = max_steps, mode, dtype
        self.slots = max_steps + 2
        self.register_buffer("index", index)
        self._grids = {}

    def buffer(self, batch, device):
        shape = (self.slots, batch, len(self.index))
        return torch.zeros(shape, dtype=self.dtype, device=device), torch.zeros(shape, dtype=torch.bool, device=device)

    def arrivals(self, buffer, events, step, delays):
        weights, reached = buffer
        whole, fraction = _split(delays, self.max_steps, self.mode)
        emitted = events[:, self.index]
        where = emitted > 0
        rows, synapses = _grid(self._grids, emitted)
        for lag, share in ((0, 1 - fraction), (1, fraction)):
            slots = ((step + whole.long() + lag) % self.slots).expand_as(emitted)
            weights.index_put_((slots, rows, synapses), (emitted * share).to(weights.dtype), accumulate=True)
            reached.index_put_((slots[where], rows[where], synapses[where]), torch.ones((), dtype=torch.bool,
                                                                                       device=reached.device))
        slot = step % self.slots
        arrived, active = weights[slot].clone(), reached[slot].clone()
        weights[slot] = 0
        reached[slot] = False
        return ArrivedWeighted(arrived, None, active) if bool(active.any()) else None


def _power_of_two(n):
    """The least power of two at least n (>= 1)."""
    return 1 << max(int(n) - 1, 0).bit_length()


def _grid(cache, values):
    """(batch row, synapse column) of every entry of `values` (batch, synapses), built once per shape and device
    in `cache`."""
    key = (*values.shape, values.device)
    if key not in cache:
        batch, n_syn = values.shape
        cache[key] = (torch.arange(batch, device=values.device)[:, None].expand(batch, n_syn),
                      torch.arange(n_syn, device=values.device).expand(batch, n_syn))
    return cache[key]
