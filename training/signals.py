"""Ctrl-C and SIGTERM during training: the flag the loop polls, and the error it stops with."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import TrainingError


class Interrupted(TrainingError):
    """Stopped by a signal; the message says what was saved (``checkpoint_step``: the step of
    the checkpoint on disk for this run, None when there is none)."""

    def __init__(self, signum: int, step: int, checkpoint_step: int | None) -> None:
        name = signal.Signals(signum).name
        if checkpoint_step is not None and checkpoint_step == step:
            where = f"at step {step}; checkpoint saved, continue with --resume"
        elif checkpoint_step is not None:
            where = (
                f"at step {step}; the checkpoint of step {checkpoint_step} is kept, "
                "continue with --resume"
            )
        elif step:
            where = f"at step {step}, before the first checkpoint; nothing was written"
        else:
            where = "before training started; nothing was written"
        super().__init__(f"interrupted by {name} {where}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class StopFlag:
    """Set by SIGINT/SIGTERM. Before training starts a signal interrupts at once (nothing to
    save); once ``armed`` the loop finishes its step, saves a checkpoint and exits."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.armed = False

    def handle(self, signum: int, _frame: object) -> None:
        if self.signum is not None or not self.armed:
            self.signum = signum
            raise KeyboardInterrupt  # a second Ctrl-C, or nothing to save yet
        self.signum = signum


@contextmanager
def stop_signals() -> Iterator[StopFlag]:
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signal handlers can only live in the main thread
        return
    previous = {s: signal.signal(s, flag.handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
