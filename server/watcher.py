"""The served model: the first load, reloads on request or when the settings name another
folder, and hot reload when the model folder changes on disk."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types

from ghostwrite.model import files

from .engine import Engine
from .loaded_model import LoadedModel, model_signature

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # how often the model directory is checked for a new model


class ModelWatcher:
    """Loads the model at ``directory()`` into ``engine`` and keeps it current. ``problem`` says
    why no model (or not the one on disk) is served; ``show`` tells the user."""

    def __init__(
        self,
        engine: Engine,
        directory: Callable[[], Path],
        show: Callable[[str, types.MessageType], None],
    ) -> None:
        self.engine = engine
        self.directory = directory
        self.show = show
        self.problem: str | None = None
        self._refused: tuple[Path, Any] | None = None
        self._pending: tuple[Path, Any] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Load the model (blocking: before the first message is read) and start polling."""
        self.load_initial()
        self._task = asyncio.get_running_loop().create_task(self.watch())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def load_initial(self) -> None:
        directory = self.directory()
        try:
            self.engine.set_model(LoadedModel.load(directory))
            self.problem = None
            log.info("serving model %s", directory)
        except files.ModelFileError as err:
            self.problem = (
                f"ghostwrite: no usable model ({err}); suggestions are off until one is trained "
                "(run `ghostwrite train` or the ghostwrite.train command) or configured."
            )

    async def reload(self, directory: Path, *, announce: bool) -> bool:
        """Load the model at ``directory`` off the event loop and switch to it; a model that
        does not load is refused and the current one keeps serving."""
        signature = model_signature(directory)
        loop = asyncio.get_running_loop()
        try:
            model = await loop.run_in_executor(None, LoadedModel.load, directory)
        except files.ModelFileError as err:
            self._refused = (directory, signature)
            current = self.engine.model
            keeps = f"still serving {current.path}" if current else "no model is served"
            self.problem = f"ghostwrite: refused the model at {directory}: {err.problem} ({keeps})"
            self.show(self.problem, types.MessageType.Warning)
            return False
        self.engine.set_model(model)
        self.problem = None
        self._refused = None
        if announce:
            self.show(f"ghostwrite: now serving the model at {directory}", types.MessageType.Info)
        return True

    async def watch(self) -> None:
        """Poll the model directory; reload once a changed model has stayed unchanged for a poll
        (so a model being copied in is not read half-written)."""
        while True:
            await asyncio.sleep(POLL_SECONDS)
            directory = self.directory()
            signature = model_signature(directory)
            current = self.engine.model
            serving_here = current is not None and current.path == directory
            if signature is None:
                self._pending = None
                if serving_here:
                    # Deleted under us: the copy in memory keeps serving; say so in the status.
                    readable = os.access(directory, os.R_OK | os.X_OK)
                    what = "are gone" if readable else "cannot be read (permission denied)"
                    self.problem = (
                        f"ghostwrite: the model files at {directory} {what} "
                        "(still serving the copy loaded before)"
                    )
                    self.show(self.problem, types.MessageType.Warning)
                continue
            if serving_here and current.signature == signature:
                self._pending = None
                self.problem = None  # the served files are back as they were
                continue
            state = (directory, signature)
            if state == self._refused:
                continue
            if state != self._pending:
                self._pending = state
                continue
            self._pending = None
            await self.reload(directory, announce=True)
