"""The layers hold, read from the sources: the core (bridge/*.py: description, plan) below the backends
(brian_models/, torch_models/), below the application (bridge/app/), below the experiments; no module imports
upward; the torch backend reads the plan and imports nothing of Brian2's object model; callers build torch
modules through torch_models.compile; naming conventions are decoded in one module."""
import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
LAYERS = {"core": 0, "brian_models": 1, "torch_models": 1, "app": 2, "experiments": 3}
BRIAN2_SIDE = ("brian2", "bridge.brian_parse", "bridge.abstract_code", "bridge.checks", "brian_models")
SOURCES = sorted(path for folder in ("bridge", "brian_models", "torch_models", "experiments")
                 for path in (ROOT / folder).rglob("*.py"))


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


def layer(module):
    """The layer of a module of this project ('core', 'brian_models', ...), None for others."""
    parts = module.split(".")
    if parts[0] == "bridge":
        return "app" if parts[1:2] == ["app"] else "core"
    return parts[0] if parts[0] in LAYERS else None


def test_the_layer_reader_sees_each_form():
    assert "brian2" in imported_modules(ROOT / "tests" / "brian2_examples" / "cobahh.py")  # from brian2 import *
    assert {"bridge", "bridge.brian_parse"} <= imported_modules(ROOT / "bridge" / "program.py")
    assert [layer(m) for m in ("bridge.plan", "bridge.app.cli", "torch_models.codegen", "numpy")] == \
        ["core", "app", "torch_models", None]


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_module_imports_upward_or_across_the_backends(path):
    own = layer(".".join(path.relative_to(ROOT).with_suffix("").parts))
    for module in imported_modules(path):
        other = layer(module)
        if other is None or other == own:
            continue
        assert LAYERS[other] < LAYERS[own], f"{path.relative_to(ROOT)} ({own}) imports {module} ({other})"


@pytest.mark.parametrize("path", sorted((ROOT / "torch_models").glob("*.py")), ids=lambda path: path.name)
def test_torch_backend_imports_nothing_of_brian2(path):
    brian_side = {module for module in imported_modules(path)
                  if any(module == name or module.startswith(name + ".") for name in BRIAN2_SIDE)}
    assert not brian_side, f"{path.name} imports {sorted(brian_side)}"


def test_torch_modules_are_built_through_compile():
    for path in SOURCES + sorted((ROOT / "bench").glob("*.py")):
        if path.parent.name != "torch_models":
            direct = {m for m in imported_modules(path) if m.startswith(("torch_models.stepwise.",
                                                                          "torch_models.layered."))}
            assert not direct, f"{path.relative_to(ROOT)} builds a module without torch_models.compile: {direct}"


def test_naming_conventions_are_decoded_only_in_bridge_names():
    decoding = re.compile(r"""["']_(post|pre)["']|\b(split|partition)\(["']\.["']\)""")
    for path in SOURCES:
        if path.name not in ("names.py", "sweep.py"):  # sweep.py: its own paths into a description
            assert not decoding.search(path.read_text()), f"{path} decodes a suffix or a record key"


def test_readme_layout_table_matches_the_folders():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode:
        pytest.skip("not a git checkout")
    folders = {line.split("/")[0] for line in tracked.stdout.splitlines() if "/" in line and line[0] != "."}
    table = (ROOT / "README.md").read_text().split("## Layout")[1].split("\n\n")[1].splitlines()[2:]
    rows = {row.split("`")[1].rstrip("/"): row for row in table}
    assert set(rows) == folders
    for folder, row in rows.items():
        for module in re.findall(r"`([\w/]+\.py)`", row):
            assert list((ROOT / folder).rglob(module)), f"README layout: {folder}/{module} does not exist"
