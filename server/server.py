"""The ghostwrite language server: a pygls ``LanguageServer`` that owns the parts (engine,
documents, settings, served model, train command, learner) and registers the LSP methods."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.capabilities import ServerCapabilitiesBuilder
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from ghostwrite.model import files

from . import completion, settings
from .engine import Engine
from .learning import Learner
from .protocol import GhostwriteProtocol
from .settings import Settings
from .sync import DocumentSync
from .training import Training
from .watcher import ModelWatcher

log = logging.getLogger(__name__)


class GhostwriteServer(LanguageServer):
    """The parts and what they share: messages to the user, the workspace folders, the model
    folder, the status, and the life of the server and of each client."""

    protocol: GhostwriteProtocol

    def __init__(self, model: str | None = None, learn: bool = False) -> None:
        super().__init__(
            "ghostwrite",
            files.version(),
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            protocol_cls=GhostwriteProtocol,
        )
        self.model_arg = model
        self.engine = Engine()
        self.sync = DocumentSync(self.engine)
        self.settings = Settings()
        self.watcher = ModelWatcher(self.engine, self.model_dir, self.show)
        self.training = Training(
            self.workspace_paths, self.work_done_progress, self.client_shows_progress, self.show
        )
        self.learner = Learner(
            lambda: self.settings.options,
            learn,
            self.workspace_paths,
            self.serves_personal_model,
            lambda: self.training.running,
            self.work_done_progress,
            self.client_shows_progress,
            self.show,
        )
        self.exit_code = 1  # input ended without shutdown + exit
        self.stopped = asyncio.Event()  # set by ``exit``: the transport stops reading
        self._shown: set[str] = set()

    # ---- life of the server and of each client -----------------------------------------------

    def begin_serving(self) -> None:
        self.watcher.start()

    def end_serving(self) -> None:
        self.watcher.stop()
        self.engine.close()
        self.training.stop()
        self.learner.stop()

    def stop(self, exit_code: int) -> None:
        self.exit_code = exit_code
        self.engine.close()
        self.training.stop()
        self.learner.stop()
        self.stopped.set()

    def forget_client(self) -> None:
        """Forget the last client (its documents, settings, requests and training) before the
        next one connects; the loaded model and the model watcher carry on."""
        self.protocol.forget_client()
        self.training.stop()
        self.learner.stop()
        self.engine.cancel_all()
        self.engine.forget_all()
        self.sync = DocumentSync(self.engine)
        served = self.engine.model.path if self.engine.model else None
        self.settings = Settings()
        self._shown.clear()
        if served != self.model_dir():
            self.watcher.load_initial()

    # ---- shared by the parts -----------------------------------------------------------------

    def show(self, message: str, kind: types.MessageType = types.MessageType.Warning) -> None:
        """A message shown once (repeats of the same text are only logged)."""
        log.log(logging.ERROR if kind == types.MessageType.Error else logging.WARNING, message)
        if message in self._shown or not self.protocol.initialize_received:
            return
        self._shown.add(message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def model_dir(self) -> Path:
        """The option wins (it can change at run time), then --model, then the default."""
        return files.resolve_model_dir(self.settings.options.model or self.model_arg or None)

    def serves_personal_model(self) -> bool:
        """Whether the personal model is served, or would be once it exists (no other model is
        chosen): where learning rounds write."""
        chosen = self.settings.options.model or self.model_arg or os.environ.get("GHOSTWRITE_MODEL")
        return self.model_dir() == files.user_model_dir() or not chosen

    def client_shows_progress(self) -> bool:
        window = getattr(self.client_capabilities, "window", None)
        return bool(window and window.work_done_progress)

    def workspace_paths(self) -> list[str]:
        if not self.protocol.initialize_received:
            return []
        workspace = self.workspace
        uris = [folder.uri for folder in workspace.folders.values()]
        if not uris and workspace.root_uri:
            uris = [workspace.root_uri]
        return [path for uri in uris if (path := to_fs_path(uri))]

    # ---- settings and the workspace's words --------------------------------------------------

    def apply_settings(self) -> None:
        """Merge the settings; a new model folder is loaded, problems are shown."""
        old_dir = self.model_dir()
        problems = self.settings.merge()
        if problems:
            self.show("ghostwrite: invalid settings use defaults: " + "; ".join(problems))
        self.learner.settings_changed()
        new_dir = self.model_dir()
        if new_dir != old_dir:
            asyncio.get_running_loop().create_task(self.watcher.reload(new_dir, announce=True))

    async def pull_configuration(self) -> None:
        pulled = await settings.pull(self)
        if pulled is not None:
            self.settings.workspace = pulled
            self.apply_settings()

    async def index_workspace(self) -> None:
        """Put the workspace folders' words in the dictionary (on start and on reload)."""
        paths = self.workspace_paths()
        try:
            index = await asyncio.to_thread(self.engine.index_workspace, paths)
        except Exception as err:  # a dictionary problem must never stop completions
            log.warning("indexing the workspace failed: %s", err)
            return
        log.info("workspace dictionary: %d files, %d bytes", index.files, index.bytes)

    def status(self) -> dict[str, Any]:
        model = self.engine.model
        index = self.engine.workspace
        calibration = self.engine.calibration
        indexed = None
        if index is not None:
            indexed = {"files": index.files, "bytes": index.bytes, "skipped": index.skipped}
        return {
            "version": self.version,
            "model": str(model.path) if model else None,
            "card": model.summary() if model else None,
            "problem": self.watcher.problem,
            "modelDirectory": str(self.model_dir()),
            "positionEncoding": self.sync.encoding,
            "options": self.settings.options.to_json(),
            "workspaceIndex": indexed,
            "cachedDocuments": self.engine.cached_documents,
            "dictionary": self.engine.stats.summary(),
            "calibration": calibration.summary() if calibration is not None else None,
            "training": self.training.state(),
            "learning": self.learner.state(),
        }


def create_server(model: str | None = None, learn: bool = False) -> GhostwriteServer:
    """A server with every LSP method and command it answers registered."""
    server = GhostwriteServer(model, learn)

    # ---- lifecycle ---------------------------------------------------------------------------

    @server.feature(types.INITIALIZE)
    def initialize(ls: GhostwriteServer, params: types.InitializeParams) -> None:
        encoding = ServerCapabilitiesBuilder.choose_position_encoding(params.capabilities)
        ls.sync.encoding = getattr(encoding, "value", encoding)
        ls.settings.initialization = params.initialization_options
        if ls.settings.initialization is not None:
            ls.apply_settings()

    @server.feature(types.INITIALIZED)
    async def initialized(ls: GhostwriteServer, params: types.InitializedParams) -> None:
        if ls.watcher.problem:
            ls.show(ls.watcher.problem)
        await ls.pull_configuration()
        asyncio.get_running_loop().create_task(ls.index_workspace())

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: GhostwriteServer, params: Any) -> None:
        ls.engine.cancel_all()
        ls.training.stop()
        ls.learner.stop()

    @server.feature(types.EXIT)
    def on_exit(ls: GhostwriteServer, params: Any) -> None:
        ls.stop(exit_code=0 if ls.protocol.shut_down else 1)

    # ---- settings ----------------------------------------------------------------------------

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(
        ls: GhostwriteServer, params: types.DidChangeConfigurationParams
    ) -> None:
        pushed = settings.pushed_section(params.settings)
        if pushed is None:
            await ls.pull_configuration()
        else:
            ls.settings.workspace = pushed
            ls.apply_settings()

    # ---- documents (called synchronously by the protocol, in message order) ------------------

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: GhostwriteServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.sync.did_open(params)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: GhostwriteServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.sync.did_change(params)
        ls.learner.edited()

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: GhostwriteServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.sync.did_close(params)

    # ---- completion --------------------------------------------------------------------------

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: GhostwriteServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        found = await completion.suggest(
            ls.engine,
            ls.sync,
            ls.settings.options,
            params.text_document.uri,
            params.position,
            completion.INVOKED_CANDIDATES if invoked else 1,
        )
        return completion.inline_items(found)

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=completion.TRIGGER_CHARACTERS),
    )
    async def popup_completion(
        ls: GhostwriteServer, params: types.CompletionParams
    ) -> types.CompletionList:
        found = await completion.suggest(
            ls.engine, ls.sync, ls.settings.options, params.text_document.uri, params.position
        )
        return completion.popup_items(found)

    # ---- commands ----------------------------------------------------------------------------

    @server.command("ghostwrite.status")
    def status(ls: GhostwriteServer, *args: Any) -> dict[str, Any]:
        return ls.status()

    @server.command("ghostwrite.reload")
    async def reload(ls: GhostwriteServer, *args: Any) -> dict[str, Any]:
        loaded = await ls.watcher.reload(ls.model_dir(), announce=False)
        await ls.index_workspace()
        return {"reloaded": loaded, **ls.status()}

    @server.command("ghostwrite.train")
    async def train(ls: GhostwriteServer, *args: Any) -> dict[str, Any]:
        ls.learner.stop()  # the user's own training run wins over a learning round
        return await ls.training.start(args)

    @server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)
    def progress_cancel(ls: GhostwriteServer, params: types.WorkDoneProgressCancelParams) -> None:
        ls.training.cancel(params.token)
        ls.learner.cancel(params.token)

    return server
