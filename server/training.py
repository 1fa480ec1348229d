"""The ``ghostwrite.train`` command: run the training CLI in the background and turn its JSON
progress lines into LSP ``$/progress`` (begin / report / end with loss and ETA).

The command's argument is data, never a command line: an object with ``paths`` (a list of files
or folders, default: the workspace folders) and ``init`` (``bundled``, ``personal`` or a model
folder), nothing else. Every path is resolved (symlinks included) and must lie inside a workspace
folder; the training process gets them after ``--``, so none can become a flag.

The CLI's contract: ``python -m ghostwrite.training --progress json [--init=MODEL] -- PATHS`` writes
one JSON object per stdout line with ``event`` (start|step|eval|checkpoint|done|error), ``step``,
``max_steps``, ``train_loss``, ``val_loss``, ``tokens_per_s``, ``eta_s``, ``message``; SIGINT
makes it save a checkpoint and exit. The finished model lands where the server looks for it, and
the model watcher switches to it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.progress import Progress
from pygls.uris import to_fs_path

log = logging.getLogger(__name__)
STDERR_LINES = 20  # kept to explain a crash
REQUEST_KEYS = ("paths", "init")
MODEL_WORDS = ("bundled", "personal")


class RequestError(ValueError):
    """A ``ghostwrite.train`` argument that is refused; the message is shown to the user."""


@dataclass(frozen=True)
class TrainRequest:
    """A checked ``ghostwrite.train`` argument: resolved paths inside the workspace."""

    paths: tuple[str, ...]
    init: str | None = None


def inside(path: str, folders: Sequence[str]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real.is_relative_to(os.path.realpath(folder)) for folder in folders)


def resolve_in_workspace(given: str, folders: Sequence[str], what: str) -> str:
    """``given`` (an absolute path or a file URI) resolved, symlinks included; refused unless it
    exists inside one of ``folders``."""
    path = to_fs_path(given) if given.startswith("file:") else given
    if not path or not os.path.isabs(path):
        raise RequestError(f"{what} must be an absolute path or a file URI, got {given!r}")
    real = os.path.realpath(path)
    if not inside(real, folders):
        raise RequestError(
            f"{what} {given} is outside the workspace folders; training reads only there"
        )
    if not os.path.exists(real):
        raise RequestError(f"{what} {given} does not exist")
    return real


def parse_request(arguments: Sequence[Any], folders: Sequence[str]) -> TrainRequest:
    """The command's arguments checked against their schema: none, or one object with a
    ``paths`` list of strings and an ``init`` string."""
    if not arguments or arguments[0] is None:
        request: dict[str, Any] = {}
    elif len(arguments) > 1 or not isinstance(arguments[0], dict):
        raise RequestError('expected one argument, an object like {"paths": ["/my/notes"]}')
    else:
        request = arguments[0]
    unknown = sorted(set(request) - set(REQUEST_KEYS))
    if unknown:
        raise RequestError(
            f"unknown argument {', '.join(map(repr, unknown))} (known: {', '.join(REQUEST_KEYS)})"
        )
    given = request.get("paths")
    if given is None:
        given = []
    if not isinstance(given, list) or not all(isinstance(p, str) for p in given):
        raise RequestError("paths must be a list of strings")
    if not folders:
        raise RequestError("no workspace folder to train on")
    paths = [resolve_in_workspace(p, folders, "path") for p in given] or [
        os.path.realpath(f) for f in folders
    ]
    init = request.get("init")
    if init is not None:
        if not isinstance(init, str):
            raise RequestError("init must be a string: bundled, personal or a model folder")
        if init not in MODEL_WORDS:
            init = resolve_in_workspace(init, folders, "init")
    return TrainRequest(tuple(dict.fromkeys(paths)), init)


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


class Training:
    """At most one training process per server. It reads the workspace ``folders()``, reports
    through ``progress`` when ``client_shows_progress()``, and ``show``s the outcome."""

    def __init__(
        self,
        folders: Callable[[], list[str]],
        progress: Progress,
        client_shows_progress: Callable[[], bool],
        show: Callable[[str, types.MessageType], None],
    ) -> None:
        self.folders = folders
        self.progress = progress
        self.client_shows_progress = client_shows_progress
        self.show = show
        self.process: asyncio.subprocess.Process | None = None
        self.token: str | None = None
        self.last: dict[str, Any] = {}
        self.result: str | None = None
        self._runs = 0

    def state(self) -> dict[str, Any]:
        running = self.process is not None and self.process.returncode is None
        return {"running": running, "last": self.last or None, "result": self.result}

    def command(self, request: TrainRequest) -> list[str]:
        command = [sys.executable, "-m", "ghostwrite.training", "--progress", "json"]
        if request.init:
            command.append(f"--init={request.init}")
        return [*command, "--", *request.paths]

    async def start(self, arguments: Sequence[Any]) -> dict[str, Any]:
        if self.process is not None and self.process.returncode is None:
            return {"started": False, "message": "training is already running", **self.state()}
        try:
            request = parse_request(arguments, self.folders())
        except RequestError as err:
            message = f"ghostwrite.train refused: {err}"
            log.warning("%s", message)
            return {"started": False, "message": message}
        command = self.command(request)
        self._runs += 1
        token = f"ghostwrite-train-{self._runs}"
        try:
            self.process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as err:
            return {"started": False, "message": f"cannot start training: {err}"}
        self.token = token
        self.last, self.result = {}, None
        progress = self.progress
        if self.client_shows_progress():
            try:
                await progress.create_async(token)
            except Exception as err:  # the client refused: train without a progress bar
                log.warning("window/workDoneProgress/create failed: %s", err)
                self.token = None
        else:
            self.token = None
        if self.token:
            progress.begin(
                token,
                types.WorkDoneProgressBegin(
                    title="ghostwrite: training", cancellable=True, message="starting", percentage=0
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
                log.warning("training printed a non-JSON line: %r", raw[:200])
                continue
            if not isinstance(event, dict):
                continue
            self.last = event
            kind = event.get("event")
            if kind in ("done", "error"):
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
        if final is not None and final.get("event") == "done":
            self.result = "done: " + describe(final)
            kind = types.MessageType.Info
        elif final is not None:
            self.result = f"failed: {final.get('message') or describe(final)}"
            kind = types.MessageType.Error
        else:
            detail = errors[-1] if errors else "no output"
            self.result = f"failed (exit code {code}): {detail}"
            kind = types.MessageType.Error
        if token:
            self.progress.end(token, types.WorkDoneProgressEnd(message=self.result))
        self.show(f"ghostwrite training {self.result}", kind)

    def cancel(self, token: str | int) -> None:
        if token == self.token:
            self.stop()

    def stop(self) -> None:
        """Ask the training process to save and exit (SIGINT)."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
