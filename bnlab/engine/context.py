"""How and where a run trains, as opposed to what it trains (the `TrainConfig`).

A `RunContext` holds the settings that change neither a run's results database nor its
identity: the device, the torch thread count, the executor and the progress display. It is
built once (by the command line, from its flags) and passed as an argument to everything
that trains, down to each stack; nothing reads these settings from the environment or from
module state, so two trainings in one process can differ in every one of them.

    ctx = RunContext(device="cpu", threads=1, progress=False)
    train(cfg, "results/x", ctx)                 # in this process, on one CPU thread
    train(cfg, "results/x", replace(ctx, executor=RayExecutor()))   # as Ray tasks

A run resumes under any context: a checkpoint holds CPU tensors and loads on any device.
The thread count does change the order of CPU sums, so a run is replayed bit for bit only
with the thread count it trained with (`bnlab replay --threads`), and a resumed run trains
with the count it stored (`resolve_threads`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from bnlab.engine.choices import DEVICES  # auto: CUDA when present, else the CPU
from bnlab.engine.config import TrainConfig
from bnlab.engine.threads import choose_threads, free_cores
from bnlab.errors import BnlabError


class Executor(Protocol):
    """Trains the stacks of a config somewhere other than this process's loop
    (`bnlab.engine.executors.RayExecutor`), with the same results and the same directory."""

    name: str

    def train(
        self, cfg: TrainConfig, out_dir: Path, ctx: RunContext, resume: bool, probes: Sequence
    ) -> Path: ...


@dataclass(frozen=True)
class RunContext:
    """Where and how stacks train; the defaults suit a library call on one machine."""

    device: str = "auto"  # one of DEVICES
    threads: int = 0  # torch threads while a stack trains; 0 = chosen (`resolve_threads`)
    progress: bool = True  # a progress bar per stack (progress lines with Ray)
    executor: Executor | None = None  # None: every stack in this process, one after another
    # `bnlab reproduce --set`: key=value changes applied to every config an experiment
    # builds (`bnlab.reproduce.overrides`). Unlike the fields above they change what is
    # trained, so they end up in each run's stored config and its experiment's manifest.
    overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise BnlabError(f"--device: got {self.device!r}, expected one of {', '.join(DEVICES)}")
        if not isinstance(self.threads, int) or self.threads < 0:
            raise BnlabError(f"--threads: got {self.threads!r}, expected an integer >= 0")


def resolve_device(name: str) -> torch.device:
    """ "cpu", "cuda", or "auto" (CUDA when present) as a torch.device."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise BnlabError(
            "--device: 'cuda' was asked for, but CUDA is not available here "
            "(no CUDA GPU, or a CPU-only torch build); use --device cpu or auto"
        )
    return torch.device(name)


def resolve_threads(ctx: RunContext, cfg: TrainConfig, stored: int = 0) -> int:
    """The torch thread count a stack of `cfg` trains with under `ctx`: `ctx.threads`; when
    that is 0, `stored`, the count a resumed run trained with (another count would change
    its sums, see `bnlab.engine.runs`); for a new run, `choose_threads` by the size of its
    step and the machine's load. Every training, local or in a Ray task, resolves its count
    here (callers that know better, `train_variants` or the Ray executor, set `ctx.threads`).
    """
    return ctx.threads or stored or choose_threads(cfg, *free_cores())


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch runs on `threads` threads inside the block; the caller's setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


__all__ = [
    "DEVICES",
    "Executor",
    "RunContext",
    "resolve_device",
    "resolve_threads",
    "torch_threads",
]
