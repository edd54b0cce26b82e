"""The control check: does each variant train at all?

A comparison against a model that never left chance says nothing about the claim (whatever
the other variant does, it "wins"). A variant is flagged when, averaged over its seeds,

- its final training accuracy (the mean over the last tenth of the logged steps) is within
  `rules.CHANCE_POINTS` percentage points of chance, 1 / classes; or
- its final training loss is not below its training loss at the first logged step.

A flagged variant fails the `rules.TRAINS` gate of every claim that names it, so those
verdicts are "not measurable", with the reason, as the lab's `TRAINS` gate does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnlab.study.rules import CHANCE_POINTS

__all__ = ["Control", "control", "gate_failed"]


@dataclass(frozen=True)
class Control:
    variant: str
    chance: float  # % training accuracy of a uniform guess
    accuracy: float  # % mean final training accuracy over the seeds with one (NaN: none)
    initial_loss: float  # mean training loss at the first logged step
    final_loss: float  # mean final training loss

    @property
    def reason(self) -> str:
        """'' if the variant trains, else why it does not (see the module docstring)."""
        why = []
        if not self.accuracy > self.chance + CHANCE_POINTS:
            why.append(
                f"mean final training accuracy {self.accuracy:.1f}% is within "
                f"{CHANCE_POINTS:g} points of chance ({self.chance:.1f}%)"
            )
        if not self.final_loss < self.initial_loss:
            why.append(
                f"mean final training loss {self.final_loss:.4g} is not below the first "
                f"logged {self.initial_loss:.4g}"
            )
        return "; ".join(why)

    @property
    def trains(self) -> bool:
        return not self.reason


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def control(variant, classes: int) -> Control:
    """The control check of one `analyze.VariantResults` (K seeds)."""
    loss = variant.train["train_loss"]  # (K, T)
    initial = loss[:, 0] if loss.shape[1] else np.full(loss.shape[0], np.nan)  # (K,)
    return Control(
        variant.name,
        chance=100.0 / classes,
        accuracy=100.0 * _mean(variant.final("train_accuracy")),
        initial_loss=_mean(initial),
        final_loss=_mean(variant.final("train_loss")),
    )


def gate_failed(controls: dict[str, Control], *variants: str) -> str:
    """The TRAINS gate over the variants a claim compares: '' or the reasons."""
    failed = [v for v in variants if not controls[v].trains]
    return "; ".join(f"{v} does not train ({controls[v].reason})" for v in failed)
