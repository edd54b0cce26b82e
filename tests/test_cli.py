"""The command line: every subcommand has --help, `python -m bnlab` works, verify passes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bnlab.cli import build_parser, main


def _subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return list(action.choices)


def test_top_level_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in _subcommands():
        assert name in out


@pytest.mark.parametrize("name", _subcommands())
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    assert "usage: bnlab " + name in capsys.readouterr().out


def test_python_dash_m_and_verify():
    result = subprocess.run(
        [sys.executable, "-m", "bnlab", "verify"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout and "FAILED" not in result.stdout
