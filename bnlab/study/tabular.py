"""A CSV file as (features, labels): one row per example, a header, one label column.

Every cell of the other columns must be a number; a missing or non-numeric cell is refused
with its line and column, before any work. Labels may be class indices (0, 1, ...) or names
("malignant"), which become indices in sorted order.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from bnlab.errors import BnlabError

__all__ = ["read_csv"]


def read_csv(path: str | Path, label: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(x float64 (N, F), y int64 (N,), class names) from the CSV at `path`."""
    path = Path(path)
    if not path.is_file():
        raise BnlabError(f"Data.source: {path} is not a file, expected a CSV")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise BnlabError(f"{path}: got {len(rows)} line(s), expected a header and examples")
    header = [h.strip() for h in rows[0]]
    if label not in header:
        raise BnlabError(
            f"Data.label: {path} has no column {label!r}; its columns are {', '.join(header)}"
        )
    at = header.index(label)
    features = [h for i, h in enumerate(header) if i != at]
    x = np.empty((len(rows) - 1, len(features)), dtype=np.float64)  # (N, F)
    labels = []
    for n, row in enumerate(rows[1:]):
        line = n + 2  # 1-based, after the header
        if len(row) != len(header):
            raise BnlabError(f"{path}, line {line}: {len(row)} cells, expected {len(header)}")
        labels.append(row[at].strip())
        cells = [c for i, c in enumerate(row) if i != at]
        x[n] = [_number(path, line, features[i], c) for i, c in enumerate(cells)]
    y, names = _classes(path, labels)
    return x, y, names


def _number(path: Path, line: int, column: str, cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise BnlabError(
            f"{path}, line {line}, column {column!r}: got {cell!r}, expected a number"
        ) from None
    if not math.isfinite(value):
        raise BnlabError(
            f"{path}, line {line}, column {column!r}: got {cell!r}, expected a finite number "
            "(a missing value has no place in a batch; drop or fill the row first)"
        )
    return value


def _classes(path: Path, labels: list[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer labels stay class indices; any other label names a class, sorted."""
    if "" in labels:
        line = labels.index("") + 2
        raise BnlabError(f"{path}, line {line}: the label is empty, expected a class")
    try:
        y = np.array([int(v) for v in labels], dtype=np.int64)
    except ValueError:
        names = tuple(sorted(set(labels)))
        index = {name: i for i, name in enumerate(names)}
        return np.array([index[v] for v in labels], dtype=np.int64), names
    return y, tuple(str(c) for c in range(int(y.max()) + 1))
