"""The data layer's exceptions. Each subclasses a builtin the CLI already reports as one line."""

from __future__ import annotations


class DataError(ValueError):
    """A file is present but is not what it should be (wrong hash, bad header, truncated)."""


class ChecksumError(DataError):
    """A file's bytes do not hash to the published value."""

    def __init__(self, path: object, algorithm: str, expected: str, actual: str, hint: str = ""):
        self.path, self.algorithm, self.expected, self.actual = path, algorithm, expected, actual
        msg = f"{path}: {algorithm} mismatch: expected {expected}, got {actual}"
        super().__init__(msg + (f". {hint}" if hint else ""))


class MissingDataError(FileNotFoundError):
    """No source holds the dataset; the message says which command fetches it."""


class SourceUnavailable(Exception):
    """One fetch source could not supply the data; the next source is tried."""
