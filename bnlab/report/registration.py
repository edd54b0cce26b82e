"""The pre-registration record: which decision rules were fixed before an experiment's runs.

`bnlab reproduce` calls `register` before the first training step of an experiment: every
rule the experiment declares is written to `<experiment dir>/preregistration.json` with its
fingerprint (`Rule.fingerprint`), the code version that fixed it and the time. An entry is
never overwritten: a rule changed later keeps its first fingerprint on record, so the report
can tell a rule that predates the data from one edited after it (`status`), and shows the
latter as exploratory.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bnlab.report.rules import Rule

RECORD = "preregistration.json"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def read(out_dir: Path) -> dict[str, dict]:
    """rule id -> {fingerprint, commit, registered, rule}; empty if nothing was registered."""
    path = Path(out_dir) / RECORD
    if not path.is_file():
        return {}
    return json.loads(path.read_text())["rules"]


def register(out_dir: Path, rules: Iterable[Rule], commit: str) -> dict[str, dict]:
    """Record every rule not yet on record (entries already there are kept as they are).
    Written atomically; returns the whole record."""
    out_dir = Path(out_dir)
    record = read(out_dir)
    for rule in rules:
        record.setdefault(
            rule.id,
            {
                "fingerprint": rule.fingerprint(),
                "commit": commit,
                "registered": _now(),
                "rule": rule.as_dict(),
            },
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (RECORD + ".tmp")
    tmp.write_text(json.dumps({"rules": record}, indent=1, sort_keys=True))
    tmp.replace(out_dir / RECORD)
    return record


@dataclass(frozen=True)
class Registration:
    """What the record says about one rule, for the report."""

    state: str  # "before" (fixed before the runs), "changed", "after", "missing"
    commit: str = ""
    registered: str = ""

    @property
    def predates(self) -> bool:
        return self.state == "before"

    @property
    def text(self) -> str:
        if self.state == "before":
            return f"fixed at {self.commit} ({self.registered}), before the runs"
        if self.state == "changed":
            return (
                f"changed after the runs (the rule registered at {self.commit} differs): "
                "exploratory"
            )
        if self.state == "after":
            return f"registered at {self.commit} ({self.registered}), after the runs: exploratory"
        return "not registered before the runs: exploratory"


def status(record: dict[str, dict], rule: Rule, first_run: str | None) -> Registration:
    """How `rule` stands against `record`, given when the first run of its experiment started
    (`first_run`, in `register`'s time format; None: no run recorded)."""
    entry = record.get(rule.id)
    if entry is None:
        return Registration("missing")
    commit, when = entry["commit"], entry["registered"]
    if entry["fingerprint"] != rule.fingerprint():
        return Registration("changed", commit, when)
    if first_run is not None and when > first_run:
        return Registration("after", commit, when)
    if commit.endswith("-dirty"):
        return Registration("after", commit, when)  # uncommitted code fixed nothing
    return Registration("before", commit, when)


def format_time(epoch_seconds: float) -> str:
    """A store's `created` (seconds since the epoch) in `register`'s time format."""
    return dt.datetime.fromtimestamp(epoch_seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
