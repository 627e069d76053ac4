"""The layers hold: the torch backend reads the plan (bridge/plan.py, with Brian2's abstract code extracted by
bridge/abstract_code.py) and imports nothing of Brian2's object model."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
BRIAN2_SIDE = ("brian2", "bridge.brian_parse", "bridge.abstract_code", "bridge.checks", "brian_models")


def imported_modules(path):
    """Every module a Python file imports (`import a.b`, `from a.b import c` -> a.b and a.b.c)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


@pytest.mark.parametrize("path", sorted((ROOT / "torch_models").glob("*.py")), ids=lambda path: path.name)
def test_torch_backend_imports_nothing_of_brian2(path):
    brian_side = {module for module in imported_modules(path)
                  if any(module == name or module.startswith(name + ".") for name in BRIAN2_SIDE)}
    assert not brian_side, f"{path.name} imports {sorted(brian_side)}"


def test_the_import_reader_sees_each_form():
    probe = ROOT / "tests" / "brian2_examples" / "cobahh.py"  # `from brian2 import *`
    assert "brian2" in imported_modules(probe)
    assert {"bridge", "bridge.brian_parse"} <= imported_modules(ROOT / "bridge" / "abstract_code.py")
