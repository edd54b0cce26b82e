"""What a study stores about itself before its first step, and how a resume is checked.

The declaration is plain JSON: every setting, each variant's model (its repr, its parameter
count, and a hash of its architecture and initial values), the data (source, sizes, a hash
of the arrays), how each variant trains (vmapped, or apart and why) and the claims. It goes
into the config of every run in the results database, all written in one go before any
run trains, and into `study.json` beside it. A `--resume` whose declaration differs in any
field of its identity (all but where and on how many threads it runs) is refused, naming the
field, so neither the question nor the rule that decides it can change after the start.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from bnlab.engine.runs import THREADS_KEY
from bnlab.errors import BnlabError
from bnlab.study.checks import VariantPlan
from bnlab.study.data import StudyData
from bnlab.study.members import settings
from bnlab.study.spec import Study

__all__ = [
    "MANIFEST",
    "declaration",
    "first_difference",
    "is_study_dir",
    "read_manifest",
    "run_config",
    "write_manifest",
]

MANIFEST = "study.json"
# where and how it runs, not what: a run resumes on any device (threads: checked apart)
VOLATILE = ("device", THREADS_KEY, "file", "file_sha256")


def declaration(
    study: Study,
    data: StudyData,
    plans: dict[str, VariantPlan],
    file: str,
    device: str,
    threads: int,
) -> dict:
    """The study as stored (see the module docstring); `threads` is the torch thread count
    it trains with (stored as the engine stores it, `bnlab.engine.runs.THREADS_KEY`)."""
    return {
        "study": study.name,
        "file": file,
        "file_sha256": _sha256(file),
        "factory": _name(study.model),
        "data": {
            "source": data.source,
            "note": data.note,
            "classes": data.classes,
            "train": len(data.y_train),
            "test": len(data.y_test),
            "shape": list(data.x_train.shape[1:]),
            "fingerprint": data.fingerprint(),  # sha256, see StudyData.fingerprint
        },
        "variants": {name: _variant(study, name, plans[name]) for name in study.variants},
        "optimizer": asdict(study.optimizer),
        **{k: getattr(study, k) for k in ("batch_size", "steps", "seeds", "seed", "dtype")},
        "log_every": study.log_every,
        "eval_every": study.evaluation_every,
        "checkpoint_every": study.checkpoint_every,
        "activations": list(study.activations),
        "claims": [{**asdict(c), "text": c.text} for c in study.claims],
        "device": device,
        THREADS_KEY: threads,
    }


def run_config(decl: dict, variant: str) -> dict:
    """The config stored with one variant's run: the declaration, the variant named, and
    its own batch size (what `bnlab results` shows)."""
    return {**decl, "variant": variant, "batch_size": decl["variants"][variant]["batch_size"]}


def _variant(study: Study, name: str, plan: VariantPlan) -> dict:
    v, s = study.variants[name], settings(study, name)
    return {
        "transform": None if v.model is None else _name(v.model),
        **asdict(s),
        "mode": plan.mode,
        "reason": plan.reason,
        "parameters": plan.parameters,
        "model": plan.model,
        "model_sha256": plan.signature,
        "layers": list(plan.layers),
    }


def _name(fn) -> str:
    """A callable as stable text (no memory addresses): module.name for a function or class,
    the arguments of a partial, else its own repr (a `replace_norm(...)` prints its
    arguments) or, without one, its class."""
    if isinstance(fn, functools.partial):
        args = [
            _name(fn.func),
            *map(repr, fn.args),
            *(f"{k}={v!r}" for k, v in fn.keywords.items()),
        ]
        return f"functools.partial({', '.join(args)})"
    if inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isclass(fn):
        return f"{fn.__module__}.{fn.__qualname__}"
    if type(fn).__repr__ is object.__repr__:
        return f"{type(fn).__module__}.{type(fn).__qualname__} instance"
    return repr(fn)


def _sha256(file: str) -> str:
    if not file or not Path(file).is_file():
        return ""
    return hashlib.sha256(Path(file).read_bytes()).hexdigest()


def first_difference(stored: dict, current: dict, where: str = "") -> str:
    """The first identity field in which two declarations differ, as 'field: a != b'."""
    for key in sorted(set(stored) | set(current)):
        if not where and key in VOLATILE:
            continue
        a, b = stored.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = first_difference(a, b, f"{where}{key}.")
            if found:
                return found
        elif a != b:
            return f"{where}{key}: stored {json.dumps(a)[:120]}, now {json.dumps(b)[:120]}"
    return ""


def write_manifest(out_dir: Path, manifest: dict) -> None:
    """Write out_dir/study.json atomically (a crash leaves the old file or the new one)."""
    fd, tmp = tempfile.mkstemp(prefix=".study.", suffix=".json", dir=out_dir)
    with os.fdopen(fd, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out_dir / MANIFEST)


def read_manifest(out_dir: str | Path) -> dict:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise BnlabError(f"DIR: {out_dir} holds no {MANIFEST}; expected a `bnlab study` result")
    return json.loads(path.read_text())


def is_study_dir(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def new_manifest(decl: dict, command: str) -> dict:
    return {
        "study": decl["study"],
        "registered": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": command,
        "wall_time_s": {},
        "declaration": decl,
    }
