"""How `bnlab.exercises` grades an answer and words the verdict: the tolerance, the report of
the element that fails it (with the digits that tell got from expected), and the known
mistake a wrong answer matches. One exercise's inputs and mistakes live in `exercises`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

RTOL, ATOL = 1e-6, 1e-9  # float64 inputs: a correct answer agrees to rounding


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one exercise: status is "passed", "failed" or "not attempted"."""

    exercise: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return f"[{self.status}] {self.exercise}: {self.message}"


class Wrong(Exception):
    """Raised inside a grader: the student's answer differs; the message says how."""


def run(exercise: str, fn: Callable, grade: Callable[[Callable], str]) -> CheckResult:
    if not callable(fn):
        raise TypeError(f"fn: got {type(fn).__name__}, expected the function to check")
    try:
        return CheckResult(exercise, "passed", grade(fn))
    except NotImplementedError:
        return CheckResult(
            exercise, "not attempted", "the function still raises NotImplementedError"
        )
    except Wrong as wrong:
        return CheckResult(exercise, "failed", str(wrong))
    except Exception as err:  # the student's code crashed: report it, do not crash the notebook
        return CheckResult(exercise, "failed", f"your function raised {type(err).__name__}: {err}")


def array(name: str, got) -> np.ndarray:
    if isinstance(got, torch.Tensor):
        got = got.detach().numpy()
    try:
        return np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise Wrong(f"{name}: got {type(got).__name__}, expected an array ({err})") from None


def close(got, want: np.ndarray) -> bool:
    got = np.asarray(got, dtype=np.float64)
    return got.shape == want.shape and np.allclose(got, want, rtol=RTOL, atol=ATOL)


def _distinct(a: float, b: float) -> tuple[str, str]:
    """a and b with the fewest significant digits (at least 6) that print them differently."""
    for digits in range(6, 18):
        text_a, text_b = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if text_a != text_b:
            return text_a, text_b
    return repr(a), repr(b)


def _shape_message(name: str, got: np.ndarray, want: np.ndarray) -> str:
    msg = f"{name}: got shape {got.shape}, expected {want.shape}"
    if got.size == want.size and np.squeeze(got).shape == np.squeeze(want).shape:
        msg += " (the same values with extra axes of length 1: drop them, e.g. keepdims=False)"
    return msg


def difference(name: str, got: np.ndarray, want: np.ndarray) -> str | None:
    """None if got == want within the tolerance, else where it fails: the element furthest
    outside |got - want| <= ATOL + RTOL * |want|, printed with the digits that tell them apart."""
    if got.shape != want.shape:
        return _shape_message(name, got, want)
    if close(got, want):
        return None
    excess = np.abs(got - want) - (ATOL + RTOL * np.abs(want))
    excess = np.where(np.isnan(excess), np.inf, excess)  # a NaN is as far out as it gets
    outside = excess > 0
    where = np.unravel_index(int(np.argmax(excess)), want.shape)
    text_got, text_want = _distinct(float(got[where]), float(want[where]))
    return (
        f"{name}: {int(outside.sum())} of {want.size} values differ beyond the tolerance "
        f"(|got - expected| <= {ATOL:g} + {RTOL:g} * |expected|); the furthest, at index "
        f"{tuple(int(i) for i in where)}: got {text_got}, expected {text_want}"
    )


def _known(got: np.ndarray, mistakes: dict | None) -> str:
    for hint, wrong in (mistakes or {}).items():
        if close(got, np.asarray(wrong, dtype=np.float64)):
            return f". It matches a known mistake: {hint}"
    return ""


def compare(name: str, got, want: np.ndarray, mistakes: dict | None = None) -> None:
    """Raise Wrong unless got == want; name a known mistake that got matches."""
    got = array(name, got)
    msg = difference(name, got, want)
    if msg is not None:
        raise Wrong(msg + _known(got, mistakes))


def compare_all(parts: list[tuple[str, object, np.ndarray, dict]]) -> None:
    """`compare` for several outputs at once: one Wrong naming every output that differs."""
    found = []
    for name, got, want, mistakes in parts:
        try:
            compare(name, got, want, mistakes)
        except Wrong as wrong:
            found.append(str(wrong))
    if found:
        raise Wrong("\n".join(found))


def pair(name: str, out, n: int = 2) -> tuple:
    if not isinstance(out, tuple | list) or len(out) != n:
        raise Wrong(f"{name}: got {type(out).__name__}, expected a tuple of {n} arrays")
    return tuple(out)
