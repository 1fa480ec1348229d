"""The ``ghostwrite.train`` command: run the training CLI in the background and turn its JSON
progress lines into LSP ``$/progress`` (begin / report / end with loss and ETA).

The command's argument is data, never a command line: an object with ``paths`` (a list of files
or folders, default: the workspace folders) and ``init`` (``bundled``, ``personal`` or a model
folder), nothing else. Every path is resolved (symlinks included) and must lie inside a workspace
folder; the training process gets them after ``--``, so none can become a flag.

The process is ``python -m ghostwrite.training --progress json [--init=MODEL] -- PATHS``, run as a
``BackgroundJob``. The finished model lands where the server looks for it, and the model watcher
switches to it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.progress import Progress
from pygls.uris import to_fs_path

from .background import BackgroundJob

log = logging.getLogger(__name__)
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


class Training:
    """``ghostwrite.train``: at most one training process per server, on the workspace
    ``folders()``."""

    def __init__(
        self,
        folders: Callable[[], list[str]],
        progress: Progress,
        client_shows_progress: Callable[[], bool],
        show: Callable[[str, types.MessageType], None],
    ) -> None:
        self.folders = folders
        self.job = BackgroundJob(
            "training", "ghostwrite: training", progress, client_shows_progress, show
        )

    @property
    def running(self) -> bool:
        return self.job.running

    def state(self) -> dict[str, Any]:
        return self.job.state()

    def command(self, request: TrainRequest) -> list[str]:
        command = [sys.executable, "-m", "ghostwrite.training", "--progress", "json"]
        if request.init:
            command.append(f"--init={request.init}")
        return [*command, "--", *request.paths]

    async def start(self, arguments: Sequence[Any]) -> dict[str, Any]:
        if self.job.running:
            return {"started": False, "message": "training is already running", **self.state()}
        try:
            request = parse_request(arguments, self.folders())
        except RequestError as err:
            message = f"ghostwrite.train refused: {err}"
            log.warning("%s", message)
            return {"started": False, "message": message}
        return await self.job.start(self.command(request))

    def cancel(self, token: str | int) -> None:
        self.job.cancel(token)

    def stop(self) -> None:
        """Ask the training process to save and exit (SIGINT)."""
        self.job.stop()
