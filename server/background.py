"""A background process of the training CLI (``train`` or ``learn``) whose JSON progress lines
become LSP ``$/progress`` (begin / report / end with loss and ETA), with its outcome shown once.

The CLI's contract: ``--progress json`` writes one JSON object per stdout line with ``event``
(start|step|eval|checkpoint|evaluate|done|error), ``step``, ``max_steps``, ``train_loss``,
``val_loss``, ``tokens_per_s``, ``eta_s``, ``message``; the last ``done`` or ``error`` is the
outcome. SIGINT makes it save what it must and exit; a paused job (SIGSTOP) is continued first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from lsprotocol import types
from pygls.progress import Progress

log = logging.getLogger(__name__)
STDERR_LINES = 20  # kept to explain a crash


def describe(event: dict[str, Any]) -> str:
    """One line for the progress bar: step, losses and time left."""
    parts = []
    if event.get("step") is not None:
        total = event.get("max_steps")
        parts.append(f"step {event['step']}" + (f"/{total}" if total else ""))
    if isinstance(event.get("train_loss"), (int, float)):
        parts.append(f"loss {event['train_loss']:.3f}")
    if isinstance(event.get("val_loss"), (int, float)):
        parts.append(f"val {event['val_loss']:.3f}")
    eta = event.get("eta_s")
    if isinstance(eta, (int, float)):
        minutes, seconds = divmod(round(eta), 60)
        parts.append(f"ETA {minutes}m{seconds:02d}s" if minutes else f"ETA {seconds}s")
    if event.get("message"):
        parts.append(str(event["message"]))
    return ", ".join(parts)


def percentage(event: dict[str, Any]) -> int | None:
    step, total = event.get("step"), event.get("max_steps")
    if isinstance(step, int) and isinstance(total, int) and total > 0:
        return max(0, min(100, step * 100 // total))
    return None


class BackgroundJob:
    """At most one process at a time under ``name`` (its progress tokens) and ``title`` (the
    progress bar's). It reports through ``progress`` when ``client_shows_progress()``, and
    ``show``s the outcome when ``announce(final)`` says so; ``on_end`` gets the final event
    (None after a crash)."""

    def __init__(
        self,
        name: str,
        title: str,
        progress: Progress,
        client_shows_progress: Callable[[], bool],
        show: Callable[[str, types.MessageType], None],
        on_end: Callable[[dict[str, Any] | None], None] | None = None,
        announce: Callable[[dict[str, Any] | None], bool] = lambda final: True,
    ) -> None:
        self.name = name
        self.title = title
        self.progress = progress
        self.client_shows_progress = client_shows_progress
        self.show = show
        self.on_end = on_end
        self.announce = announce
        self.process: asyncio.subprocess.Process | None = None
        self.token: str | None = None
        self.last: dict[str, Any] = {}
        self.result: str | None = None
        self.paused = False
        self._runs = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def state(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "paused": self.running and self.paused,
            "last": self.last or None,
            "result": self.result,
        }

    async def start(self, command: Sequence[str], *, keep_stdin: bool = False) -> dict[str, Any]:
        """Start ``command``; with ``keep_stdin`` its stdin is a pipe that closes when this
        process ends, however it ends (the child can watch it)."""
        if self.running:
            return {"started": False, "message": f"{self.name} is already running", **self.state()}
        self._runs += 1
        token = f"ghostwrite-{self.name}-{self._runs}"
        try:
            self.process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE if keep_stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as err:
            return {"started": False, "message": f"cannot start {self.name}: {err}"}
        self.token = token
        self.last, self.result, self.paused = {}, None, False
        progress = self.progress
        if self.client_shows_progress():
            try:
                await progress.create_async(token)
            except Exception as err:  # the client refused: run without a progress bar
                log.warning("window/workDoneProgress/create failed: %s", err)
                self.token = None
        else:
            self.token = None
        if self.token:
            progress.begin(
                token,
                types.WorkDoneProgressBegin(
                    title=self.title, cancellable=True, message="starting", percentage=0
                ),
            )
        asyncio.get_running_loop().create_task(self._follow(self.process, self.token))
        return {"started": True, "pid": self.process.pid, "token": self.token}

    async def _follow(self, process: asyncio.subprocess.Process, token: str | None) -> None:
        assert process.stdout is not None and process.stderr is not None
        errors: deque[str] = deque(maxlen=STDERR_LINES)

        async def drain_stderr() -> None:
            assert process.stderr is not None
            async for raw in process.stderr:
                errors.append(raw.decode("utf-8", "replace").rstrip())

        stderr_task = asyncio.get_running_loop().create_task(drain_stderr())
        final: dict[str, Any] | None = None
        async for raw in process.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                log.warning("%s printed a non-JSON line: %r", self.name, raw[:200])
                continue
            if not isinstance(event, dict):
                continue
            self.last = event
            if event.get("event") in ("done", "error"):
                final = event
            elif token:
                self.progress.report(
                    token,
                    types.WorkDoneProgressReport(
                        message=describe(event), percentage=percentage(event), cancellable=True
                    ),
                )
        code = await process.wait()
        await stderr_task
        if code == 0 and final is not None and final.get("event") == "done":
            self.result = "done: " + describe(final)
            kind = types.MessageType.Info
        elif final is not None and final.get("event") == "error":
            self.result = f"failed: {final.get('message') or describe(final)}"
            kind = types.MessageType.Error
        else:
            detail = errors[-1] if errors else "no output"
            self.result = f"failed (exit code {code}): {detail}"
            kind = types.MessageType.Error
            final = None
        if token:
            self.progress.end(token, types.WorkDoneProgressEnd(message=self.result))
        if self.announce(final):
            self.show(f"ghostwrite {self.name} {self.result}", kind)
        else:
            log.info("%s %s", self.name, self.result)
        if self.on_end is not None:
            self.on_end(final)

    def cancel(self, token: str | int) -> None:
        if token == self.token:
            self.stop()

    def pause(self) -> None:
        """Stop the process where it is (SIGSTOP) until ``resume``: it uses no CPU meanwhile."""
        if self.running and not self.paused:
            assert self.process is not None
            self.process.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.running and self.paused:
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        """Ask the process to save and exit (SIGINT; continued first if paused)."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGINT)
            self.resume()
