"""What a training shows while it runs: one bar over all its stacks, or plain lines.

`Progress` counts the steps still to train over every stack it is given (all stacks of a
`bnlab train`, a sweep's runs included), so its ETA is that of the whole command. It shows
the stack training now, its latest mean test accuracy and the torch threads it runs on.

- On a terminal, a tqdm bar (on stderr, as tqdm does; off where stderr is no terminal).
- With `lines=True` (the command line's choice where stdout is no terminal: nohup, SLURM,
  CI logs, where a bar is one long line of carriage returns), a plain line on stdout every
  `every_s` seconds and when a stack ends.

    display = Progress.for_configs(configs, lines=not sys.stdout.isatty())
    train(cfg, out, ctx, display=display)   # each stack reports to it
    display.close()
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from tqdm import tqdm

from bnlab.engine.config import TrainConfig
from bnlab.engine.runs import schedule

LINE_EVERY_S = 30.0  # seconds between plain lines
POSTFIX_EVERY_S = 0.5  # seconds between updates of the bar's numbers (each a host sync)


def _threads(n: int) -> str:
    return f"{n} torch thread{'s' if n != 1 else ''}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class Progress:
    """One display for every stack of a training (module docstring)."""

    def __init__(self, total: int, lines: bool = False, every_s: float = LINE_EVERY_S):
        self.total, self.lines, self.every_s = total, lines, every_s
        self.done = 0  # steps trained under this display
        self.started = time.monotonic()
        self.next_line = self.started + every_s
        self.next_postfix = 0.0
        self.run_id, self.step, self.stack_total, self.threads = "", 0, 0, 0
        self.loss = None  # the members' last losses (K,), a tensor read only when shown
        self.test_accuracy: float | None = None
        self.bar = None
        if not lines:
            self.bar = tqdm(total=total, unit="step", disable=None, dynamic_ncols=True)

    @classmethod
    def for_configs(cls, configs: Sequence[TrainConfig], lines: bool = False) -> Progress:
        """A display for every stack of `configs`, each as long as its `schedule`."""
        return cls(sum(schedule(c)[0] * len(c.norms) for c in configs), lines)

    def skip(self, steps: int) -> None:
        """`steps` planned steps that will not be trained now (already trained before)."""
        self.total = max(self.done, self.total - steps)
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.refresh()

    def start(self, run_id: str, step: int, total: int, threads: int) -> None:
        """A stack starts (or resumes at `step`) on `threads` torch threads."""
        self.skip(step)
        self.run_id, self.step, self.stack_total, self.threads = run_id, step, total, threads
        self.loss = self.test_accuracy = None
        if self.bar is not None:
            self.bar.set_description(f"{run_id} ({_threads(threads)})", refresh=False)

    def advance(self, loss) -> None:
        """One step trained; `loss` the members' losses (K,), read only when shown."""
        self.done += 1
        self.step += 1
        self.loss = loss
        now = time.monotonic()
        if self.bar is not None:
            self.bar.update(1)
            if now >= self.next_postfix and not self.bar.disable:
                self.bar.set_postfix(self._numbers(), refresh=False)
                self.next_postfix = now + POSTFIX_EVERY_S
        elif self.lines and now >= self.next_line:
            self._print_line()

    def evaluated(self, test_accuracy: float) -> None:
        """The stack's mean test accuracy over its members, just measured."""
        self.test_accuracy = test_accuracy

    def finish(self) -> None:
        """The stack reached its last step."""
        if self.lines:
            self._print_line()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def _numbers(self) -> dict[str, str]:
        out = {} if self.loss is None else {"loss": f"{float(self.loss.mean()):.4f}"}
        if self.test_accuracy is not None:
            out["test_acc"] = f"{self.test_accuracy:.4f}"
        return out

    def line(self) -> str:
        """Where the training is, as one plain line."""
        elapsed = time.monotonic() - self.started
        left = self.total - self.done
        eta = _duration(elapsed / self.done * left) if self.done else "?"
        share = 100.0 * self.done / self.total if self.total else 100.0
        numbers = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self._numbers().items())
        return (
            f"[{self.run_id}] step {self.step:,}/{self.stack_total:,}; all stacks "
            f"{share:.0f}% ({self.done:,}/{self.total:,} steps) in {_duration(elapsed)}, "
            f"eta {eta}" + (f"; {numbers}" if numbers else "") + f"; {_threads(self.threads)}"
        )

    def _print_line(self) -> None:
        print(self.line(), file=sys.stdout, flush=True)
        self.next_line = time.monotonic() + self.every_s


__all__ = ["LINE_EVERY_S", "Progress"]
