"""The report's data model: what a report contains, independent of HTML or Markdown.

All frozen: a report is built once from measured numbers and then only rendered. Lists given
by callers are stored as tuples and the protocol as a read-only mapping of strings.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from bnlab.report.figures import FigureFiles

QUICK_BANNER = "QUICK SMOKE RUN — scaled down, not a reproduction"


def _freeze(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # frozen dataclasses normalize their own fields here


@dataclass(frozen=True)
class ReportFigure:
    """A figure in the report: the PNG that is embedded, its caption, and the SVG beside it."""

    png: Path
    caption: str
    svg: Path | None = None

    def __post_init__(self):
        _freeze(self, "png", Path(self.png))
        if self.svg is not None:
            _freeze(self, "svg", Path(self.svg))

    @classmethod
    def from_files(cls, files: FigureFiles, caption: str) -> ReportFigure:
        return cls(files.png, caption, files.svg)

    def link(self, report_dir: Path) -> str:
        """The PNG's path relative to the report's directory, with forward slashes."""
        return Path(os.path.relpath(self.png, report_dir)).as_posix()


@dataclass(frozen=True)
class Table:
    """A table of already-formatted cells, e.g. final accuracy per learning rate."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __post_init__(self):
        _freeze(self, "columns", tuple(str(c) for c in self.columns))
        _freeze(self, "rows", tuple(tuple(str(c) for c in r) for r in self.rows))
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"Table {self.title!r}: row {i} has {len(row)} cells, "
                    f"expected {len(self.columns)} (one per column)"
                )


@dataclass(frozen=True)
class Section:
    """One experiment: its protocol, where its data came from, its figures, tables and notes.

    `protocol` maps a field to its value ("steps" -> "50,000", "optimizer" -> "SGD, lr 0.5");
    values are shown with str(). `data_source` says what data was used, including any subset
    ("CIFAR-10: 5,000-image subset"). `notes` hold, e.g., how the protocol differs from a
    source's whose number the scorecard shows.
    """

    title: str
    protocol: Mapping[str, object]
    data_source: str
    figures: Sequence[ReportFigure] = ()
    tables: Sequence[Table] = ()
    notes: Sequence[str] = ()
    wall_time_s: float | None = None  # shown when set: an experiment's first section has it
    # the stored configs of the runs it reports on (not rendered): the protocol is checked
    # against them (`bnlab.reproduce.common.check_protocol`)
    configs: Sequence[Mapping] = ()

    def __post_init__(self):
        _freeze(
            self, "protocol", MappingProxyType({str(k): str(v) for k, v in self.protocol.items()})
        )
        for name in ("figures", "tables", "notes", "configs"):
            _freeze(self, name, tuple(getattr(self, name)))
        for fig in self.figures:
            if not isinstance(fig, ReportFigure):
                raise TypeError(
                    f"Section {self.title!r}: figures holds {type(fig).__name__}, "
                    "expected ReportFigure (use ReportFigure.from_files)"
                )


@dataclass(frozen=True)
class ReportMeta:
    """What the whole report states about how it was made."""

    title: str
    code_version: str  # e.g. "git 1a2b3c4 (dirty)"
    wall_time_s: float  # seconds, all experiments together
    quick: bool = False  # a --quick run: the report says so in a banner
    created: str = ""  # e.g. an ISO timestamp
    machine: str = ""  # where it ran: CPU, cores, torch version
    regenerate: str = ""  # the command that regenerates this report from scratch
    carried: int = 0  # experiments read back from their records (run earlier, elsewhere)


def machine_description() -> str:
    """The CPU model, the vector instructions torch's kernels use on it, the core count and
    the torch version: where numbers ran. Two machines of one CPU model with different
    instruction sets (AVX2, AVX512) pick different kernels, so their runs differ in the last
    bits, and over thousands of steps in more than that."""
    import torch  # only here: the report layer is otherwise plain numbers

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model} ({torch.backends.cpu.get_cpu_capability()} kernels), {os.cpu_count()} cores, "
        f"{platform.system()}, Python "
        f"{platform.python_version()}, torch {torch.__version__}"
    )


def format_duration(seconds: float | None) -> str:
    """'4 min 12 s', '38.2 s', or 'not recorded'."""
    if seconds is None:
        return "not recorded"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
