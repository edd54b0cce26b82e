"""The data layer's exceptions. Those a user can cause are `BnlabError`s (the CLI prints them
as one line) and subclass the builtin a library caller would expect."""

from __future__ import annotations

from bnlab.errors import BnlabError


class DatasetNameError(BnlabError, ValueError):
    """A dataset or split name bnlab does not know; the message lists the known ones."""


class DataError(BnlabError, ValueError):
    """A file is present but is not what it should be (wrong hash, bad header, truncated)."""


class ChecksumError(DataError):
    """A file's bytes do not hash to the published value."""

    def __init__(self, path: object, algorithm: str, expected: str, actual: str, hint: str = ""):
        self.path, self.algorithm, self.expected, self.actual = path, algorithm, expected, actual
        msg = f"{path}: {algorithm} mismatch: expected {expected}, got {actual}"
        super().__init__(msg + (f". {hint}" if hint else ""))


class MissingDataError(BnlabError, FileNotFoundError):
    """No source holds the dataset; the message says which command fetches it."""


class SourceUnavailable(Exception):
    """One fetch source could not supply the data; the next source is tried."""
