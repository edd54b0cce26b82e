"""Final metrics over seeds: one row per group of members that share every setting but the
seed, each metric a mean ± 95% CI with its n (`bnlab results`).

Members are grouped by every setting that differs between them (the norm always, and the
learning rate, batch size, dataset, ... wherever two members differ), so an lr grid's
seeds x rates are never pooled. A group never holds one seed twice: where the settings
cannot tell two runs apart (a run renamed with `--set preset=`, or the same config in two
directories), the preset, then the directory, then the run id become keys too.

Engine-independent: each record is a plain dict with the metrics and a `settings` dict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bnlab.report.stats import Estimate, mean_ci

METRICS = ("test_accuracy", "test_loss", "train_loss")
ALWAYS = ("norm",)  # shown even where every member has the same
TIEBREAKERS = ("preset", "dir", "run_id")  # keys added, in order, until no seed repeats


@dataclass(frozen=True)
class Group:
    """Members that share `settings`: their count, the steps they reached and, per metric,
    the mean with its interval (None if no member has a finite value) and how many members
    had none (diverged, or not evaluated)."""

    settings: dict[str, object]
    n: int
    steps: tuple[int, int]  # (fewest, most) steps a member reached
    estimates: dict[str, Estimate | None]
    missing: dict[str, int]


def group_keys(records: Sequence[dict]) -> list[str]:
    """The settings that tell members apart, in the settings' order (norm first)."""
    first = records[0]["settings"]
    keys = [k for k in ALWAYS if k in first]
    keys += [
        k
        for k in first
        if k not in keys
        and k not in TIEBREAKERS
        and len({_hashable(r["settings"].get(k)) for r in records}) > 1
    ]
    for extra in TIEBREAKERS:
        if not _repeats_a_seed(records, keys):
            break
        keys.append(extra)
    return keys


def _hashable(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


def _key(record: dict, keys: Sequence[str]) -> tuple:
    settings = {**record["settings"], "run_id": record.get("run_id")}
    return tuple(_hashable(settings.get(k)) for k in keys)


def _repeats_a_seed(records: Sequence[dict], keys: Sequence[str]) -> bool:
    seen = set()
    for r in records:
        mark = (_key(r, keys), r["seed"])
        if mark in seen:
            return True
        seen.add(mark)
    return False


def group_records(
    records: Sequence[dict], metrics: Sequence[str] = METRICS, confidence: float = 0.95
) -> tuple[list[str], list[Group]]:
    """(keys, groups) of `records`, groups in the order their first member appears."""
    if not records:
        return [], []
    keys = group_keys(records)
    members: dict[tuple, list[dict]] = {}
    for r in records:
        members.setdefault(_key(r, keys), []).append(r)
    groups = []
    for key, rows in members.items():
        estimates, missing = {}, {}
        for metric in metrics:
            values = [r.get(metric) for r in rows]
            finite = [v for v in values if v is not None and math.isfinite(v)]
            estimates[metric] = mean_ci(finite, confidence) if finite else None
            missing[metric] = len(values) - len(finite)
        steps = [int(r.get("steps") or 0) for r in rows]
        settings = dict(zip(keys, key, strict=True))
        groups.append(Group(settings, len(rows), (min(steps), max(steps)), estimates, missing))
    return keys, groups


def _cell(est: Estimate | None, missing: int) -> str:
    if est is None:
        return "-"
    text = f"{est.mean:.4g} ± {est.half_width:.2g}" if est.has_ci else f"{est.mean:.4g} (no CI)"
    return text + (f" ({missing} missing)" if missing else "")


def _setting(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(_setting(v) for v in value) or "()"
    return "-" if value is None else str(value)


def format_groups(keys: Sequence[str], groups: Sequence[Group], metrics=METRICS) -> str:
    """An aligned text table: the keys, n, steps and each metric's mean ± CI half-width."""
    header = [*keys, "n", "steps", *metrics]
    rows = []
    for g in groups:
        low, high = g.steps
        steps = str(low) if low == high else f"{low}-{high}"
        cells = [_setting(g.settings[k]) for k in keys] + [str(g.n), steps]
        rows.append(cells + [_cell(g.estimates[m], g.missing[m]) for m in metrics])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    return "\n".join(line.rstrip() for line in lines)


NOTE = (
    "mean ± half-width of the 95% Student t interval over the n members (seeds) of each "
    "group; members differ only in their seed"
)
