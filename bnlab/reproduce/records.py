"""An experiment's analysis, kept beside the published report, so the report can be rebuilt
without its runs.

The full run takes longer than one machine is held, and run state (databases, checkpoints) is
never published. So `bnlab report DIR --publish DEST` writes, for every experiment it analyzes,
DEST/records/<experiment>.json: the experiment's sections and its rows *before* the
families' multiplicity control, with when its rules were registered, which code on which
machine trained it, and its measured wall time. A later `--publish` to the
same DEST analyzes the experiments whose runs it has and reads the others back from their
records; Holm and BH then run over every row of each family, old and new alike, as if all
had been analyzed together. An experiment with runs in DIR always replaces its record.

Parts trained on different machines are each a full run of their experiment, but not the
same bits: torch picks its kernels by the CPU's instruction set, and float rounding that
differs in the last bit grows over thousands of steps. The report's header names each
machine with its experiments; `bnlab replay` checks bits on the machine that trained them.

A record is plain JSON (NaN and infinities written as Python's json writes them): report
objects become {"type": "module:Class", "fields": {...}}, enums {"enum": ..., "value": ...},
figure paths {"path": ...} relative to DEST, sequences lists. Only bnlab's report classes
are read back.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnlab.errors import BnlabError
from bnlab.reproduce.experiment import ExperimentResult

DIRECTORY = "records"
FORMAT = 1
READABLE = ("bnlab.report.", "bnlab.reproduce.experiment")  # modules whose classes load


@dataclass(frozen=True)
class Record:
    """One experiment as published: its analysis (rows before multiplicity control, with
    their registration status) and where it came from."""

    result: ExperimentResult
    registration: str  # when its rules were recorded and its first run started
    versions: tuple[str, ...]  # the code versions that trained its runs
    machine: str = ""  # the machine that trained them (`machine_description`)
    wall_time_s: float = 0.0  # its `bnlab reproduce` calls, end to end (s)

    @property
    def name(self) -> str:
        return self.result.name


def write(dest: Path, record: Record) -> Path:
    """Write DEST/records/<experiment>.json; figure paths are stored relative to `dest`."""
    dest = Path(dest)
    path = dest / DIRECTORY / f"{record.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"format": FORMAT, "record": _encode(record, dest.resolve())}
    path.write_text(json.dumps(body, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_all(dest: Path) -> list[Record]:
    """Every record under DEST/records, by file name; none when DEST has no records."""
    dest = Path(dest)
    return [read(p, dest) for p in sorted((dest / DIRECTORY).glob("*.json"))]


def read(path: Path, dest: Path) -> Record:
    try:
        body = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BnlabError(f"record {path}: cannot be read ({e})") from e
    if body.get("format") != FORMAT:
        raise BnlabError(
            f"record {path}: format {body.get('format')!r}, expected {FORMAT}; "
            "re-run its experiment and publish again"
        )
    try:
        record = _decode(body["record"], Path(dest).resolve())
    except (TypeError, AttributeError, KeyError) as e:  # a report class changed its fields
        raise BnlabError(
            f"record {path}: does not fit this code's report classes ({e}); re-run its "
            "experiment and publish again"
        ) from e
    if not isinstance(record, Record):
        raise BnlabError(f"record {path}: holds {type(record).__name__}, expected a Record")
    return record


def _name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _encode(obj: object, base: Path) -> object:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {
            f.name: _encode(getattr(obj, f.name), base) for f in dataclasses.fields(obj) if f.init
        }
        return {"type": _name(type(obj)), "fields": fields}
    if isinstance(obj, enum.Enum):
        return {"enum": _name(type(obj)), "value": obj.value}
    if isinstance(obj, Path):
        path = obj.resolve()
        if not path.is_relative_to(base):
            raise ValueError(f"a record's files lie under its DEST {base}, not at {path}")
        return {"path": path.relative_to(base).as_posix()}
    if isinstance(obj, Mapping):
        return {"mapping": {str(k): _encode(v, base) for k, v in obj.items()}}
    if isinstance(obj, list | tuple | np.ndarray):
        return [_encode(v, base) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"a record cannot hold {type(obj).__name__}: {obj!r}")


def _load(name: str) -> type:
    module, _, qualname = name.partition(":")
    if not module.startswith(READABLE) and name != _name(Record):
        raise BnlabError(f"record: class {name} is not one bnlab reads back")
    cls = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    return cls


def _decode(obj: object, base: Path) -> object:
    if isinstance(obj, list):
        return tuple(_decode(v, base) for v in obj)
    if not isinstance(obj, dict):
        return obj
    if "type" in obj:
        fields = {k: _decode(v, base) for k, v in obj["fields"].items()}
        return _load(obj["type"])(**fields)
    if "enum" in obj:
        return _load(obj["enum"])(obj["value"])
    if "path" in obj:
        return base / obj["path"]
    return {k: _decode(v, base) for k, v in obj["mapping"].items()}
