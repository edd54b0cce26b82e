"""Ctrl-C and SIGTERM during training: finish the step, checkpoint, stop with a way back.

A signal that kills the process mid-step loses nothing the store vouches for (a resume
truncates to the last checkpoint), but it loses every step since that checkpoint, which on
a long preset can be an hour. So while `stop_requests()` is active, SIGINT and SIGTERM
(what `kill`, SLURM and a closing terminal send) only raise a flag; the training loop sees
it after the step in flight, writes a checkpoint at that step and raises `Interrupted`,
which the command line turns into a message saying how to resume. A second signal acts at
once (KeyboardInterrupt), for a user who does not want to wait for the step.

Handlers can only be installed from the main thread; elsewhere (a thread of a notebook
kernel, a Ray worker) the signals keep their own behaviour and the flag is never raised.

Stacks that train in child processes (`bnlab reproduce` on two cores) run in their own
process groups (`child_init`), and the parent passes each signal on (`forward_stops`): so
`kill PARENT` stops every stack at a checkpoint, as Ctrl-C does, and each child's
`Interrupted` reaches the parent through its future. Without this, a signal to the parent
alone ended it and left its children training with no one to record their time; and a
terminal's Ctrl-C, which reaches the whole foreground group, reached the children twice
once the parent passed it on.

Outside training neither is active, so `bnlab reproduce` maps SIGTERM to KeyboardInterrupt
for the whole call (`sigterm_as_interrupt`): a `kill` during a measurement stops it at once,
as Ctrl-C does, and the runner still counts the call's time.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Training stopped on a signal after checkpointing `run_id` at `step`. A
    KeyboardInterrupt, not an error: `except Exception` lets it through, as it does Ctrl-C."""

    def __init__(self, signum: int, run_id: str, step: int):
        super().__init__(signum, run_id, step)
        self.signum, self.run_id, self.step = signum, run_id, step

    @property
    def exit_status(self) -> int:
        """128 + the signal's number, as a shell reports a process a signal ended."""
        return 128 + self.signum

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        return f"{name}: stopped {self.run_id} at step {self.step:,} and checkpointed it there"


class StopFlag:
    """Set by the first SIGINT or SIGTERM: `signum` is the signal's number, else None."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None:  # a second signal: stop now, without a checkpoint
            raise KeyboardInterrupt
        self.signum = signum


@contextlib.contextmanager
def stop_requests() -> Iterator[StopFlag]:
    """A flag the block's training loop checks between steps (module docstring); the
    previous handlers are restored after the block."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    before = {s: signal.signal(s, flag._handle) for s in SIGNALS}
    try:
        yield flag
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the block, as Ctrl-C does, so a caller's
    `except KeyboardInterrupt` also sees `kill` outside training, where neither
    `stop_requests` nor `forward_stops` is active (they override it inside)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def child_init() -> None:
    """Initializer of a process that trains for a parent under `forward_stops`: leave the
    terminal's process group (the parent passes signals on), and let SIGTERM that lands
    before training starts stop the child as SIGINT would (KeyboardInterrupt)."""
    os.setpgrp()
    signal.signal(signal.SIGTERM, signal.default_int_handler)


@contextlib.contextmanager
def forward_stops() -> Iterator[None]:
    """While the block waits on children started with `child_init`, pass SIGINT and
    SIGTERM on to every live child instead of acting on them here (module docstring)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, frame) -> None:
        for child in multiprocessing.active_children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signum)

    before = {s: signal.signal(s, forward) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


__all__ = [
    "Interrupted",
    "StopFlag",
    "child_init",
    "forward_stops",
    "sigterm_as_interrupt",
    "stop_requests",
]
