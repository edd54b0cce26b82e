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


def test_a_user_error_is_one_line_and_exit_status_2(tmp_path, capsys):
    assert main(["results", str(tmp_path / "nothing")]) == 2  # a bnlab.errors.BnlabError
    assert main(["train", "--preset", "smoke", "--set", "nosuchkey=1"]) == 2  # a ConfigError
    assert main(["data", "verify", "nosuchdata"]) == 2  # a data error
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("bnlab ") and "error: " in line for line in err)


def test_any_other_exception_is_a_bug_and_shows_its_traceback(tmp_path):
    """A ValueError from inside bnlab is not a user's mistake: not caught, not shortened."""
    code = (
        "import sys\n"
        "from bnlab.engine import results_table\n"
        "def broken(directory):\n"
        "    raise ValueError('an internal bug')\n"
        "results_table.records_with_settings = broken\n"
        "from bnlab.cli import main\n"
        f"sys.exit(main(['results', {str(tmp_path)!r}]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValueError: an internal bug" in result.stderr
    assert "error: an internal bug" not in result.stderr
