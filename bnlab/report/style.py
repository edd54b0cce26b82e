"""One look for every figure: each condition's colour, line style and marker, by its label.

Every figure in the report takes a condition's look from `style_of(label)`, never from
matplotlib's colour cycle, so BN is the same blue in every figure whatever order the groups
come in. Colours are Okabe & Ito's colour-blind-safe palette; eight colours cannot name
every condition alone, so each condition also has a line style and a marker, and two
conditions share a colour only when no experiment draws them together (`DRAWN_TOGETHER`).

| condition (labels)                  | colour               | line | marker |
|-------------------------------------|----------------------|------|--------|
| BN ("BN before <act>", "EMA")       | blue #0072B2         | -    | o      |
| no BN ("no norm")                   | vermillion #D55E00   | --   | s      |
| GroupNorm                           | bluish green #009E73 | -.   | ^      |
| LayerNorm                           | reddish purple #CC79A7 | :  | D      |
| InstanceNorm                        | black #000000        | -..  | v      |
| Batch Renorm                        | orange #E69F00       | -    | P      |
| Ghost BN                            | sky blue #56B4E9     | -    | X      |
| BN + noise ("..., scale s": greys)  | black #000000        | -    | d      |
| BN after <act>                      | reddish purple #CC79A7 | -- | >      |
| precise statistics                  | bluish green #009E73 | --   | h      |
| batch statistics                    | orange #E69F00       | :    | *      |

"BN before the nonlinearity" and "EMA statistics" are BN as Ioffe & Szegedy define it, so
they are drawn as BN. Measures drawn as series (the lr sweep's landscape measures) and
unknown labels take Paul Tol's colour-blind-safe "muted" colours, outside the condition
palette, so that no measure or unknown label is mistaken for a network.
"""

from __future__ import annotations

import re
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from matplotlib.colors import to_rgb

# Okabe & Ito (2008), "Color Universal Design": distinct under every common colour blindness.
BLUE, VERMILLION, GREEN, PURPLE = "#0072B2", "#D55E00", "#009E73", "#CC79A7"
ORANGE, SKY_BLUE, BLACK = "#E69F00", "#56B4E9", "#000000"
PALETTE = (BLUE, VERMILLION, GREEN, ORANGE, PURPLE, SKY_BLUE, BLACK)  # not yellow: faint on white
# Paul Tol's "muted" scheme (colour-blind safe), for series that are not conditions.
MUTED = ("#332288", "#44AA99", "#999933", "#882255", "#88CCEE", "#DDCC77", "#CC6677")
DASH_DOT_DOT = (0, (4, 1.5, 1, 1.5, 1, 1.5))


@dataclass(frozen=True)
class Style:
    """How one condition is drawn: a colour (hex), a matplotlib line style and marker."""

    colour: str
    linestyle: str | tuple = "-"
    marker: str = "o"


CONDITIONS: dict[str, Style] = {
    "BN": Style(BLUE, "-", "o"),
    "no BN": Style(VERMILLION, "--", "s"),
    "GroupNorm": Style(GREEN, "-.", "^"),
    "LayerNorm": Style(PURPLE, ":", "D"),
    "InstanceNorm": Style(BLACK, DASH_DOT_DOT, "v"),
    "Batch Renorm": Style(ORANGE, "-", "P"),
    "Ghost BN": Style(SKY_BLUE, "-", "X"),
    "BN + noise": Style(BLACK, "-", "d"),
    "BN after": Style(PURPLE, "--", ">"),
    "precise statistics": Style(GREEN, "--", "h"),
    "batch statistics": Style(ORANGE, ":", "*"),
}

# The labels the experiments pass (common.NORM_LABELS, small_batch.LABELS, the placement and
# test-time-statistics labels), case-folded, to their condition.
ALIASES: dict[str, str] = {
    **{name.casefold(): name for name in CONDITIONS},
    "batchnorm": "BN",
    "bn before": "BN",  # Ioffe & Szegedy's placement: BN is before the nonlinearity
    "ema": "BN",  # BN's own test-time statistics: the BN every other figure shows
    "ema statistics": "BN",
    "no norm": "no BN",
    "none": "no BN",
    "groupnorm (gn)": "GroupNorm",
    "gn": "GroupNorm",
    "ln": "LayerNorm",
    "batch renorm (brn)": "Batch Renorm",
    "noisy bn": "BN + noise",
    "precise": "precise statistics",
    "precise bn": "precise statistics",
    "batch stats": "batch statistics",
}

# Series that are measures rather than networks (santurkar2018_sections.SWEEP_LABELS).
SERIES: dict[str, Style] = {
    "loss variation": Style(MUTED[0], "-", "o"),
    "ℓ2 gradient change": Style(MUTED[1], "--", "s"),
    "gradient change / ||g||": Style(MUTED[2], "-.", "^"),
    "effective β-smoothness": Style(MUTED[3], ":", "D"),
}

# Conditions some experiment draws in one figure: they must differ in colour.
DRAWN_TOGETHER = (
    ("no BN", "BN", "GroupNorm", "LayerNorm", "InstanceNorm", "Batch Renorm", "Ghost BN"),
    ("no BN", "BN", "BN + noise"),
    ("BN", "BN after"),
    ("BN", "precise statistics", "batch statistics"),
)

_PLACEMENT = re.compile(r"^bn (before|after)\b")
_NOISE_SCALE = re.compile(r"^(bn \+ noise|noisy bn)\b.*?(?:scale\s+|×\s*)([0-9]*\.?[0-9]+)")
_FALLBACK_LINES = ("-.", ":", DASH_DOT_DOT)
_FALLBACK_MARKERS = ("o", "s", "^", "D", "v", "P")


def condition_of(label: str) -> str | None:
    """The condition `label` names ("BN, before BN" -> "BN"), or None if it names none."""
    key = label.strip().casefold()
    if key in ALIASES:
        return ALIASES[key]
    placement = _PLACEMENT.match(key)  # "BN before sigmoid", "BN after relu"
    if placement:
        return "BN" if placement.group(1) == "before" else "BN after"
    base = re.split(r",| \(", key, maxsplit=1)[0].strip()  # "BN (EMA)", "BN, after BN"
    if base != key and base in ALIASES:
        return ALIASES[base]
    return None


def style_of(label: str) -> Style:
    """The look of the group labelled `label` in any figure (see the module docstring).

    "BN + noise, scale s" is BN + noise in a grey as light as the noise is weak (black at
    s >= 1); an unknown label gets a muted colour, a broken line and a marker chosen by a
    hash of the label, so it is drawn alike in every figure and every run.
    """
    key = label.strip()
    if key in SERIES:
        return SERIES[key]
    scale = _NOISE_SCALE.match(key.casefold())
    if scale:
        return _noise_strength(float(scale.group(2)))
    condition = condition_of(key)
    if condition is not None:
        return CONDITIONS[condition]
    h = zlib.crc32(key.encode())
    return Style(
        MUTED[h % len(MUTED)],
        _FALLBACK_LINES[(h >> 8) % len(_FALLBACK_LINES)],
        _FALLBACK_MARKERS[(h >> 16) % len(_FALLBACK_MARKERS)],
    )


def _noise_strength(scale: float) -> Style:
    """BN + noise at `scale` times the scored noise: grey, lighter as the noise halves."""
    lightness = float(np.clip(-np.log2(max(scale, 1e-6)) / 4, 0.0, 0.7))  # 0.5x -> 0.25
    return Style(lighten(CONDITIONS["BN + noise"].colour, lightness), "-", "d")


def lighten(colour: str, amount: float) -> str:
    """`colour` blended towards white by `amount` (0: unchanged, 1: white), as hex."""
    rgb = np.asarray(to_rgb(colour))
    mixed = rgb + (1.0 - rgb) * float(np.clip(amount, 0.0, 1.0))
    return "#" + "".join(f"{round(255 * c):02X}" for c in mixed)


# ---- axis labels: a unit (or what is counted) in a trailing "(...)" or "[...]"


class MissingUnitWarning(UserWarning):
    """An axis label without a unit: the figure is drawn, the omission is made visible."""


_UNIT = re.compile(r"\s[(\[][^()\[\]]*(\([^()]*\)[^()\[\]]*)*[)\]]$")


def has_unit(label: str) -> bool:
    """True if `label` ends in a parenthesised unit, "test accuracy (%)", "step (updates)"."""
    return bool(_UNIT.search(label.strip()))


def check_unit(label: str, axis: str) -> str:
    """`label`, warning (MissingUnitWarning) if it names no unit; dimensionless quantities
    say what they count or that they have none: "training step (updates)", "cos (unitless)"."""
    if label and not has_unit(label):
        warnings.warn(
            f"{axis}={label!r}: no unit; expected a trailing '(unit)', e.g. 'loss (nats)'",
            MissingUnitWarning,
            stacklevel=3,
        )
    return label
