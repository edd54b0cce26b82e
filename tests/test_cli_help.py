"""`--help` answers without torch (lazy imports), every command's help ends with examples, and
the lazily imported package API is the one an eager import gave."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bnlab.cli import build_parser

HEAVY = ("torch", "scipy", "matplotlib", "pandas")


def _commands() -> list[list[str]]:
    """Every command and subcommand, as argv prefixes."""
    parser = build_parser()
    top = next(a for a in parser._actions if a.dest == "command")
    found = [[]]
    for name, sub in top.choices.items():
        found.append([name])
        nested = [a for a in sub._actions if a.dest.endswith("_command")]
        for action in nested:
            found += [[name, child] for child in action.choices]
    return found


COMMANDS = _commands()


def _modules_after(argv: list[str]) -> set[str]:
    """The top-level modules loaded by `python -m bnlab ARGV --help`, in a fresh process."""
    script = (
        "import runpy, sys\n"
        f"sys.argv = ['bnlab', *{argv!r}, '--help']\n"
        "try:\n    runpy.run_module('bnlab', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "usage: bnlab" in done.stdout
    return set(done.stderr.split())


def test_bnlab_help_imports_no_torch():
    loaded = _modules_after([])
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("argv", COMMANDS[1:], ids=" ".join)
def test_every_command_help_imports_no_torch(argv):
    loaded = _modules_after(argv)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a) or "bnlab")
def test_every_help_ends_with_an_example(argv, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    out = capsys.readouterr().out
    tail = out[out.rindex("\nexample") :]
    assert tail.startswith(("\nexample:", "\nexamples:")), out
    assert "  bnlab " in tail


def test_the_light_name_lists_match_the_registries():
    from bnlab.engine import context, executors
    from bnlab.engine.choices import DEVICES, EXECUTORS, PRESET_NAMES
    from bnlab.engine.presets import PRESETS
    from bnlab.reproduce.names import EXPERIMENT_NAMES
    from bnlab.reproduce.registry import experiments

    assert PRESET_NAMES == tuple(PRESETS), "add the preset to bnlab/engine/choices.py"
    assert EXPERIMENT_NAMES == tuple(experiments()), "add it to bnlab/reproduce/names.py"
    assert context.DEVICES == DEVICES and executors.EXECUTORS == EXECUTORS


def test_the_lazy_api_is_the_eager_one():
    """Names resolve to the defining module's object, also where a submodule of the same
    name was imported first (the import system would bind the module on the package)."""
    script = """
import bnlab, bnlab.convert, bnlab.data.fetch, bnlab.engine.train
from bnlab.convert import convert
from bnlab.data.fetch import fetch
from bnlab.engine.train import train
import bnlab.data, bnlab.engine
assert bnlab.convert is convert and callable(bnlab.convert)
assert bnlab.data.fetch is fetch and bnlab.engine.train is train
from bnlab.engine import train as t
assert t is train
assert bnlab.reference.__name__ == 'bnlab.reference' and bnlab.norms.LayerNorm
assert set(bnlab.__all__) <= set(dir(bnlab)) and 'BatchNorm2d' in bnlab.__all__
for package in (bnlab, bnlab.data, bnlab.engine):
    for name in package.__all__:
        getattr(package, name)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        import bnlab

        bnlab.nope
