"""The package imports one way:
core <- data <- engine <- analysis <- report <- study <- reproduce <- cli,
with no circle (the order `bnlab/__init__.py` states).

Every `import bnlab...` / `from bnlab... import` in the source counts, lazy ones inside functions
too, and so does a module named in a string (an `importlib` registry), since that is an import
all the same. A module may import its own layer or any layer below it, never one above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bnlab

ROOT = Path(bnlab.__file__).parent
LAYERS = ("core", "data", "engine", "analysis", "report", "study", "reproduce", "cli")
CORE_PACKAGES = {"norms"}  # subpackages of the core: `bnlab` re-exports them
CLI_MODULES = {"bnlab.cli", "bnlab.__main__", "bnlab.verify"}  # `bnlab` and its subcommands


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer(module: str) -> int:
    """The layer index of a bnlab module: command-line modules (`bnlab.cli`, `bnlab.verify`,
    every `bnlab.<pkg>.cli`) are the top; a subpackage is its own layer; the rest is core."""
    parts = module.split(".")
    if module in CLI_MODULES or parts[-1] == "cli":
        return LAYERS.index("cli")
    if len(parts) > 1 and parts[1] in LAYERS and parts[1] not in CORE_PACKAGES:
        return LAYERS.index(parts[1])
    return LAYERS.index("core")


def imports(module: str) -> set[str]:
    """The bnlab modules `module` imports, with `from bnlab.pkg import sub` resolved to the
    submodule, and dotted bnlab module names in string constants (importlib) included."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.Constant) and node.value in MODULES and "." in node.value:
            found.add(node.value)  # dotted only: the word "bnlab" alone is not an import
    return {m for m in found if m in MODULES and m != module}


GRAPH = {m: imports(m) for m in MODULES}


def test_the_layer_table_knows_every_subpackage():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    known = set(LAYERS) | CORE_PACKAGES
    assert packages <= known, f"add {packages - known} to LAYERS (and the docstring)"


def test_docstring_states_the_order():
    assert " <- ".join(LAYERS) in " ".join(bnlab.__doc__.split())


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_import(module):
    up = sorted(
        f"{target} ({LAYERS[layer(target)]})"
        for target in GRAPH[module]
        if layer(target) > layer(module)
    )
    assert not up, f"{module} ({LAYERS[layer(module)]}) imports a higher layer: {', '.join(up)}"


def test_no_import_circle():
    """Depth-first search; a back edge is a circle, reported as the path around it."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(path: list[str]) -> None:  # path: the modules from the start to this one
        module = path[-1]
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                circle = [*path[path.index(target) :], target]
                pytest.fail("import circle: " + " -> ".join(circle))
            if target not in state:
                visit([*path, target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit([module])
