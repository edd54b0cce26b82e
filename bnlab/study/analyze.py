"""Read a study's stored runs back as numbers per variant and seed (`bnlab.study.decide`
decides its claims on them).

A claim's metric is one number per seed, the member's *final* value:

- `test_accuracy`, `test_loss`: at the last evaluation (the last step);
- `train_loss`, `train_accuracy`, `grad_norm`: the mean over the last tenth of the logged
  steps (at least one), since a single step's value at a small batch is mostly noise.

A member diverged when its training loss became non-finite at any logged step; it keeps the
measures it still has; a claim whose metric is not finite for some seed is not measurable
(`bnlab.report.verdicts.measure_rule`: the survivors would be a selected sample).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnlab.engine.store import Store
from bnlab.study.declaration import read_manifest

__all__ = ["StudyResults", "VariantResults", "read_results"]

TAIL = 0.1  # share of the logged steps the final training metrics average over


@dataclass(frozen=True)
class VariantResults:
    name: str
    seeds: tuple[int, ...]  # member k's seed
    train_steps: np.ndarray  # (T,)
    train: dict[str, np.ndarray]  # train_loss, train_accuracy, grad_norm -> (K, T)
    eval_steps: np.ndarray  # (E,)
    test: dict[str, np.ndarray]  # test_loss, test_accuracy -> (K, E)
    status: str
    code_version: str

    @property
    def diverged(self) -> np.ndarray:
        """(K,) bool: the training loss was non-finite at some logged step."""
        return ~np.isfinite(self.train["train_loss"]).all(axis=1)

    def final(self, metric: str) -> np.ndarray:
        """One value per seed, (K,): see the module docstring."""
        if metric in self.test:
            values = self.test[metric]
            return values[:, -1] if values.shape[1] else np.full(len(self.seeds), np.nan)
        values = self.train[metric]  # (K, T)
        tail = max(1, round(TAIL * values.shape[1]))
        with np.errstate(invalid="ignore"):
            return values[:, -tail:].mean(axis=1)  # a NaN in the tail makes it NaN


@dataclass(frozen=True)
class StudyResults:
    manifest: dict
    variants: dict[str, VariantResults]

    @property
    def declaration(self) -> dict:
        return self.manifest["declaration"]


def read_results(out_dir: str | Path) -> StudyResults:
    """Every variant's stored metrics (nothing is trained or written)."""
    manifest = read_manifest(out_dir)
    name = manifest["study"]
    with Store(out_dir) as store:
        runs = {r["run_id"]: r for r in store.runs()}
        variants = {
            v: _variant(store, runs[f"{name}/{v}"], v)
            for v in manifest["declaration"]["variants"]
            if f"{name}/{v}" in runs
        }
    return StudyResults(manifest, variants)


def _variant(store: Store, run: dict, name: str) -> VariantResults:
    rid = run["run_id"]
    seeds = tuple(seed for _, seed, _ in store.members(rid))
    train = {}
    steps = np.zeros(0, dtype=np.int64)
    for column in ("train_loss", "train_accuracy", "grad_norm"):
        steps, train[column] = store.train_matrix(rid, column)
    test = {}
    eval_steps = np.zeros(0, dtype=np.int64)
    for metric in ("test_loss", "test_accuracy"):
        eval_steps, test[metric] = store.metric_matrix(rid, metric)
    return VariantResults(
        name, seeds, steps, train, eval_steps, test, run["status"], run["code_version"]
    )
