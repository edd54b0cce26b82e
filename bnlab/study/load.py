"""A study file: a Python file that declares a `Study` at module level (`study = Study(...)`).

`bnlab study FILE` and `bnlab replay` load it with `runpy` under a name that is not
"__main__", so a file that also runs itself (`if __name__ == "__main__": ...`) only declares.
"""

from __future__ import annotations

import runpy
from pathlib import Path

from bnlab.errors import BnlabError
from bnlab.study.spec import Study

__all__ = ["load_study"]


def load_study(path: str | Path, name: str | None = None) -> Study:
    """The `Study` declared in the file at `path` (the one called `name`, if several)."""
    path = Path(path)
    if not path.is_file():
        raise BnlabError(f"FILE: {path} is not a file, expected a Python file declaring a Study")
    namespace = runpy.run_path(str(path), run_name="bnlab_study_file")
    found = {s.name: s for s in namespace.values() if isinstance(s, Study)}
    if name is not None:
        if name not in found:
            raise BnlabError(f"{path}: declares no study {name!r} (found: {', '.join(found)})")
        return found[name]
    if len(found) != 1:
        what = ", ".join(found) or "none"
        raise BnlabError(f"{path}: expected exactly one Study at module level, found {what}")
    return next(iter(found.values()))
