"""Learning from the writer (the ``learn`` option, or ``ghostwrite serve --learn``).

Once the editor has gone ``learnIdleSeconds`` without an edit, a ``ghostwrite learn`` round runs
in a background process (``BackgroundJob``, with ``$/progress``): it fine-tunes the personal model
(the bundled one until there is one) on the workspace folders for ``learnSteps`` steps, and keeps
the result only if it predicts the newest files better, in bits per character and in keystrokes
saved (``ghostwrite.training.learn``). The model watcher then serves the new model; a kept model
is reported in ``ghostwrite.status`` with the figures that decided it.

A round never competes with the writer: it runs at the lowest CPU priority, an edit pauses it
(SIGSTOP) and the next idle spell continues it. Rounds run only after edits, never while
``ghostwrite.train`` runs, and only when the server serves the personal model (a round writes
that one). Closing the editor, a new client
or the server's exit stops a round (SIGINT); if the server dies, the round sees its stdin close
and stops. Killed at any moment, the served model stays whole.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

from lsprotocol import types
from pygls.progress import Progress

from .background import BackgroundJob
from .options import ServerOptions

log = logging.getLogger(__name__)


class Learner:
    """Starts, pauses and continues learning rounds. ``options()`` holds the settings;
    ``forced`` is ``--learn``; ``serves_personal()`` says whether a new personal model would be
    served; ``training_running()`` whether ``ghostwrite.train`` runs."""

    def __init__(
        self,
        options: Callable[[], ServerOptions],
        forced: bool,
        folders: Callable[[], list[str]],
        serves_personal: Callable[[], bool],
        training_running: Callable[[], bool],
        progress: Progress,
        client_shows_progress: Callable[[], bool],
        show: Callable[[str, types.MessageType], None],
    ) -> None:
        self.options = options
        self.forced = forced
        self.folders = folders
        self.serves_personal = serves_personal
        self.training_running = training_running
        self.job = BackgroundJob(
            "learning",
            "ghostwrite: learning from your writing",
            progress,
            client_shows_progress,
            show,
            on_end=self._ended,
            # A kept model is not news: the status says why; a new model or a failure is.
            announce=lambda final: final is None or bool(final.get("swapped", True)),
        )
        self.edited_since_round = False
        self.rounds = 0
        self.verdict: dict[str, Any] | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def enabled(self) -> bool:
        return self.forced or self.options().learn

    def waiting_for(self) -> str | None:
        """Why no round would start now (None: one would)."""
        if not self.enabled:
            return "off: set ghostwrite.learn or run `ghostwrite serve --learn`"
        if not self.folders():
            return "no workspace folder to learn from"
        if not self.serves_personal():
            return (
                "the server serves a model other than your personal one, which learning writes: "
                "leave ghostwrite.model empty or set it to personal"
            )
        if self.training_running():
            return "ghostwrite.train is running"
        if not self.edited_since_round:
            return "nothing new written since the last round"
        return None

    def state(self) -> dict[str, Any]:
        return {
            **self.job.state(),
            "enabled": self.enabled,
            "waiting": None if self.job.running else self.waiting_for(),
            "rounds": self.rounds,
            "verdict": self.verdict,
        }

    def edited(self) -> None:
        """The writer typed: pause a round, and wait for the next idle spell."""
        self.edited_since_round = True
        self.job.pause()
        if self._timer is not None:
            self._timer.cancel()
        if self.enabled:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.options().learn_idle_seconds, self._idle)

    def settings_changed(self) -> None:
        """Learning switched off stops a round in progress."""
        if not self.enabled:
            self.stop()

    def _idle(self) -> None:
        self._timer = None
        if self.job.running:
            self.job.resume()
        elif self.waiting_for() is None:
            asyncio.get_running_loop().create_task(self.start_round())

    async def start_round(self) -> dict[str, Any]:
        folders = self.folders()
        command = [
            sys.executable,
            "-m",
            "ghostwrite.server.cli",
            "learn",
            "--progress",
            "json",
            "--background",
            "--steps",
            str(self.options().learn_steps),
            "--",
            *folders,
        ]
        self.edited_since_round = False
        started = await self.job.start(command, keep_stdin=True)
        if started.get("started"):
            self.rounds += 1
        else:
            log.warning("learning round not started: %s", started.get("message"))
        return started

    def _ended(self, final: dict[str, Any] | None) -> None:
        if final is not None and final.get("event") == "done":
            self.verdict = {k: final.get(k) for k in ("swapped", "before", "after", "message")}

    def cancel(self, token: str | int) -> None:
        self.job.cancel(token)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.job.stop()
