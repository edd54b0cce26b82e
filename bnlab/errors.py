"""The errors every layer raises for a user's mistake, and the CLI prints without a traceback;
`did_you_mean` for messages about a name that is not known.

Anything else that reaches the command line is a bug and shows its traceback. An error that
library callers may also catch as a builtin (a bad value, a missing file) subclasses both.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

NEAR = 0.85  # a suggestion scores at least this fraction of the best one's score


class BnlabError(Exception):
    """An error meant for the user: printed as one line, exit status 2, no traceback."""


class ResultsNotFoundError(BnlabError, FileNotFoundError):
    """A directory given to a command does not hold the results the command reads."""


class ConfigError(BnlabError, ValueError):
    """A config field holds a value bnlab cannot run with; the message names the field
    (dotted, as `--set` takes it), the value and what was expected."""


def close_matches(name: str, known: Iterable[str], n: int = 4) -> list[str]:
    """The known names nearest to `name`, nearest first: the same last dotted part, one that
    starts with it, one that contains it ("norm" -> "norms", "model.norm_position"), then
    spelling neighbours (difflib's ratio of at least 0.6); only those near the best."""
    leaf = name.rsplit(".", 1)[-1].lower()

    def score(key: str) -> float:
        key_leaf = key.rsplit(".", 1)[-1].lower()
        spelling = max(
            difflib.SequenceMatcher(None, name.lower(), key.lower()).ratio(),
            difflib.SequenceMatcher(None, leaf, key_leaf).ratio(),
        )
        if key_leaf == leaf:
            return 4.0
        if key_leaf.startswith(leaf) and len(leaf) >= 2:
            return 3.0 + spelling
        if leaf in key.lower() and len(leaf) >= 3:
            return 2.0 + spelling
        return spelling if spelling >= 0.6 else 0.0

    scored = sorted(((score(k), k) for k in known), key=lambda item: -item[0])
    best = scored[0][0] if scored else 0.0
    return [k for s, k in scored if s > 0 and s >= NEAR * best][:n]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """'did you mean 'a' or 'b'? ' for the names nearest to `name`, or '' if none is near."""
    found = close_matches(name, known)
    if not found:
        return ""
    quoted = [repr(k) for k in found]
    options = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f"did you mean {options}? "
