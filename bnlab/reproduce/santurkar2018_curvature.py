"""The curvature along the gradient, g^T H g / ||g||^2, read against the edge of stability.

Plain gradient descent at rate η is unstable along any direction whose curvature exceeds
2/η, and networks trained at a fixed rate tend to settle where the sharpness reaches it (the
edge of stability, Cohen et al. 2021). The curvature along g is at most the Hessian's
largest eigenvalue, so a ratio curvature / (2/η) at or above 1 says that training runs at (or
past) that edge along the direction it moves; there the loss change along a step is set by
the learning rate as much as by the architecture, which bears on how a landscape measure
along the gradient is read. Each member is compared with its own rate.
"""

from __future__ import annotations

import numpy as np

from bnlab.report import Table
from bnlab.report.stats import format_estimate
from bnlab.reproduce.common import NORM_LABELS, Results, paired_effect
from bnlab.reproduce.santurkar2018_steps import LANDSCAPE_ORDER
from bnlab.reproduce.scoring import fmt


def edge_ratio(res: Results, norm: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(curvature (seeds, T), its ratio to 2/η (seeds, T), 2/η (seeds,)) of one network."""
    _, curvature = res.metric(norm, "curvature")  # (seeds, T)
    lrs = np.array([lr for _, _, lr in res.members(norm)], dtype=float)  # (seeds,)
    edge = 2.0 / lrs
    return curvature, curvature / edge[:, None], edge


def curvature_part(res: Results, tag: str) -> tuple[Table, str]:
    """The curvature table (per network: mean and largest over the probed steps, 2/η, their
    ratios, and the steps at or above the edge) and the note that reads it."""
    rows, said = [], []
    for norm in (n for n in LANDSCAPE_ORDER if n in res.runs):
        curvature, ratio, edge = edge_ratio(res, norm)
        at_edge = int(np.sum(_seed_mean(ratio) >= 1.0))  # steps, over the seed mean
        rows.append(
            (
                NORM_LABELS[norm],
                fmt(curvature.mean(1), 3),
                fmt(curvature.max(1), 3),
                ", ".join(f"{e:.4g}" for e in sorted(set(edge.round(6)))),
                fmt(ratio.mean(1), 2),
                fmt(ratio.max(1), 2),
                f"{at_edge} of {ratio.shape[1]}",
            )
        )
        said.append(_clause(NORM_LABELS[norm], curvature, ratio, edge, at_edge))
    table = Table(
        "Curvature along the gradient, g^T H g / ||g||^2, against the edge of stability 2/η "
        "(per seed over the probed steps; mean ± 95% CI over seeds)",
        (
            "network",
            "mean curvature",
            "largest curvature",
            "2/η",
            "mean / (2/η)",
            "largest / (2/η)",
            "probed steps with seed-mean ≥ 2/η",
        ),
        rows,
    )
    return table, f"{tag}: edge of stability. " + "; ".join(said) + ". " + _reading(res)


def _seed_mean(values: np.ndarray) -> np.ndarray:
    """(seeds, T) -> (T,): the mean over the seeds with a finite value (NaN if none has)."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(0)
    return np.where(finite.any(0), total / np.maximum(finite.sum(0), 1), np.nan)


def _clause(label: str, curvature, ratio, edge, at_edge: int) -> str:
    """One network's numbers in words: the table's means over the seeds that did not
    diverge (a seed's largest is its largest over the probed steps)."""
    finite = np.all(np.isfinite(curvature), axis=1)
    if not finite.any():
        return f"{label}: not measurable (every seed diverged)"
    c, r = curvature[finite], ratio[finite]  # (seeds, T)
    text = (
        f"{label} averages {c.mean():.3g} along g, {r.mean():.2f} × 2/η (2/η = "
        f"{edge[finite].mean():.3g}; a seed's largest {c.max(1).mean():.3g} = "
        f"{r.max(1).mean():.2f} × 2/η), at or above 2/η at {at_edge} of {r.shape[1]} probed steps"
    )
    if not finite.all():
        text += f" ({int((~finite).sum())} diverged seeds left out here)"
    return text


def _log2_mean_curvature(res: Results, norm: str) -> np.ndarray:
    """(seeds,) log2 of each seed's mean curvature along g (NaN where it is not positive)."""
    curvature, _, _ = edge_ratio(res, norm)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log2(curvature.mean(1))


def _reading(res: Results) -> str:
    """What the ratios say, from the numbers: where the curvature along g (a lower bound on
    the Hessian's largest eigenvalue) reaches 2/η, that network is at or past the edge of
    stability; below it, this measure cannot tell. Then BN against no BN, and what a higher
    local curvature beside smaller finite-step measures would mean."""
    shares, reached = {}, []
    for norm in (n for n in LANDSCAPE_ORDER if n in res.runs):
        _, ratio, _ = edge_ratio(res, norm)
        at = _seed_mean(ratio) >= 1.0
        shares[NORM_LABELS[norm]] = float(np.mean(at))
        reached.append(f"{NORM_LABELS[norm]} at {int(at.sum())} of {at.size} probed steps")
    text = (
        "Reading (post hoc): the curvature along g is a lower bound on the Hessian's largest "
        "eigenvalue, so where its seed mean reaches 2/η the network is at or past the edge of "
        f"stability ({', '.join(reached)}); where it stays below, this measure cannot tell."
    )
    edge = [label for label, share in shares.items() if share >= 0.5]
    if edge:
        who = " and ".join(edge)
        text += (
            f" {who} {'is' if len(edge) == 1 else 'are'} there at most probed steps: the loss "
            "change along a step is then held by the learning rate as much as by the network, "
            "so the loss variation and β-smoothness along g say as much about the rate as "
            "about BN."
        )
    return text + _bn_against_none(res)
    est, _ = paired_effect(_log2_mean_curvature(res, "batch"), _log2_mean_curvature(res, "none"))
    if est is None or not est.has_ci:
        return text
    side = (
        "higher"
        if est.low > 0
        else "lower"
        if est.high < 0
        else "not different (the CI includes 0)"
    )
    text += (
        f" With BN the mean curvature along g is {side}: log2(BN / no BN) "
        f"{format_estimate(est, 2, unit=' log2')}, paired by seed."
    )
    if est.low > 0:
        text += (
            " Where the landscape verdicts nevertheless find BN's loss and gradient "
            "changing less over steps of the grid, that smoothing holds for steps of "
            "that length, not for the local curvature along the step."
        )
    return text


def _bn_against_none(res: Results) -> str:
    """' With BN the mean curvature along g is higher: ...' (paired by seed), and what a
    higher local curvature beside smaller finite-step measures means; '' without a CI."""
    if not all(n in res.runs for n in ("batch", "none")):
        return ""
    est, _ = paired_effect(_log2_mean_curvature(res, "batch"), _log2_mean_curvature(res, "none"))
    if est is None or not est.has_ci:
        return ""
    side = "not different (the CI includes 0)"
    if est.low > 0:
        side = "higher"
    elif est.high < 0:
        side = "lower"
    text = (
        f" With BN the mean curvature along g is {side}: log2(BN / no BN) "
        f"{format_estimate(est, 2, unit=' log2')}, paired by seed."
    )
    if est.low > 0:
        text += (
            " Where the landscape verdicts nevertheless find BN's loss and gradient "
            "changing less over steps of the grid, that smoothing holds for steps of "
            "that length, not for the local curvature along the step."
        )
    return text
