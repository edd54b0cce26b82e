"""A resolved config as text: every field, its value and what its comment in config.py says
(the unit or the meaning), for `bnlab config show`.

    print(format_config(get_preset("smoke")))
    # model.hidden         32, 32     fully connected hidden widths
    # ...
"""

from __future__ import annotations

import inspect
import re
import typing
from dataclasses import fields, is_dataclass

from bnlab.engine.config import TrainConfig
from bnlab.engine.naming import flat

_FIELD = re.compile(r"^\s+(\w+):[^#]*?(?:#\s*(.*))?$")
MAX_COMMENT = 73  # characters of a comment shown


def field_comments(cls: type) -> dict[str, str]:
    """{field: comment} of one config dataclass, read from its source: the comment after the
    field, else the comment lines just above it (their first sentence). A dataclass built at
    import time (`ModelConfig.norm`'s, from the norm registry) has no source: it carries
    them as `FIELD_COMMENTS`."""
    if hasattr(cls, "FIELD_COMMENTS"):
        return dict(cls.FIELD_COMMENTS)
    comments: dict[str, str] = {}
    above: list[str] = []
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        match = _FIELD.match(line)
        if match and not stripped.startswith(("def ", "@", "return")):
            text = (match.group(2) or " ".join(above)).split("; ")[0].strip()
            comments[match.group(1)] = text if len(text) <= MAX_COMMENT else text[:70] + "..."
        above = []
    return comments


def all_comments(cls: type = TrainConfig, prefix: str = "") -> dict[str, str]:
    """{dotted key: comment} for every field of `cls` and the dataclasses inside it."""
    hints = typing.get_type_hints(cls)
    own = field_comments(cls)
    out: dict[str, str] = {}
    for f in fields(cls):
        if is_dataclass(hints[f.name]):
            out.update(all_comments(hints[f.name], f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = own.get(f.name, "")
    return out


def config_rows(cfg: TrainConfig) -> list[tuple[str, str, str]]:
    """(dotted key, value, comment) for every field, in the dataclasses' order."""
    comments = all_comments()
    if cfg.optim.lrs:  # every member takes its rate from the grid
        comments["optim.lr"] = "unused: optim.lrs is set"
    return [(key, as_typed(value), comments.get(key, "")) for key, value in flat(cfg).items()]


def as_typed(value: object) -> str:
    """A value as `--set` takes it: 0.1, 100,100,100 (a tuple), true, "" (empty)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(as_typed(v) for v in value) or '""'
    return str(value) or '""'


def format_config(cfg: TrainConfig) -> str:
    """The rows as aligned text: key, value, comment."""
    rows = config_rows(cfg)
    kw = max(len(k) for k, _, _ in rows)
    vw = max(len(v) for _, v, _ in rows)
    return "\n".join(f"{k:<{kw}}  {v:<{vw}}  {c}".rstrip() for k, v, c in rows)
