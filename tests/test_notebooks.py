"""The tutorial notebooks: the committed .ipynb files match their jupytext sources, and
(slow) every notebook executes top to bottom without a cell error."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext", reason="needs bnlab[notebook]")
nbformat = pytest.importorskip("nbformat", reason="needs bnlab[notebook]")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _builder():
    spec = importlib.util.spec_from_file_location("notebook_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code(nb) -> list[str]:
    return [c.source.strip() for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("name", _builder().NOTEBOOKS)
def test_committed_notebook_is_the_executed_source(name):
    source = jupytext.read(NOTEBOOKS / f"{name}.py")
    committed = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert _code(committed) == _code(source), f"run `make notebook`: {name}.ipynb is stale"
    cells = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in cells), f"{name}.ipynb is not executed"
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{name}.ipynb was committed with an error: {errors[0].ename}"


@pytest.mark.parametrize("name", _builder().NOTEBOOKS)
def test_no_heading_hides_in_a_code_cell(name):
    """A markdown heading written as a comment inside a code cell renders as code."""
    source = jupytext.read(NOTEBOOKS / f"{name}.py")
    hidden = [
        line for code in _code(source) for line in code.splitlines() if line.startswith("# #")
    ]
    assert not hidden, f"{name}.py: headings inside code cells (add '# %% [markdown]'): {hidden}"


def _text(nb) -> str:
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)


def test_committed_tutorial_shows_its_checks():
    """The executed tutorial printed what its asserts guard: every control met its floor, the
    invariant held after each evaluation lesson, and Section 8 states each sign."""
    text = _text(nbformat.read(NOTEBOOKS / "bn_tutorial.ipynb", as_version=4))
    controls = [line for line in text.splitlines() if line.startswith("control, ")]
    assert len(controls) >= 6 and all(line.endswith(": met") for line in controls), controls
    assert text.count("invariant holds for") >= 6
    assert "num_batches_tracked" in text and "its copy after the leak" in text
    signs = [line for line in text.splitlines() if "log10(BN / baseline) = " in line]
    words = ("-> BN smaller", "-> BN larger", "-> CI includes 0: no sign")
    assert len(signs) == 7 and all(line.endswith(words) for line in signs), signs
    assert text.count("lab, full scale [") >= 15


@pytest.mark.slow
@pytest.mark.parametrize("name", _builder().NOTEBOOKS)
def test_notebook_executes_without_error(name, tmp_path):
    """`make notebook`'s execution, without writing into notebooks/: minutes, so only when
    asked for with -m slow (`make test-slow`, which CI runs)."""
    _builder().build(name, tmp_path)  # raises CellExecutionError on any failing cell
    nb = nbformat.read(tmp_path / f"{name}.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    if name == "bn_tutorial":  # blank exercises are reported, not crashed on
        assert text.count("[not attempted]") == 7
        assert sum("image/png" in o.get("data", {}) for o in outputs) >= 7  # the figures
    else:  # every worked solution passes its checker
        assert "all 7 solutions pass" in text
