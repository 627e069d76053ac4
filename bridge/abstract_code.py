"""Brian2's abstract code of a lowered network, extracted once: the statements each of Brian2's code objects
executes (state update, threshold, reset, custom events, synaptic pathways, clock-driven synaptic updates,
summed variables, run_regularly), with where each name lives and the SI value of every constant read.

The statements come from Brian2's own objects, those the plan's Brian2 program creates (bridge/program.py,
what the Brian2 backend runs): its state updaters, then make_statements with Brian2's loop-invariant
optimisation preference (expressions constant over the group pulled out as `_lio_*` statements,
subexpressions as temporaries, operations ordered as Brian2 orders them), so that a backend executing them
evaluates the formulas Brian2's numpy target evaluates, in the same order of operations. What is extracted is
plain text and numbers: the torch backend needs nothing of Brian2's object model.
"""
from dataclasses import dataclass

import numpy as np
from brian2 import prefs
from brian2.codegen.translation import analyse_identifiers, make_statements
from brian2.core.namespace import DEFAULT_CONSTANTS, DEFAULT_UNITS
from brian2.core.variables import ArrayVariable, Subexpression
from brian2.parsing.bast import brian_dtype_from_dtype
from brian2.utils.stringtools import get_identifiers

from bridge.names import neuron_variable
from bridge.program import program


@dataclass(frozen=True)
class Block:
    """The statements of one code object, `target op expression` lines in order; `name` and `order` place it
    within its slot of the schedule (Brian2 runs a slot's objects by (order, name))."""
    statements: tuple
    name: str = ""
    order: int = 0

    @property
    def text(self):
        return "\n".join(self.statements)

    @property
    def names(self):
        """Every identifier the statements read or write."""
        return set().union(*[get_identifiers(line) for line in self.statements])


EMPTY = Block(())


@dataclass(frozen=True)
class NeuronCode:
    variables: dict          # state variable -> 'float', 'integer' or 'boolean' (lastspike, not_refractory too)
    conditional: frozenset   # the variables marked (unless refractory)
    shared: frozenset        # the shared variables (one value for the group; torch holds it for every neuron)
    update: Block            # the state update ('groups' slot)
    threshold: Block         # ends in `_cond = condition`; EMPTY without threshold
    reset: Block
    events: dict             # custom event -> Block ending in `_cond = condition` ('after_thresholds')
    on_event: dict           # custom event -> Block of its run_on_event code ('after_resets')
    before_start: Block      # the (constant over dt) subexpressions, set once per step
    subexpressions: dict     # name -> Block computing `_value`, the value of a subexpression without white noise
    constants: dict          # name -> SI float of every parameter and unit the code reads


@dataclass(frozen=True)
class SynapseCode:
    locations: dict          # name -> (owner, variable in it), owner 'synapse', 'source' or 'target'; a linked
    #                          variable: ('linked', (population, variable))
    pathways: dict           # pathway name -> Block (on_pre order -1, on_post +1)
    update: object           # Block of the clock-driven equations ('groups' slot), or None
    summed: dict             # (side, neuron variable) -> Block computing `_synaptic_var` ('groups' slot)
    unset: tuple             # synaptic state variables the description gives no value: they start at 0
    parameters: frozenset    # the synaptic parameters (per synapse, constant during the run)
    constants: dict          # name -> SI float of every parameter and unit the code reads


@dataclass(frozen=True)
class OperationCode:
    block: Block
    constants: dict


@dataclass(frozen=True)
class NetworkCode:
    populations: dict        # name -> NeuronCode
    projections: dict        # name -> SynapseCode
    operations: dict         # name -> OperationCode


def extract(plan):
    """The NetworkCode of a Plan, read from the Brian2 objects its program creates (bridge/program.py: those
    the Brian2 backend runs)."""
    objects = program(plan).execute()
    populations = {name: _neuron_code(plan.populations[name], objects[name]) for name in plan.populations}
    projections = {name: _synapse_code(proj, objects[name]) for name, proj in plan.projections.items()}
    operations = {}
    for name, operation in plan.operations.items():  # its code on the whole group: torch runs it on the slice of
        # neurons, `i` counting within it (Brian2's subgroup runner computes that `i` with statements of its own)
        block = statements(objects[operation.target].run_regularly(operation.code, name=f"{name}_on_group"))
        operations[name] = OperationCode(block, constants(plan.populations[operation.target].constants, block.names))
    return NetworkCode(populations, projections, operations)


def statements(runner):
    """The Block Brian2 executes for a code runner (None: EMPTY)."""
    if runner is None:
        return EMPTY
    runner.update_abstract_code(run_namespace={})
    return _block(runner.abstract_code, runner.group, runner.name, runner.order)


def _block(code, group, name="", order=0):
    """The Block Brian2's numpy target executes for abstract `code` on `group`."""
    _, used, unknown = analyse_identifiers(code, group.variables, recursive=True)
    variables = group.resolve_all(used | unknown, run_namespace={})
    scalar, vector = make_statements(code, variables, np.float64, optimise=prefs.codegen.loop_invariant_optimisations)
    simplified = not _repeated_indices(vector, group.variables)
    return Block(tuple(_line(statement, simplified) for statement in scalar + vector), name, order)


def _line(statement, simplified):
    """A statement as Brian2's numpy target writes it (NumpyCodeGenerator.translate_statement): where
    `simplified`, a float expression of one boolean variable whose two forms simplified for that variable's
    values are together simpler than it becomes `_where(variable, form if true, form if false)`."""
    expression, booleans = statement.expr, statement.used_boolean_variables or ()
    if (simplified and len(booleans) == 1 and brian_dtype_from_dtype(statement.dtype) == "float"
            and statement.complexity_std > sum(statement.complexities.values())):
        forms = {value: form for ((_, value),), form in statement.boolean_simplified_expressions.items()}
        expression = f"_where({booleans[0]}, {forms[True]}, {forms[False]})"
    return f"{statement.var} {'=' if statement.op == ':=' else statement.op} {expression}"


def _repeated_indices(vector, variables):
    """Whether statements write to variables through an index that may repeat (a pre- or postsynaptic
    neuron's): Brian2's numpy target then evaluates every expression as it is (ufunc.at), without the simplified
    forms (NumpyCodeGenerator.has_repeated_indices)."""
    created = {statement.var for statement in vector if statement.op == ":="}
    written = {statement.var for statement in vector if isinstance(variables.get(statement.var), ArrayVariable)}
    indices = {variables.indices[name] for name in written - created}
    return not all(variables[index].unique for index in indices if index not in ("_idx", "0"))


def constants(parameters, names):
    """{name: SI float} of the parameters (the plan's SI constants), then the units and Brian2's default
    constants (pi, e, inf) among `names`, as Brian2 resolves them."""
    names = sorted(names)  # sets of names: in one order in every process (the compiled steps' cache reads it)
    values = {name: parameters[name] for name in names if name in parameters}
    values.update({name: float(DEFAULT_UNITS[name]) for name in names if name not in values and name in DEFAULT_UNITS})
    values.update({name: float(DEFAULT_CONSTANTS[name].value) for name in names
                   if name not in values and name in DEFAULT_CONSTANTS})
    return values


def _kind(variable):
    if variable.dtype == bool:
        return "boolean"
    return "integer" if np.issubdtype(variable.dtype, np.integer) else "float"


def _without_noise(equations, noise):
    """The subexpressions that read no white noise, directly or through another, in Brian2's order: those that
    do have a value only within the state update (Brian2's state updater puts them into its equations)."""
    noisy, kept = set(noise), []
    for equation in equations.ordered:
        if equation.varname not in equations.subexpr_names:
            continue
        if noisy & get_identifiers(equation.expr.code):
            noisy.add(equation.varname)
        else:
            kept.append(equation.varname)
    return kept


def _neuron_code(population, group):
    equations = group.equations
    variables = {name: group.variables[name] for name in sorted(equations.names) if name not in equations.subexpr_names}
    events = lambda runners, event: statements(runners.get(event))
    subexpressions = {name: _block(f"_value = {name}", group)  # computed as a StateMonitor computes them
                      for name in _without_noise(equations, population.noise)}
    code = dict(
        variables={name: _kind(var) for name, var in variables.items()},
        conditional=frozenset(name for name, var in variables.items() if var.conditional_write is not None),
        shared=frozenset(name for name, var in variables.items() if var.scalar),
        update=statements(group.state_updater), threshold=events(group.thresholder, "spike"),
        reset=events(group.resetter, "spike"),
        events={event: events(group.thresholder, event) for event in sorted(population.model.events)},
        on_event={event: events(group.resetter, event) for event in sorted(population.model.run_on_event)},
        before_start=statements(getattr(group, "subexpression_updater", None)),
        subexpressions=subexpressions)
    blocks = [code["update"], code["threshold"], code["reset"], code["before_start"], *code["events"].values(),
              *code["on_event"].values(), *subexpressions.values()]
    names = set().union(*[block.names for block in blocks], get_identifiers(population.threshold or ""))
    return NeuronCode(**code, constants=constants(population.constants, names))


def _synapse_code(proj, syn):
    pathways = {pathway.objname: statements(pathway) for pathway in syn._pathways}
    update = statements(syn.state_updater) if syn.state_updater is not None else None
    summed = {neuron_variable(name): statements(runner) for name, runner in syn.summed_updaters.items()}
    names = set().union(*[block.names for block in [*pathways.values(), *summed.values(), update or EMPTY]])
    locations = {}
    for name in sorted((names & set(syn.variables)) - set(syn.equations.subexpr_names)):
        var, index = syn.variables[name], syn.variables.indices[name]
        if isinstance(var, Subexpression):  # a neuron's subexpression (`F_pre`): a statement of the block
            continue
        if index == "_presynaptic_idx":
            locations[name] = ("source", name_in(var, syn.source))
        elif index == "_postsynaptic_idx":
            locations[name] = ("target", name_in(var, syn.target))
        elif index in ("_idx", "0") and getattr(var.owner, "name", None) == syn.name:  # "0": a shared variable,
            locations[name] = ("synapse", name)  # held by torch for every synapse
        elif name in syn.equations and "linked" in syn.equations[name].flags:  # synapse k reads neuron k of a
            locations[name] = ("linked", (var.owner.name, name_in(var, var.owner)))  # population, or its one
    event_driven = syn.event_driven
    unset = {*syn.equations.diff_eq_names, *(event_driven.diff_eq_names if event_driven else ()),
             *(["lastupdate"] if "lastupdate" in syn.variables else [])}
    linked = {name for name, (kind, _) in locations.items() if kind == "linked"}
    return SynapseCode(locations, pathways, update, summed, tuple(sorted(unset - set(proj.values))),
                       frozenset(syn.equations.parameter_names) - linked,
                       constants(proj.constants, names - set(locations)))


def name_in(variable, group):
    """The name of a Brian2 Variable in a group."""
    return next(name for name, candidate in group.variables.items() if candidate is variable)
