"""Brian2's PoissonInput, the whole construct in one module: its description type and validation, its lowering
to plan numbers, the memory it takes, what each backend does with it, and how a Brian2 script's PoissonInput
is imported. The backends hold no PoissonInput code: they iterate the plan's entries and call these hooks.

`n` independent Poisson inputs at `rate` onto every neuron `start`..`stop`-1 (stop None: to the last; a Brian2
subgroup) of population `target`: at each step each neuron's
`variable` grows by `weight` times a Binomial(n, rate*dt) count, in the synapses slot at order 0 (after the
on_pre pathways, before the on_post ones; by name among PoissonInputs), dropped while a variable marked
(unless refractory) is held. `weight`: a quantity string, or a TimedArray of one value per row (Brian2's weight
'f(t)'), read at each step's start. The counts are drawn once per run from `seed` (numpy's default_rng), so that
both backends receive identical input; Brian2 runs them as a run_regularly adding a TimedArray of the counts.
"""
from dataclasses import dataclass

import brian2
import numpy as np
from brian2 import TimedArray
from brian2.groups.subgroup import Subgroup

from bridge import brian_parse, checks, timed_array
from bridge.errors import DescriptionError
from bridge.fields import check_integer, check_name, neuron_range, probability, register
from bridge.names import POISSON_INPUT_REGISTRY
from bridge.quantities import parse_quantity, quantity_text, si_value

ORDER = 0  # its order in the synapses slot: on_pre pathways run at -1, on_post at +1


@register
@dataclass(frozen=True)
class PoissonInput:
    """The description: see the module's docstring."""
    name: str
    target: str
    variable: str
    n: int
    rate: str
    weight: object
    seed: int = 0
    start: int = 0
    stop: object = None

    def __post_init__(self):
        check_name(self.name, "PoissonInput.name")
        check_integer(self.n, f"PoissonInput {self.name!r}.n", 1)
        check_integer(self.seed, f"PoissonInput {self.name!r}.seed", 0)
        probability(self.rate, 0.0, f"PoissonInput {self.name!r}.rate")
        if isinstance(self.weight, timed_array.TimedArray) and np.ndim(self.weight.values) != 1:
            raise DescriptionError(f"PoissonInput {self.name!r}.weight", "a TimedArray of one value per row (the "
                                                                         "weight of every neuron)")
        self.weight_dim()

    def weight_dim(self):
        """The weight's units (Brian2 dimensions)."""
        where = f"PoissonInput {self.name!r}.weight"
        unit = self.weight.unit if isinstance(self.weight, timed_array.TimedArray) else self.weight
        return parse_quantity(unit, where).dim

    def check(self, population):
        """Against its target population: neurons within it, a variable of the model, a weight in that
        variable's units."""
        dims, where = checks.variable_dims(population.model), f"PoissonInput {self.name!r}"
        self.neurons(population.n)
        if self.variable not in dims:
            raise DescriptionError(f"{where}.variable", f"unknown variable {self.variable!r}; population "
                                                        f"{population.name!r} has {sorted(dims)}")
        weight_dim = self.weight_dim()
        if weight_dim != dims[self.variable]:
            raise DescriptionError(f"{where}.weight", f"{self.weight!r} has units {weight_dim}; "
                                                      f"{self.variable} needs {dims[self.variable] or 'no units'}")

    def neurons(self, n_target):
        """(start, stop) of the neurons it reaches, in a population of n_target."""
        return neuron_range(self.start, self.stop, n_target, f"PoissonInput {self.name!r}.stop")

    def counts(self, dt, n_steps, n_target):
        """Binomial(n, rate*dt) counts, (n_steps, neurons reached)."""
        p = probability(self.rate, dt, f"PoissonInput {self.name!r}.rate")
        start, stop = self.neurons(n_target)
        return poisson_counts(self.n, p, n_steps, stop - start, self.seed)

    def memory_bytes(self, n_steps, n_target):
        """{part: bytes} of its lowered counts (float64)."""
        return {f"PoissonInput {self.name!r}": n_steps * n_target * 8}

    def weights(self, dt, n_steps):
        """The weight (SI) at each step's start, (n_steps,): a TimedArray's row by Brian2's lookup."""
        if not isinstance(self.weight, timed_array.TimedArray):
            return np.full(n_steps, si_value(self.weight, f"PoissonInput {self.name!r}.weight"))
        return np.asarray(self.weight.values, dtype=float)[self.weight.rows(np.arange(n_steps) * dt, dt)]

    def lower(self, dt, n_steps, n_target):
        return PoissonInputPlan(self, self.name, self.target, self.variable, self.weights(dt, n_steps),
                                self.counts(dt, n_steps, n_target), *self.neurons(n_target), n_target)

    def registry_entry(self):
        """What an exported script lists for its import (names.POISSON_INPUT_REGISTRY)."""
        return self.variable, self.n, self.rate, self.weight, self.seed, self.start, self.stop


@dataclass(frozen=True)
class PoissonInputPlan:
    described: PoissonInput
    name: str
    target: str
    variable: str
    weights: np.ndarray    # (n_steps,) the weight at each step, SI
    counts: np.ndarray     # (n_steps, stop - start) Binomial counts, added times weight in the synapses slot
    start: int             # the neurons reached: start..stop-1 of the target's n
    stop: int
    n: int
    order: int = ORDER

    def brian2(self, code, plan, native):
        """Its Brian2 statements in the plan's program (bridge/program.py): the helper below, called; Brian2's
        own PoissonInput where Brian2 draws the inputs itself ('inputs' in `native`)."""
        dim = checks.variable_dims(plan.populations[self.target].model)[self.variable]
        rate = code.value(parse_quantity(self.described.rate, "rate"), self.described.rate)
        weight, in_time = self.described.weight, isinstance(self.described.weight, timed_array.TimedArray)
        weight = code.value(brian_parse.brian_timed_array(weight)) if in_time else \
            code.value(brian2.Quantity(self.weights[0], dim=dim), weight)
        group = self.target if (self.start, self.stop) == (0, self.n) else f"{self.target}[{self.start}:{self.stop}]"
        if "inputs" in native:
            code.add(f"{self.target}.namespace[{self.name + '_weight'!r}] = {weight}")
            read = f"{self.name}_weight" + ("(t)" if in_time else "")
            code.add(f"{self.name} = PoissonInput({group}, {self.variable!r}, {self.described.n}, {rate}, "
                     f"{read!r})", creates=self.name)  # Brian2 names it (PoissonInput takes no name)
            return
        code.helper(poisson_counts)
        code.helper(poisson_input)
        code.add(f"{self.name} = poisson_input({group}, {self.name!r}, {self.variable!r}, {self.described.n}, "
                 f"{rate}, {weight}, {self.described.seed}, {plan.n_steps}, dt)", creates=self.name)

    def increments(self):
        """What torch adds at each step: weight times the counts, 0 where it does not reach, (n_steps, n)."""
        increments = np.zeros((len(self.counts), self.n))
        increments[:, self.start:self.stop] = self.counts * self.weights[:, None]
        return increments

    @staticmethod
    def add(value, increment, receptive):
        """torch's synapses slot: the target variable's `value` (batch, n) after this step's `increment`, none
        where `receptive` (None: everywhere) is False."""
        return value + (increment if receptive is None else increment.where(receptive, 0.0))


def poisson_counts(n, p, n_steps, n_target, seed):
    """Binomial(n, p) counts per step and neuron, (n_steps, n_target), from numpy's default_rng(seed)."""
    return np.random.default_rng(seed).binomial(n, p, size=(n_steps, n_target))


def poisson_input(target, name, variable, n, rate, weight, seed, n_steps, dt):
    """spikebridge's PoissonInput: poisson_counts at rate*dt, weight times them added in the synapses slot
    (order 0), as Brian2's PoissonInput adds."""
    counts = poisson_counts(n, float(rate * dt), n_steps, len(target), seed)
    target.namespace[f"{name}_counts"] = TimedArray(counts.astype(float), dt=dt)
    target.namespace[f"{name}_weight"] = weight
    read = f"{name}_weight(t)" if isinstance(weight, TimedArray) else f"{name}_weight"  # a weight changing in time
    return target.run_regularly(f"{variable} += {read}*{name}_counts(t, i)", when="synapses", order=0,
                                name=name, dt=dt)


def from_brian2(poisson, fail, resolve):
    """A Brian2 PoissonInput onto a group or subgroup (seed 0: spikebridge draws the counts), its weight a
    quantity or a TimedArray 'f(t)'; `fail(obj, construct)` refuses what a description cannot hold, `resolve(name)`
    gives the value a name has for the PoissonInput's code."""
    target, start, stop = poisson._group, 0, None
    if isinstance(target, Subgroup):
        target, start, stop = target.source, target.start, target.stop
    if (poisson.when, poisson.order) != ("synapses", ORDER):
        fail(poisson, f"a PoissonInput out of its place in the schedule ({poisson.when!r}, order {poisson.order})")
    weight = _weight(poisson, target.variables[poisson.target_var].dim, resolve, fail)
    return PoissonInput(poisson.name, target.name, poisson.target_var, int(poisson.N),
                        quantity_text(poisson.rate, brian2.Hz.dim, f"{poisson.name}.rate"), weight, 0, start,
                        None if stop == len(target) else stop)


def _weight(poisson, dim, resolve, fail):
    """A Brian2 PoissonInput's weight as the description holds it: a quantity string (in `dim`), or the
    TimedArray of a weight 'f(t)'."""
    weight, where = poisson.weight, f"{poisson.name}.weight"
    if isinstance(weight, str):
        name = weight.replace(" ", "").removesuffix("(t)")
        if weight.replace(" ", "") == f"{name}(t)" and isinstance(resolve(name), TimedArray):
            return timed_array.TimedArray.from_brian2(resolve(name))
        try:  # an expression of numbers and units only is a quantity
            weight = parse_quantity(weight, where)
        except DescriptionError:
            fail(poisson, f"the weight expression {poisson.weight!r} (give a quantity or a TimedArray 'f(t)')")
    return quantity_text(weight, dim, where)


def from_exported(group, name, registered, dt, n_steps, fail):
    """A PoissonInput an exported script lists (`registered`: its registry entry), checked against the counts
    the script adds to `group`."""
    poisson = PoissonInput(name, group.name, *registered)
    counts = group.namespace.get(f"{name}_counts")
    if not isinstance(counts, TimedArray) or not np.array_equal(np.asarray(counts.values),
                                                                poisson.counts(dt, n_steps, len(group))):
        fail(group, f"Poisson counts {name!r} that differ from the PoissonInput {POISSON_INPUT_REGISTRY} names")
    return poisson
