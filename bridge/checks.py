"""Validation of descriptions with Brian2's own parser and unit checker; errors name the field."""
import ast
import dataclasses
import json
import re
from brian2 import DimensionMismatchError, second
from brian2.core.base import BrianObjectException
from brian2.equations.equations import EquationError
from brian2.stateupdaters.base import StateUpdateMethod

from bridge import brian_parse
from bridge.errors import DescriptionError
from bridge.names import delay_owner
from bridge.quantities import parse_quantity

_INTERNAL = {"lastspike", "not_refractory"}
# what Brian2 raises for bad code or units while building objects (an unknown unit in a declaration: EquationError)
BRIAN_ERRORS = (EquationError, SyntaxError, ValueError, TypeError, KeyError, DimensionMismatchError)


def _brian_message(err):
    """The original error inside Brian2's wrapper: what a user needs, without Brian2's traceback hints."""
    original = err.__cause__ or err.__context__ if isinstance(err, BrianObjectException) else err
    original = original or err
    if isinstance(original, KeyError):  # Brian2 raises KeyError('v_post') or KeyError('The identifier ...')
        return f"unknown identifier: {original.args[0]}"
    return " ".join(line.strip() for line in f"{type(original).__name__}: {original}".splitlines() if line.strip())


def check_equations(text, where):
    """Equations Brian2 can parse."""
    try:
        brian_parse.equations(text)
    except BRIAN_ERRORS as err:
        raise DescriptionError(where, _brian_message(err)) from None


def _field_of(err, fields):
    """Which description field a Brian2 error is about, from the name of the failing Brian2 object."""
    name = getattr(err, "_brian_objname", "")
    for suffix, field_name in fields:
        if suffix in name:
            return field_name
    return fields[-1][1]


def _model_key(model):
    return json.dumps([model.equations, model.threshold, model.reset, model.refractory,
                       sorted(model.parameters.items()), model.method, model.events, model.run_on_event], default=repr)


_checked = set()  # keys of models and projections that passed, so that repeated checks cost nothing


def _once(key, check, *args):
    if key not in _checked:
        check(*args)
        _checked.add(key)


def check_method(method, where, default_allowed=False):
    """An integration method Brian2 knows (its own error would name a placeholder, not the method)."""
    known = sorted(StateUpdateMethod.stateupdaters)
    if method not in known and not (default_allowed and method == ""):
        raise DescriptionError(where, f"{method!r}; known methods: {known}" + (" or '' for Brian2's choice"
                                                                                 if default_allowed else ""))


MAX_EXPONENT = 1000


def check_powers(code, where):
    """Refuse a power whose exponent holds another power or is a number beyond +-MAX_EXPONENT: Brian2's
    optimiser evaluates constant powers exactly, and 9**9**9 would take it hours. Each statement's expression
    (lines and ';'-separated parts) is the text after its first '=' (or all of it) up to an equation's ':'."""
    for line in re.split(r"[\n;]", str(code)):
        text = line.split("#")[0]
        text = text.split("=", 1)[-1].rsplit(":", 1)[0] if ":" in text else text.split("=", 1)[-1]
        try:
            tree = ast.parse(text.strip() or "0", mode="eval")
        except SyntaxError:
            continue  # Brian2's parser names the error
        for node in ast.walk(tree):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
                exponent = node.right.operand if isinstance(node.right, ast.UnaryOp) else node.right
                nested = any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow) for n in ast.walk(node.right))
                large = isinstance(exponent, ast.Constant) and isinstance(exponent.value, (int, float)) and \
                    abs(exponent.value) > MAX_EXPONENT
                if nested or large:
                    raise DescriptionError(where, f"{ast.unparse(node)!r}: exponents may not hold a power or exceed "
                                                  f"{MAX_EXPONENT} in magnitude")


def check_neuron_model(model):
    _once(_model_key(model), _check_neuron_model, model)


def _check_neuron_model(model):
    for name in ("equations", "threshold", "reset"):
        check_powers(getattr(model, name), f"NeuronModel.{name}")
    for field_name in ("events", "run_on_event"):
        for key, code in getattr(model, field_name).items():
            check_powers(code, f"NeuronModel.{field_name}[{key!r}]")
    try:
        group = brian_parse.neuron_group(model, 1, "checked_neuron")
    except BRIAN_ERRORS as err:
        raise DescriptionError("NeuronModel.equations", _brian_message(err)) from None
    try:
        brian_parse.run_checks([group, *brian_parse.link_to_stand_ins(group)])
    except BrianObjectException as err:
        where = _field_of(err, (("spike_thresholder", "threshold"), ("thresholder", "events"),
                                ("spike_resetter", "reset"), ("resetter", "run_on_event"), ("", "equations")))
        if where == "equations" and model.refractory and _refractory_fails(model):
            where = "refractory"
        raise DescriptionError(f"NeuronModel.{where}", _brian_message(err)) from None


def _refractory_fails(model):
    """Whether a model Brian2 refuses in its state update passes without its refractory (the refractory check
    is part of the state update)."""
    try:
        check_neuron_model(dataclasses.replace(model, refractory=""))
    except DescriptionError:
        return False
    return True


def variable_dims(model):
    """{variable name: Brian2 dimension} of a neuron model's declared variables."""
    eqs = brian_parse.equations(model.equations)
    return {name: eqs[name].dim for name in eqs.names}


def linked_variables(equations):
    """The variables equations (a neuron or synapse model's) declare (linked)."""
    eqs = brian_parse.equations(equations)
    return {name for name in eqs.names if "linked" in eqs[name].flags}


def check_links(links, equations, given, where):
    """`links` give each variable `equations` declare (linked) one "population.variable" and `given` (initial
    values) none of them."""
    linked = linked_variables(equations)
    if set(links) != linked or set(given) & linked:
        raise DescriptionError(where, f"{sorted(links)}; the model declares {sorted(linked)} (linked): give each one "
                                      "link and no value")


def settable_dims(equations):
    """{variable name: Brian2 dimension} of the variables equations declare that a value can be given to (not
    subexpressions)."""
    eqs = brian_parse.equations(equations)
    return {name: eqs[name].dim for name in eqs.names - eqs.subexpr_names}


def check_initial_values(population):
    equations = brian_parse.equations(population.model.equations)
    dims = variable_dims(population.model)
    for var, value in population.initial.items():
        where = f"Population {population.name!r}.initial[{var!r}]"
        if var not in dims:
            raise DescriptionError(where, f"unknown variable {var!r}; the model declares {sorted(dims)}")
        if "shared" in equations[var].flags and not isinstance(value, str) and len(set(value)) > 1:
            raise DescriptionError(where, f"{var} is (shared): one value for all neurons; give one quantity")
        if isinstance(value, str) and parse_quantity(value, where).dim != dims[var]:
            raise DescriptionError(where, f"{value!r} has units {parse_quantity(value, where).dim}; "
                                          f"{var} needs {dims[var] or 'no units'}")


def check_recordable(population, var, where):
    dims = variable_dims(population.model)
    if var not in dims:
        raise DescriptionError(where, f"unknown variable {var!r}; population {population.name!r} has {sorted(dims)}")


def check_recordable_synaptic(projection, var, where):
    equations = brian_parse.equations(projection.synapse.model)
    names = equations.names - equations.subexpr_names
    if var in equations.subexpr_names:
        raise DescriptionError(where, f"{var!r} is a synaptic subexpression; record the variables it is computed "
                                      f"from: {sorted(names)}")
    if var not in names:
        raise DescriptionError(where, f"unknown variable {var!r}; projection {projection.name!r} has {sorted(names)}")


def check_current(current, population):
    eqs = brian_parse.equations(population.model.equations)
    where = f"CurrentInjection {current.name!r}.variable"
    if current.variable not in eqs.parameter_names:
        raise DescriptionError(where, f"{current.variable!r} is not a parameter of {population.name!r}'s model; "
                                      f"injectable parameters: {sorted(eqs.parameter_names)}")


def check_projection(proj, source, target):
    """Synaptic code checked by Brian2 against the real source and target models."""
    syn_eqs = brian_parse.equations(proj.synapse.model)
    declared = set(syn_eqs.parameter_names) - linked_variables(proj.synapse.model)
    where = f"Projection {proj.name!r}.values"
    unknown = set(proj.values) - declared - set(syn_eqs.diff_eq_names)  # differential equations: initial values
    if unknown:
        raise DescriptionError(where, f"unknown synaptic variables {sorted(unknown)}; declared: "
                                      f"{sorted(declared | set(syn_eqs.diff_eq_names))}")
    missing = declared - set(proj.values)
    if missing:
        raise DescriptionError(where, f"no values for synaptic variables {sorted(missing)}")
    for name, value in proj.values.items():
        if isinstance(value, str) and parse_quantity(value, f"{where}[{name!r}]").dim != syn_eqs[name].dim:
            raise DescriptionError(f"{where}[{name!r}]", f"{value!r} does not have the units of {name} "
                                                         f"({syn_eqs[name].dim or 'dimensionless'})")
    synapse = proj.synapse
    key = json.dumps([synapse.model, synapse.on_pre, synapse.on_post, synapse.on_event, synapse.method,
                      sorted(synapse.parameters.items()), _endpoint_key(source), _endpoint_key(target)], default=repr)
    _once(key, _check_projection, proj, source, target)


def _endpoint_key(element):
    if hasattr(element, "synapse"):
        return ["synapses", element.synapse.model]
    return _model_key(element.model) if hasattr(element, "model") else "spike source"


def _checked_group(element, name):
    """A Brian2 group of one element standing for a projection's source or target: a population's model, a
    spike source, or a projection's synaptic variables (synapses onto synapses)."""
    if hasattr(element, "synapse"):
        return brian_parse.synaptic_stand_in(element.synapse, name)
    if hasattr(element, "model"):
        return brian_parse.neuron_group(element.model, 1, name)
    return brian_parse.spike_source(1, name)


def _check_projection(proj, source, target):
    where = f"Projection {proj.name!r}.synapse"
    check_powers(proj.synapse.model, f"{where}.model")
    for pathway, (_, code, _) in proj.synapse.pathways().items():
        check_powers(code, f"{where} pathway {pathway!r}")
    pre, post = _checked_group(source, "checked_source"), _checked_group(target, "checked_target")
    try:
        syn = brian_parse.synapses(proj.synapse, pre, post, "checked_synapses")
        syn.connect(i=0, j=0)
        brian_parse.run_checks([pre, post, syn, *brian_parse.link_to_stand_ins(syn)])
    except BrianObjectException as err:
        part = _field_of(err, (("synapses_pre", "on_pre"), ("synapses_post", "on_post"), ("", "model")))
        raise DescriptionError(f"{where}.{part}", _brian_message(err)) from None
    except BRIAN_ERRORS as err:
        raise DescriptionError(where, _brian_message(err)) from None


def check_delay_variable(proj, source, target):
    """A delay variable must be a time: a synaptic variable, or `x_post` / `x_pre` of a neuron model."""
    name, where = proj.delay_variable, f"Projection {proj.name!r}.delay_variable"
    side, var = delay_owner(name)
    if side != "synapse":
        owner = target if side == "target" else source
        if not hasattr(owner, "model"):
            raise DescriptionError(where, f"{name!r}: {owner.name!r} is no population; a delay variable of another "
                                          "element is a synaptic variable, or `x_post` / `x_pre` of a population")
        dims = variable_dims(owner.model)
    else:
        eqs = brian_parse.equations(proj.synapse.model)
        dims = {n: eqs[n].dim for n in eqs.parameter_names}
    if var not in dims:
        raise DescriptionError(where, f"unknown variable {name!r}; give a synaptic variable {sorted(dims)} "
                                      "or a neuron variable with suffix _post or _pre")
    if dims[var] != second.dim:
        raise DescriptionError(where, f"{name!r} has units {dims[var]}; a delay variable needs second")


def check_operation(operation, population):
    """An operation's code checked by Brian2 on its population's model (random draws as Brian2's own)."""
    where = f"Operation {operation.name!r}.code"
    check_powers(operation.code, where)
    group = brian_parse.neuron_group(population.model, population.n, "checked_neuron")
    try:
        brian_parse.operation(group, operation)
        brian_parse.run_checks([group])
    except BrianObjectException as err:
        raise DescriptionError(where, _brian_message(err)) from None
    except BRIAN_ERRORS as err:
        raise DescriptionError(where, _brian_message(err)) from None
