"""Which probed steps a Santurkar row averages over, per seed and network.

The landscape and ICS probes record a value at every probed step, (seeds, T) per network; a
row reads one number per seed and network, the mean over a selection of those steps (a
`Steps`):

- `both_train_steps`: the declared rule (PROBED_BOTH_TRAIN): the probed steps where both
  networks' mean test accuracy is at least TRAINS_ABOVE_CHANCE_PP above chance, the same
  steps for every seed; the gate fails when fewer than half of the probed steps qualify.
- `every_step`: all probed steps (exploratory: does the verdict depend on the gate?).
- `matched_loss`: each BN probed step paired with the same seed's no-BN probed step of
  nearest training loss, kept when the two are within `MATCH_TOLERANCE` (exploratory: BN
  fits the training data faster, and a landscape probed at a lower loss is flatter whatever
  the architecture). A seed without a pair has no value, so the row is not measurable.

A seed that diverged has a non-finite value at the steps after it, so its mean is NaN and
the row not measurable (`divergence_gate` says why, with the counts as the outcome).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from bnlab.report import proportion_ci
from bnlab.reproduce import preregistered as pre
from bnlab.reproduce.common import Results
from bnlab.reproduce.santurkar2018_rules import MATCH_TOLERANCE

LANDSCAPE_ORDER = ("batch", "none")  # BN first, as in the paper's Fig. 4 and 5
# A network "trains" at a probed step when its seed-mean test accuracy is this far above chance.
TRAINS_ABOVE_CHANCE_PP = pre.TRAINS_ABOVE_CHANCE
LOSS_WINDOW = 50  # logged training steps averaged into "the training loss at a probed step"


@dataclass(frozen=True)
class Steps:
    """Per seed, the probed steps of BN (`bn`) and of no BN (`base`) a row averages over:
    index arrays into the probed steps, paired position by position for matched loss."""

    label: str  # what was selected, for the row's note
    bn: tuple[np.ndarray, ...]
    base: tuple[np.ndarray, ...]
    gate_failed: str = ""  # why the selection cannot answer the claim ('' if it can)

    def means(self, bn: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(seeds, ..., T) per network -> (seeds,) each: the mean over the selected steps
        (and any middle axes, e.g. layers); NaN without a selected step or with a
        non-finite value there (a diverged seed)."""
        return _means(bn, self.bn), _means(base, self.base)


def _means(values: np.ndarray, index: tuple[np.ndarray, ...]) -> np.ndarray:
    return np.array([values[s][..., i].mean() if i.size else np.nan for s, i in enumerate(index)])


def every_step(seeds: int, probed: np.ndarray) -> Steps:
    steps = np.arange(len(probed))
    return Steps(f"all {len(probed)} probed steps", (steps,) * seeds, (steps,) * seeds)


def both_train_steps(res: Results, probed: np.ndarray) -> Steps:
    """The declared selection: the probed steps where both networks train (`trained_mask`)."""
    ok = trained_mask(res, probed)
    steps, seeds = np.flatnonzero(ok), accuracy_at(res, "batch", probed).shape[0]
    label = f"{ok.sum()} of {ok.size} probed steps (both networks train)"
    if not ok.all():
        left = ", ".join(str(int(s)) for s in np.asarray(probed)[~ok])
        label += f"; left out: steps {left}"
    gate = ""
    if 2 * ok.sum() < ok.size:
        gate = (
            f"both networks train at {ok.sum()} of {ok.size} probed steps, fewer than half "
            f"(mean test accuracy at least {TRAINS_ABOVE_CHANCE_PP:g} pp above chance)"
        )
    return Steps(label, (steps,) * seeds, (steps,) * seeds, gate)


def trained_mask(res: Results, probed: np.ndarray) -> np.ndarray:
    """(T,) bool: at each probed step, does every network's mean test accuracy (at or before
    the step, over the seeds that have not diverged) reach TRAINS_ABOVE_CHANCE_PP above
    chance?"""
    chance = 100.0 / res.config("batch")["model"]["num_classes"]
    ok = np.ones(len(probed), dtype=bool)
    for norm in LANDSCAPE_ORDER:
        acc = accuracy_at(res, norm, probed)  # (seeds, T); NaN: diverged (counted elsewhere)
        finite = np.isfinite(acc)
        mean = np.where(finite, acc, 0.0).sum(0) / np.maximum(finite.sum(0), 1)
        ok &= finite.any(0) & (mean >= chance + TRAINS_ABOVE_CHANCE_PP)
    return ok


def accuracy_at(res: Results, norm: str, steps: np.ndarray) -> np.ndarray:
    """(seeds, T) test accuracy (%) of the last evaluation at or before each step (the first
    evaluation for steps before it). NaN where a member had diverged: its test loss is NaN,
    and its accuracy (a constant guess, about chance) says nothing."""
    eval_steps, acc = res.metric(norm, "test_accuracy")  # (E,), (seeds, E)
    _, loss = res.metric(norm, "test_loss")
    acc = np.where(np.isfinite(loss), acc, np.nan)
    index = np.searchsorted(eval_steps, np.asarray(steps), side="right") - 1
    return 100.0 * acc[:, np.clip(index, 0, len(eval_steps) - 1)]


def train_loss_at(res: Results, norm: str, probed: np.ndarray) -> np.ndarray:
    """(seeds, T): the mean logged training loss over the LOSS_WINDOW steps up to each probed
    step (one batch's loss is noisy). The probe at step p sees the parameters the loss
    logged at step p was computed with."""
    steps, loss = res.train_series(norm, "train_loss")  # (L,), (seeds, L)
    out = np.full((loss.shape[0], len(probed)), np.nan)
    for t, p in enumerate(probed):
        window = (steps > p - LOSS_WINDOW) & (steps <= p)
        if window.any():
            out[:, t] = loss[:, window].mean(1)
    return out


def series_at(res: Results, norm: str, column: str, probed: np.ndarray) -> np.ndarray:
    """(seeds, T): a logged training column (e.g. grad_norm) at each probed step (the last
    logged step at or before it)."""
    steps, values = res.train_series(norm, column)  # (L,), (seeds, L)
    index = np.searchsorted(steps, np.asarray(probed), side="right") - 1
    return values[:, np.clip(index, 0, len(steps) - 1)]


def matched_loss(loss_bn: np.ndarray, loss_base: np.ndarray) -> Steps:
    """Pairs, per seed, of BN's probed steps with no BN's of nearest training loss within
    MATCH_TOLERANCE of it (relative to no BN's); loss_* (seeds, T). Unpaired steps are left
    out; a seed with no pair selects nothing (NaN: the row is not measurable)."""
    bn_idx, base_idx = [], []
    for a, b in zip(loss_bn, loss_base, strict=True):  # (T,) each
        i = np.flatnonzero(np.isfinite(a))
        candidates = np.flatnonzero(np.isfinite(b))
        if not (i.size and candidates.size):
            bn_idx.append(np.array([], dtype=int))
            base_idx.append(np.array([], dtype=int))
            continue
        j = candidates[np.argmin(np.abs(b[candidates][None, :] - a[i][:, None]), axis=1)]
        keep = np.abs(a[i] / b[j] - 1.0) <= MATCH_TOLERANCE
        bn_idx.append(i[keep])
        base_idx.append(j[keep])
    pairs = [len(i) for i in bn_idx]
    unpaired = sum(p == 0 for p in pairs)
    label = (
        f"BN's probed steps paired with the same seed's no-BN step of nearest training loss "
        f"(within {MATCH_TOLERANCE:.0%}; mean over the last {LOSS_WINDOW} logged steps): "
        f"{sum(pairs)} pairs over {len(pairs)} seeds, {unpaired} seed(s) without a pair"
    )
    gate = f"{unpaired} of {len(pairs)} seeds have no matched pair" if unpaired else ""
    return Steps(label, tuple(bn_idx), tuple(base_idx), gate)


def divergence_gate(flags: Mapping[str, np.ndarray]) -> str:
    """'' if no seed diverged, else the counts per network with their 95% Clopper-Pearson
    intervals: the outcome a row shows instead of an effect (`flags`: label -> (seeds,))."""
    said = [divergence_text(label, f) for label, f in flags.items() if f.any()]
    if not said:
        return ""
    return "; ".join(said) + ": a diverged seed has no value for this measure"


def divergence_text(label: str, flags: np.ndarray) -> str:
    """'no BN diverged in 3/5 seeds (95% CI 15–95%, Clopper-Pearson)'."""
    k, n = int(np.sum(flags)), int(np.size(flags))
    return f"{label} diverged in {k}/{n} seeds ({_interval(k, n)})"


def divergence_count(flags: np.ndarray) -> str:
    """'3/5 (95% CI 15–95%, Clopper-Pearson)': the diverged seeds among `flags` (seeds,)."""
    k, n = int(np.sum(flags)), int(np.size(flags))
    return f"{k}/{n} ({_interval(k, n)})"


def _interval(k: int, n: int) -> str:
    low, high = proportion_ci(k, n)
    return f"95% CI {low:.0%}–{high:.0%}, Clopper-Pearson"


def gates(*reasons: str) -> str:
    """The reasons of every failed gate, joined ('' if none failed)."""
    return "; ".join(r for r in reasons if r)
