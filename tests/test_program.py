"""One Brian2 lowering (bridge/program.py): the objects a run builds and the objects the exported script
creates are the same, variable by variable and code by code."""
from pathlib import Path

import brian2
import numpy as np
import pytest
from brian2.core.variables import ArrayVariable

from bridge import library
from bridge.app.brian2_scripts import from_brian2
from bridge.plan import lower
from brian_models.network import build
from bridge.app.export import to_brian2
from bridge.program import Written, literal, program

EXAMPLES = Path(__file__).parent / "brian2_examples"
STATIC_MODELS = [name for name in library.MODELS if name != "delay_circuit"]  # its delays change: not exported


def contents(obj):
    """What a Brian2 object is: its class, its variables' values, its code, its clock, its namespace."""
    values = {name: np.asarray(var.get_value()).tolist() for name, var in getattr(obj, "variables", {}).items()
              if isinstance(var, ArrayVariable) and not name.startswith("_") and name not in ("t", "t_in_timesteps")}
    code = {name: str(getattr(obj, name)) for name in ("equations", "events", "event_codes", "abstract_code",
                                                         "when", "order") if hasattr(obj, name)}
    namespace = {name: np.asarray(getattr(value, "values", value)).tolist()
                 for name, value in getattr(obj, "namespace", {}).items()}
    pathways = {p.objname: (p.code, np.asarray(p.delay[:]).tolist()) for p in getattr(obj, "_pathways", [])}
    return type(obj).__name__, values, code, namespace, pathways, float(obj.clock.dt_)


def built_and_exported(simulation, folder):
    """{name: contents} of the objects build() makes (Brian2's own noise, as exported) and of those the
    exported script makes, by the script's variable names."""
    code = program(lower(simulation), native=("noise",))
    objects, monitors, _ = build(lower(simulation), native=("noise",))
    built = {name: contents(obj) for name, obj in {**objects, **monitors}.items()}
    script = folder / "exported.py"
    script.write_text(to_brian2(simulation))
    created = {}  # the exported script's objects, as they are before its first run() call
    exec(compile(script.read_text().split("\nrun(")[0], str(script), "exec"), created)
    return built, {name: contents(created[name]) for name in code.objects + code.monitors}


@pytest.mark.parametrize("model", STATIC_MODELS)
def test_exported_script_creates_the_objects_build_makes(model, tmp_path):
    built, exported = built_and_exported(library.scenario(model), tmp_path)
    assert len(built) >= 2 and built == exported


@pytest.mark.parametrize("script", sorted(EXAMPLES.glob("*.py")), ids=lambda path: path.stem)
def test_exported_example_creates_the_objects_build_makes(script, tmp_path):
    built, exported = built_and_exported(from_brian2(script), tmp_path)
    assert len(built) >= 2 and built == exported


def test_values_are_written_as_literals_that_read_back_exactly():
    values = {"tau": Written(brian2.Quantity(0.01, dim=brian2.second.dim), "10*ms"),
              "v": brian2.Quantity([-0.0651, 1 / 3], dim=brian2.volt.dim), "n": np.array([1, 2]),
              "code": "v = 0\nw += 1",
              "ta": brian2.TimedArray(brian2.Quantity([1e-10, 7e-10], dim=brian2.amp.dim), dt=0.1 * brian2.ms)}
    text = literal(values)
    assert text == ("{'tau': 10*ms, 'v': np.array([-0.0651, 0.3333333333333333]) * volt, 'n': np.array([1, 2]), "
                    "'code': '''v = 0\nw += 1''', 'ta': TimedArray(np.array([1e-10, 7e-10]) * amp, dt=0.0001*second)}")
    again = eval(text, {**vars(brian2), "np": np})  # our own literal, to check it reads back
    assert float(again["v"][1]) == 1 / 3 and np.array_equal(again["ta"].values, [1e-10, 7e-10])


SIMPLIFIED = """
from brian2 import *
G = NeuronGroup(3, '''dv/dt = (1.5 - v)/(10*ms) : 1 (unless refractory)
                      dx/dt = -x/(5*ms) : 1''', threshold='v > 1', reset='v = 0', refractory=2*ms, method='exact',
                name='G')
S = Synapses(G, G, 'w : 1', on_pre='v_post += w*int(not_refractory_post)',
             on_post='w = clip(w + 0.01*int(not_refractory_pre)*exp(-w), 0, 1)', name='S')
S.connect()
run(1*ms)
"""


def test_the_extracted_code_takes_the_simplified_forms_where_brian2s_numpy_target_does(tmp_path):
    """bridge/abstract_code.py writes an expression as `_where(flag, form if true, form if false)` exactly where
    the code Brian2's numpy target generates has `_numpy.where`: the state update, the pathway writing to the
    synapses' own w, not the one adding to v_post (indices that repeat: numpy's ufunc.at evaluates it whole)."""
    path = tmp_path / "model.py"
    path.write_text(SIMPLIFIED)
    plan = lower(from_brian2(path))
    blocks = {block.name: block.text for block in [plan.code.populations["G"].update,
                                                   *plan.code.projections["S"].pathways.values()]}
    brian2.prefs.codegen.target = "numpy"
    objects, monitors, _ = build(plan, "numpy")
    network = brian2.Network(*objects.values(), *monitors.values())
    network.run(0 * brian2.ms)  # generates the code
    generated = {obj.name: str(obj.codeobj.code) for obj in network.sorted_objects if obj.name in blocks}
    assert {name: text.count("_numpy.where(") for name, text in generated.items()} == \
        {"G_stateupdater": 1, "S_pre": 0, "S_post": 1}
    assert {name: text.count("_where(") for name, text in blocks.items()} == {"G_stateupdater": 1, "S_pre": 0,
                                                                             "S_post": 1}
