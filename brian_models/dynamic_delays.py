"""Delays that change during a run, on Brian2's runtime targets (numpy, cython).

Brian2 converts delays to steps once per run() (SpikeQueue.prepare; brian2 issue #355). On the runtime
targets both the push (`SynapticPathway.push_spikes`) and the delivery (`_queue.peek()` / `advance()` in the
synapses template) call the pathway's queue object from Python, so a queue with the same four methods can
take its place: this one reads each synapse's delay variable when a spike is *emitted* and keeps the arrival
step with the spike, so spikes in flight keep their delay (emission-time semantics, as Brian2's own queue
has between runs). Cost per step with spikes: reading the delays and the delay rule (bridge/delays.py) in numpy,
and gathering the spiking sources' synapses and filing them by arrival step: numpy on the numpy target, two
small Cython functions on the cython target (compiled once through Brian2's Cython extension cache).
cpp_standalone runs its own C++ queue and is refused (brian_models.network).

When delays shrink, two spikes of one synapse can arrive in the same step. Brian2's cython target delivers
both; its numpy target applies a write to a *synaptic* variable once per step (it assumes each synapse
arrives once), so that case is refused there with an error instead of being lost.
"""
import functools

import numpy as np
from brian2.parsing.statements import parse_statement

from bridge.delays import RING_WIDTH
from bridge.errors import DescriptionError


class EmissionTimeQueue:
    """Drop-in for a SynapticPathway's SpikeQueue: same interface (prepare, push, peek, advance).

    A ring buffer of `rule.slots` rows, one per arrival step modulo the ring; row k holds `fill[k]` synapse
    indices in push order. Emitting stores each spike in the row of its arrival step, so later delay changes
    cannot touch it."""

    def __init__(self, n_source, read_delays, rule, refuse_repeats=""):
        self.n_source = n_source
        self.read_delays = read_delays  # synapse indices -> their delays now (seconds)
        self.rule = rule                # bridge.delays.DelayRule
        self.refuse_repeats = refuse_repeats  # why two arrivals of one synapse in one step cannot be delivered
        self.step = 0
        self.rows = np.empty((rule.slots, RING_WIDTH), dtype=np.int32)
        self.fill = np.zeros(rule.slots, dtype=np.int64)
        self.first = self.synapses = None

    def prepare(self, real_delays, dt, sources):
        """Called by Brian2 at the start of every run(): index synapses by source (delays are read later)."""
        order = np.argsort(sources, kind="stable").astype(np.int32)  # Brian2's order: by synapse index
        self.synapses = order
        self.first = np.searchsorted(sources[order], np.arange(self.n_source + 1))

    def push(self, spikes):
        synapses = self._gather(spikes)
        rows = (self.step + self.rule.steps(self.read_delays(synapses)).astype(np.int64)) % self.rule.slots
        self._reserve(int(self.fill.max()) + len(rows))
        self._file(rows, synapses)

    def _gather(self, spikes):
        """The synapses of the spiking sources, in Brian2's order (a slice per source: faster than one
        vectorized gather up to ~50 sources per step)."""
        return np.concatenate([self.synapses[start:stop] for start, stop in
                               zip(self.first[spikes].tolist(), self.first[spikes + 1].tolist())])

    def _file(self, rows, synapses):
        """Append each synapse to the row of its arrival step, in push order."""
        order = np.argsort(rows, kind="stable")
        rows = rows[order]
        added = np.bincount(rows, minlength=self.rule.slots)
        group_start = np.cumsum(added) - added
        self.rows[rows, self.fill[rows] + np.arange(len(rows)) - group_start[rows]] = synapses[order]
        self.fill += added

    def _reserve(self, width):
        if width > self.rows.shape[1]:
            grown = np.empty((self.rule.slots, max(width, 2 * self.rows.shape[1])), dtype=np.int32)
            grown[:, :self.rows.shape[1]] = self.rows
            self.rows = grown

    def peek(self):
        row = self.step % self.rule.slots
        due = self.rows[row, :self.fill[row]]
        if self.refuse_repeats and len(np.unique(due)) < len(due):
            raise DescriptionError(self.rule.where.rpartition(".")[0] + ".synapse.on_pre", self.refuse_repeats)
        return due

    def advance(self):
        self.fill[self.step % self.rule.slots] = 0
        self.step += 1


class CompiledEmissionTimeQueue(EmissionTimeQueue):
    """The same queue with `_gather` and `_file` compiled, for the cython target."""

    def _gather(self, spikes):
        return _compiled().gather(self.synapses, self.first, spikes)

    def _file(self, rows, synapses):
        _compiled().file(self.rows, self.fill, synapses, rows)


_CYTHON = """
#cython: language_level=3, boundscheck=False, wraparound=False
import numpy as np

def gather(const int[::1] synapses, const long[::1] first, const int[::1] spikes):
    cdef Py_ssize_t n = 0, k, s
    for k in range(spikes.shape[0]):
        n += first[spikes[k] + 1] - first[spikes[k]]
    out = np.empty(n, dtype=np.int32)
    cdef int[::1] gathered = out
    n = 0
    for k in range(spikes.shape[0]):
        for s in range(first[spikes[k]], first[spikes[k] + 1]):
            gathered[n] = synapses[s]
            n += 1
    return out

def file(int[:, ::1] rows, long[::1] fill, const int[::1] synapses, const long[::1] arrival_rows):
    cdef Py_ssize_t k, r
    for k in range(synapses.shape[0]):
        r = arrival_rows[k]
        rows[r, fill[r]] = synapses[k]
        fill[r] += 1
"""


@functools.cache
def _compiled():
    from brian2.codegen.runtime.cython_rt.extension_manager import cython_extension_manager
    return cython_extension_manager.create_extension(_CYTHON, include_dirs=[np.get_include()],
                                                     owner_name="spikebridge EmissionTimeQueue")


def install(pathway, read_delays, rule, target):
    """Replace a SynapticPathway's queue (before the run) by an EmissionTimeQueue."""
    own = set(pathway.synapses.equations.names)
    written = sorted({parse_statement(line)[0] for line in pathway.code.splitlines()
                   if line.strip() and not line.strip().startswith("#")} & own)
    refuse = (f"two spikes of one synapse arrive in the same step and on_pre writes the synaptic variables "
              f"{written}, which Brian2's numpy target would apply once; use target 'cython' (or torch)"
              if target == "numpy" and written else "")
    queue = (CompiledEmissionTimeQueue if target == "cython" else EmissionTimeQueue)(len(pathway.source), read_delays,
                                                                                      rule, refuse)
    pathway.queue = queue
    pathway.variables.add_object("_queue", queue)
    return queue
