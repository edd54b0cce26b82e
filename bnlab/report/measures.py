"""Effect measures computed from one run's per-step series; each claim compares them across
BN and baseline runs, one value per seed.

All measures skip a burn-in (the first 10% of the series by default): the first steps move
every network fast, with or without BN, and would swamp the differences the claims are about.
Two runs are comparable only when their series are sampled on the same schedule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BURN_IN = 0.1  # fraction of the series skipped before measuring stability


def _series(x: Sequence[float] | np.ndarray, name: str, ndim: int = 1) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name}: got shape {a.shape}, expected {ndim} dimension(s)")
    return a


def _after_burn_in(a: np.ndarray, burn_in: float, name: str, min_len: int) -> np.ndarray:
    if not 0.0 <= burn_in < 1.0:
        raise ValueError(f"burn_in: got {burn_in!r}, expected 0 <= burn_in < 1")
    kept = a[int(burn_in * len(a)) :]
    if len(kept) < min_len:
        raise ValueError(
            f"{name}: {len(a)} points leave {len(kept)} after a {burn_in:.0%} burn-in, "
            f"expected at least {min_len}"
        )
    if not np.all(np.isfinite(kept)):
        raise ValueError(f"{name}: contains NaN or inf (a diverged run has no stability)")
    return kept


def percentile_drift(
    series: Sequence[Sequence[float]] | np.ndarray, burn_in: float = BURN_IN
) -> float:
    """How far the activation percentiles move between evaluation points, in units of spread.

    `series` is (T, P): at each of T evaluation points, P percentiles in ascending order of one
    unit's input, e.g. the {15, 50, 85}th of a last-hidden-layer sigmoid input (Ioffe & Szegedy
    2015, Sec. 4.1, Fig. 1b,c). After the burn-in,

        drift = mean_{t, p} |q[t+1, p] - q[t, p]| / mean_t (q[t, P-1] - q[t, 0])

    i.e. the mean absolute change per evaluation interval divided by the mean 15-85 spread, so
    a net whose activations are merely larger does not count as drifting more. 0 means frozen
    percentiles; 0.1 means they move a tenth of the spread per interval on average.
    """
    q = _after_burn_in(_series(series, "series", ndim=2), burn_in, "series", min_len=2)
    if q.shape[1] < 2:
        raise ValueError(f"series: got {q.shape[1]} percentile column(s), expected at least 2")
    spread = float(np.mean(q[:, -1] - q[:, 0]))  # (T,) -> scalar
    if not spread > 0:
        raise ValueError(
            f"series: mean spread between first and last percentile is {spread!r}, expected > 0 "
            "(columns must be ascending percentiles of a non-constant input)"
        )
    return float(np.mean(np.abs(np.diff(q, axis=0)))) / spread  # (T-1, P) -> scalar


def loss_smoothness(losses: Sequence[float] | np.ndarray, burn_in: float = BURN_IN) -> float:
    """Standard deviation of step-to-step loss changes, std_t(L[t+1] - L[t]), after burn-in.

    Lower is smoother. Differencing removes the slow downward trend, so what remains is the
    jitter the optimization-study project calls "loss curves are more stable with BN". In the
    loss's own units (nats for cross-entropy), so only runs of the same task are comparable.
    """
    x = _after_burn_in(_series(losses, "losses"), burn_in, "losses", min_len=3)
    return float(np.std(np.diff(x), ddof=1))


def shape_drift(series: Sequence[Sequence[float]] | np.ndarray, burn_in: float = BURN_IN) -> float:
    """How much the *shape* of a distribution changes between evaluation points.

    `series` is (T, P): P ascending percentiles at each of T points, P odd with the median in
    the middle (e.g. the 5/15/50/85/95th). Each row is first standardized by its own median
    and by the spread between the two percentiles next to the median (15th and 85th for
    P = 5): z = (q - q_median) / (q_above - q_below), so a shift or a rescaling of the
    distribution changes nothing, and only its shape (skew, tails) moves z. After the
    burn-in,

        shape drift = mean_{t, p} |z[t+1, p] - z[t, p]|    over the non-median columns

    This is what BN cannot fix by normalizing (Ioffe & Szegedy 2015, Sec. 3.2: constraining
    the first and second moments of an input whose shape changes "would not eliminate the
    covariate shift").
    """
    q = _after_burn_in(_series(series, "series", ndim=2), burn_in, "series", min_len=2)
    P = q.shape[1]
    if P < 3 or P % 2 == 0:
        raise ValueError(f"series: got {P} percentile columns, expected an odd number >= 3")
    m = P // 2
    spread = q[:, m + 1] - q[:, m - 1]  # (T,)
    if not np.all(spread > 0):
        raise ValueError("series: the percentiles next to the median coincide, expected spread")
    z = (q - q[:, m : m + 1]) / spread[:, None]  # (T, P), the median column is 0
    z = np.delete(z, m, axis=1)  # (T, P - 1)
    return float(np.mean(np.abs(np.diff(z, axis=0))))


def log_loss_jitter(losses: Sequence[float] | np.ndarray, burn_in: float = BURN_IN) -> float:
    """Standard deviation of step-to-step changes of log(loss), after burn-in: relative jitter.

    Lower is smoother. `loss_smoothness` is in the loss's own units, so a network stuck near
    its initial loss (ln 10) and one that learns are compared at different loss levels; the
    change of log(loss) is the relative change, std_t(log L[t+1] - log L[t]) ~ std(dL / L),
    which means the same at every loss level.
    """
    x = _after_burn_in(_series(losses, "losses"), burn_in, "losses", min_len=3)
    if np.any(x <= 0):
        raise ValueError("losses: got values <= 0, expected positive losses (cross-entropy)")
    return float(np.std(np.diff(np.log(x)), ddof=1))


def grad_norm_stability(norms: Sequence[float] | np.ndarray, burn_in: float = BURN_IN) -> float:
    """Coefficient of variation of the gradient norm, std(||g||) / mean(||g||), after burn-in.

    Lower is more stable. Dividing by the mean makes it scale-free, since BN changes the
    gradient's magnitude as well as its variability.
    """
    x = _after_burn_in(_series(norms, "norms"), burn_in, "norms", min_len=2)
    if np.any(x < 0):
        raise ValueError("norms: got negative values, expected gradient norms >= 0")
    mean = float(x.mean())
    if mean == 0.0:
        raise ValueError("norms: all zero after burn-in, expected a gradient that is not zero")
    return float(x.std(ddof=1)) / mean


TREND_WINDOW = 101  # steps of the centered moving average that stands for the trend


def grad_norm_jitter(
    norms: Sequence[float] | np.ndarray, burn_in: float = BURN_IN, window: int = TREND_WINDOW
) -> float:
    """How much the gradient norm varies step to step around its own trend (trend-free).

    After the burn-in, with m_t the centered moving average of the norm over `window` steps
    (odd, so it is centered; computed where the whole window fits),

        jitter = std_t(g_t / m_t - 1)

    i.e. the relative deviation from the local level. `grad_norm_stability` (the CV) also
    counts a slow rise or fall over training as instability; this does not: a pure linear
    trend gives 0 (a moving average of a line is the line), and g_t = m_t (1 + s e_t) with
    e_t i.i.d. of unit variance gives s sqrt(1 - 1/window), i.e. about the noise's relative
    std. Scale-free, like the CV.
    """
    if window < 3 or window % 2 == 0:
        raise ValueError(f"window: got {window!r}, expected an odd number of steps >= 3")
    x = _after_burn_in(_series(norms, "norms"), burn_in, "norms", min_len=window + 1)
    if np.any(x < 0):
        raise ValueError("norms: got negative values, expected gradient norms >= 0")
    level = np.convolve(x, np.ones(window) / window, mode="valid")  # (T - window + 1,)
    if np.any(level <= 0):
        raise ValueError("norms: the moving average reaches 0, expected a gradient that is not")
    half = window // 2
    centered = x[half : len(x) - half]  # (T - window + 1,): the point each average centres on
    return float(np.std(centered / level - 1.0, ddof=1))


def steps_to_accuracy(
    steps: Sequence[int] | np.ndarray, acc: Sequence[float] | np.ndarray, threshold: float
) -> int | None:
    """The first evaluated step at which accuracy reaches `threshold`, or None if it never does.

    `steps` (T,) increasing and `acc` (T,) in the same units as `threshold`. The answer is only
    as fine as the evaluation schedule. None must not be averaged away: pick a threshold every
    run reaches, or report how many did not.
    """
    s, a = _series(steps, "steps"), _series(acc, "acc")
    if s.shape != a.shape or s.size == 0:
        raise ValueError(f"steps, acc: got shapes {s.shape} and {a.shape}, expected equal, (T,)")
    if np.any(np.diff(s) <= 0):
        raise ValueError("steps: expected strictly increasing evaluation steps")
    reached = np.flatnonzero(a >= threshold)
    return int(s[reached[0]]) if reached.size else None


def highest_trainable(grid: Sequence[float], trained: Sequence[bool]) -> float | None:
    """The largest grid value (e.g. learning rate) at which the run trained, or None.

    `trained[i]` says whether the run at grid[i] trained (did not diverge and beat chance by
    the experiment's margin). For the learning-rate claim compare log2 of this value across BN
    and baseline, seed by seed: a difference of 1 means BN tolerates twice the rate.
    """
    g = _series(grid, "grid")
    ok = np.asarray(trained, dtype=bool)
    if ok.shape != g.shape:
        raise ValueError(f"trained: got shape {ok.shape}, expected the grid's {g.shape}")
    return float(g[ok].max()) if ok.any() else None


def spread(values: Sequence[float] | np.ndarray) -> float:
    """max - min of one seed's final metric across settings (e.g. init scales): sensitivity."""
    x = _series(values, "values")
    if x.size < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"values: got {x.tolist()}, expected at least 2 finite numbers")
    return float(x.max() - x.min())
