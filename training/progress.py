"""Progress output for a training run: a live bar on a terminal, plain lines otherwise, or JSON
lines for programs (the language server turns those into LSP progress).

JSON mode writes exactly one object per line to stdout and nothing else there; every run ends
with one "done" or "error" event. "max_steps" is null while a time budget has not yet been
turned into a step count (that happens after the first dozen steps). Human modes write to
stderr, except errors: those are raised, and the command line prints them.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from typing import TextIO

EVENTS = ("start", "step", "eval", "checkpoint", "done", "error")
BAR_REFRESH_S = 0.1


@dataclass
class Progress:
    event: str
    step: int = 0
    max_steps: int | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    message: str = ""

    def to_json(self) -> str:
        data = asdict(self)
        for key in ("train_loss", "val_loss", "tokens_per_s", "eta_s"):
            value = data[key]
            # JSON has no NaN/inf; a diverged loss is reported as null with an "error" event.
            data[key] = round(value, 4) if value is not None and math.isfinite(value) else None
        return json.dumps(data, ensure_ascii=False)


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def format_status(p: Progress) -> str:
    parts = [f"step {p.step}" + (f"/{p.max_steps}" if p.max_steps else "")]
    if p.train_loss is not None:
        parts.append(f"train {p.train_loss:.3f}")
    if p.val_loss is not None:
        parts.append(f"val {p.val_loss:.3f}")
    if p.tokens_per_s:
        parts.append(f"{p.tokens_per_s / 1000:.1f}k tok/s")
    if p.eta_s is not None:
        parts.append(f"eta {format_duration(p.eta_s)}")
    return " | ".join(parts)


class Reporter:
    """Shows progress in one of the modes; ``silent`` for distributed ranks other than 0."""

    def __init__(
        self,
        mode: str,
        log_every: int,
        silent: bool = False,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stderr.isatty() else "plain"
        self.mode = mode
        self.log_every = log_every
        self.silent = silent
        self.last_draw = 0.0
        self.bar_shown = False

    def emit(self, progress: Progress) -> None:
        if self.silent:
            return
        if progress.event == "step" and not self._wants_step(progress.step):
            return
        if self.mode == "json":
            self.stdout.write(progress.to_json() + "\n")
            self.stdout.flush()
        elif progress.event == "error":
            self._clear_bar()  # the exception carries the message; the CLI prints it once
        elif self.mode == "bar" and progress.event == "step":
            self._draw_bar(progress)
        else:
            self._clear_bar()
            line = format_status(progress) if progress.event in ("step", "eval") else ""
            if progress.event == "eval":
                line = "eval " + line
            text = " | ".join(part for part in (line, progress.message) if part)
            self.stderr.write(text + "\n")
            self.stderr.flush()

    def _wants_step(self, step: int) -> bool:
        if self.mode == "bar":
            now = time.monotonic()
            if now - self.last_draw < BAR_REFRESH_S:
                return False
            self.last_draw = now
            return True
        return step == 1 or step % self.log_every == 0

    def _draw_bar(self, p: Progress) -> None:
        width = shutil.get_terminal_size((80, 24)).columns
        status = format_status(p)
        room = max(0, min(30, width - len(status) - 9))
        bar = ""
        if p.max_steps and room >= 10:
            filled = round(room * min(1.0, p.step / p.max_steps))
            bar = f"[{'#' * filled}{'.' * (room - filled)}] "
        self.stderr.write(f"\r{bar}{status}"[: width - 1] + "\x1b[K")
        self.stderr.flush()
        self.bar_shown = True

    def _clear_bar(self) -> None:
        if self.bar_shown:
            self.stderr.write("\r\x1b[K")
            self.bar_shown = False
