"""The ghostwrite language server: inline (ghost text) and popup completions from the model."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.capabilities import ServerCapabilitiesBuilder
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from ghostwrite.model import files

from .documents import UTF16, Document, Documents
from .engine import Engine, Job, LoadedModel, Suggestion, is_word_char, model_signature
from .options import SECTION, ServerOptions, parse_options
from .protocol import GhostwriteProtocol
from .training import Training
from .transport import FrameParser, FrameWriter, fd_writer, start_fd_reader

log = logging.getLogger("ghostwrite.server")

POLL_SECONDS = 0.5  # how often the model directory is checked for a new model
# Popup completion is requested as the user types these (Neovim's autotrigger needs them).
TRIGGER_CHARACTERS = [" ", *"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"]
COMMANDS = ("ghostwrite.train", "ghostwrite.reload", "ghostwrite.status")
# Suggestions an explicitly invoked inline request offers at least (a manual trigger or cycling
# through candidates): VS Code's inline API asks providers for alternatives to cycle through then.
INVOKED_CANDIDATES = 3


class GhostwriteServer(LanguageServer):
    def __init__(self, model: str | None = None) -> None:
        super().__init__(
            "ghostwrite",
            files.version(),
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            protocol_cls=GhostwriteProtocol,
        )
        self.model_arg = model
        self.documents = Documents()
        self.engine = Engine()
        self.training = Training(self)
        self.encoding = UTF16
        self.options = ServerOptions()
        self.init_settings: Any = None
        self.workspace_settings: Any = None
        self.model_problem: str | None = None  # why no model (or the new one) is served
        self.exit_code = 1  # input ended without shutdown + exit
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._shown: set[str] = set()
        self._refused: tuple[Path, Any] | None = None
        self._pending: tuple[Path, Any] | None = None
        self._watcher: asyncio.Task[None] | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    def stop(self, exit_code: int) -> None:
        self.exit_code = exit_code
        self.engine.close()
        self.training.stop()
        if self._stopped is not None:
            self._stopped.set()

    def run_stdio(self) -> int:
        """Serve on stdin/stdout. The protocol keeps a private copy of stdout and fd 1 becomes
        stderr, so stray prints (ours or a library's) can never corrupt the message stream."""
        out_fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr

        async def serve() -> None:
            assert self.loop is not None
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            start_fd_reader(0, self.loop, queue)
            await self._serve(queue.get, FrameWriter(fd_writer(out_fd)))

        asyncio.run(self._main(serve))
        return self.exit_code

    def run_tcp(
        self,
        host: str,
        port: int,
        ready: Callable[[str], None],
        handshake_timeout: float,
    ) -> int:
        """Serve clients on host:port one at a time until one sends ``exit``. A client that
        disconnects (even mid-message) or sends no ``initialize`` within ``handshake_timeout``
        seconds is dropped and the next connection is served; connections made meanwhile wait
        their turn, so a silent local process cannot lock the editor out."""

        async def serve() -> None:
            assert self.loop is not None and self._stopped is not None
            waiting: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
            waiting = asyncio.Queue()
            server = await asyncio.start_server(
                lambda reader, writer: waiting.put_nowait((reader, writer)), host, port
            )
            ready(", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in server.sockets))
            loop = self.loop
            self._start_serving()
            stopped = asyncio.create_task(self._stopped.wait())
            try:
                while not self._stopped.is_set():
                    accepted = asyncio.create_task(waiting.get())
                    await asyncio.wait({accepted, stopped}, return_when=asyncio.FIRST_COMPLETED)
                    if not accepted.done():
                        accepted.cancel()
                        break
                    reader, writer = accepted.result()

                    def write(data: bytes, writer: asyncio.StreamWriter = writer) -> None:
                        loop.call_soon_threadsafe(writer.write, data)

                    async def read(reader: asyncio.StreamReader = reader) -> bytes:
                        try:
                            return await reader.read(1 << 16)
                        except ConnectionError:
                            return b""

                    await self._session(read, FrameWriter(write), handshake_timeout)
                    writer.close()
                    if not self._stopped.is_set():
                        self._new_session()
            finally:
                stopped.cancel()
                server.close()
                while not waiting.empty():
                    waiting.get_nowait()[1].close()
                self._stop_serving()

        asyncio.run(self._main(serve))
        return self.exit_code

    async def _main(self, serve: Callable[[], Awaitable[None]]) -> None:
        self.loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        await serve()

    async def _serve(self, read: Callable[[], Awaitable[bytes]], writer: FrameWriter) -> None:
        """Serve the one client of stdio."""
        self._start_serving()
        try:
            await self._session(read, writer, None)
        finally:
            self._stop_serving()

    def _start_serving(self) -> None:
        self.load_initial_model()
        self._watcher = asyncio.create_task(self.watch_model())

    def _stop_serving(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        self.engine.close()
        self.training.stop()

    async def _session(
        self,
        read: Callable[[], Awaitable[bytes]],
        writer: FrameWriter,
        handshake_timeout: float | None,
    ) -> None:
        """One client's messages until it leaves, sends ``exit``, or (with a
        ``handshake_timeout``) sends no ``initialize`` in time."""
        assert self._stopped is not None and self.loop is not None
        self.protocol.set_writer(writer)
        parser = FrameParser()
        stopped = asyncio.create_task(self._stopped.wait())
        deadline = None if handshake_timeout is None else self.loop.time() + handshake_timeout
        try:
            while not self._stopped.is_set():
                reading = asyncio.create_task(read())
                timeout = None
                if deadline is not None and self.protocol._workspace is None:
                    timeout = max(0.0, deadline - self.loop.time())
                await asyncio.wait(
                    {reading, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not reading.done():
                    reading.cancel()
                    if not self._stopped.is_set():
                        log.warning(
                            "dropped a client that sent no initialize within %g s",
                            handshake_timeout,
                        )
                    break
                chunk = reading.result()
                if not chunk:
                    break
                for frame in parser.feed(chunk):
                    self.protocol.handle_frame(frame)
                    if self._stopped.is_set():
                        break
        finally:
            stopped.cancel()

    def _new_session(self) -> None:
        """Forget the last client (its documents, settings, requests and training) before the
        next one connects; the loaded model and the model watcher carry on."""
        protocol = self.protocol
        for future in list(protocol._request_futures.values()):
            future.cancel()
        protocol._request_futures.clear()
        protocol._result_types.clear()
        protocol._workspace = None
        protocol._shutdown = False
        self.training.stop()
        self.engine.cancel_all()
        self.engine.forget_all()
        self.documents = Documents()
        self.init_settings = self.workspace_settings = None
        served = self.engine.model.path if self.engine.model else None
        self.options = ServerOptions()
        self.encoding = UTF16
        self._shown.clear()
        if served != self.model_dir():
            self.load_initial_model()

    # ---- messages to the user ----------------------------------------------------------------

    def show(self, message: str, kind: types.MessageType = types.MessageType.Warning) -> None:
        """A message shown once (repeats of the same text are only logged)."""
        log.log(logging.ERROR if kind == types.MessageType.Error else logging.WARNING, message)
        if message in self._shown or self.protocol._workspace is None:
            return
        self._shown.add(message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    # ---- model -------------------------------------------------------------------------------

    def model_dir(self) -> Path:
        """The option wins (it can change at run time), then --model, then the default."""
        return files.resolve_model_dir(self.options.model or self.model_arg or None)

    def load_initial_model(self) -> None:
        directory = self.model_dir()
        try:
            self.engine.set_model(LoadedModel.load(directory))
            self.model_problem = None
            log.info("serving model %s", directory)
        except files.ModelFileError as err:
            self.model_problem = (
                f"ghostwrite: no usable model ({err}); suggestions are off until one is trained "
                "(run `ghostwrite train` or the ghostwrite.train command) or configured."
            )

    async def reload_model(self, directory: Path, *, announce: bool) -> bool:
        """Load the model at ``directory`` off the event loop and switch to it; a model that
        does not load is refused and the current one keeps serving."""
        assert self.loop is not None
        signature = model_signature(directory)
        try:
            model = await self.loop.run_in_executor(None, LoadedModel.load, directory)
        except files.ModelFileError as err:
            self._refused = (directory, signature)
            current = self.engine.model
            keeps = f"still serving {current.path}" if current else "no model is served"
            self.model_problem = (
                f"ghostwrite: refused the model at {directory}: {err.problem} ({keeps})"
            )
            self.show(self.model_problem)
            return False
        self.engine.set_model(model)
        self.model_problem = None
        self._refused = None
        if announce:
            self.show(f"ghostwrite: now serving the model at {directory}", types.MessageType.Info)
        return True

    async def watch_model(self) -> None:
        """Poll the model directory; reload once a changed model has stayed unchanged for a poll
        (so a model being copied in is not read half-written)."""
        while True:
            await asyncio.sleep(POLL_SECONDS)
            directory = self.model_dir()
            signature = model_signature(directory)
            current = self.engine.model
            serving_here = current is not None and current.path == directory
            if signature is None:
                self._pending = None
                if serving_here:
                    # Deleted under us: the copy in memory keeps serving; say so in the status.
                    readable = os.access(directory, os.R_OK | os.X_OK)
                    what = "are gone" if readable else "cannot be read (permission denied)"
                    self.model_problem = (
                        f"ghostwrite: the model files at {directory} {what} "
                        "(still serving the copy loaded before)"
                    )
                    self.show(self.model_problem)
                continue
            if serving_here and current.signature == signature:
                self._pending = None
                self.model_problem = None  # the served files are back as they were
                continue
            state = (directory, signature)
            if state == self._refused:
                continue
            if state != self._pending:
                self._pending = state
                continue
            self._pending = None
            await self.reload_model(directory, announce=True)

    # ---- options -----------------------------------------------------------------------------

    def apply_settings(self) -> None:
        merged: dict[str, Any] = {}
        problems: list[str] = []
        for settings in (self.init_settings, self.workspace_settings):
            if isinstance(settings, dict) and isinstance(settings.get(SECTION), dict):
                settings = settings[SECTION]
            if settings is None:
                continue
            if isinstance(settings, dict):
                merged.update(settings)
            else:
                problems.append(f"settings must be an object, got {type(settings).__name__}")
        options, found = parse_options(merged)
        problems += found
        old_dir = self.model_dir()
        self.options = options
        if problems:
            self.show("ghostwrite: invalid settings use defaults: " + "; ".join(problems))
        new_dir = self.model_dir()
        if new_dir != old_dir and self.loop is not None:
            self.loop.create_task(self.reload_model(new_dir, announce=True))

    async def pull_configuration(self) -> None:
        if not _capability(self.client_capabilities, "workspace", "configuration"):
            return
        try:
            result = await self.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
            )
        except Exception as err:  # a client's failure here must not stop the server
            log.warning("workspace/configuration failed: %s", err)
            return
        if result and result[0] is not None:
            self.workspace_settings = result[0]
            self.apply_settings()

    # ---- documents ---------------------------------------------------------------------------

    def did_open(self, params: types.DidOpenTextDocumentParams) -> None:
        old = self.documents.get(params.text_document.uri)
        if old is not None:
            self.engine.stats.remove(old.text)
        document = self.documents.did_open(params.text_document)
        self.engine.stats.add(document.text)

    def did_change(self, params: types.DidChangeTextDocumentParams) -> None:
        document = self.documents.get(params.text_document.uri)
        if document is None:
            log.warning("change to a document that was never opened: %s", params.text_document.uri)
            return
        for change in params.content_changes:
            old_text = document.text
            if isinstance(change, types.TextDocumentContentChangeWholeDocument):
                document.apply(change, self.encoding)
                self.engine.stats.remove(old_text)
                self.engine.stats.add(document.text)
                continue
            a = document.offset_at(change.range.start, self.encoding)
            b = max(a, document.offset_at(change.range.end, self.encoding))
            document.replace(a, b, change.text)
            self.engine.stats.replace(old_text, a, b, change.text, document.text)
        document.version = params.text_document.version

    def did_close(self, params: types.DidCloseTextDocumentParams) -> None:
        document = self.documents.did_close(params.text_document.uri)
        if document is not None:
            self.engine.stats.remove(document.text)
            self.engine.forget(document.uri)

    # ---- completion --------------------------------------------------------------------------

    def enabled(self, document: Document) -> bool:
        path = to_fs_path(document.uri) or document.uri
        return self.options.enabled_for(document.language_id, path)

    async def suggest(
        self, uri: str, position: types.Position, min_candidates: int = 1
    ) -> tuple[Document, int, list[Suggestion]] | None:
        """Suggestions at a position, or None. Cancelled ($/cancelRequest), superseded (a newer
        request) or stale (the document changed) requests stop the model between steps and
        never return suggestions for old text."""
        document = self.documents.get(uri)
        if document is None or self.engine.model is None or not self.enabled(document):
            return None
        offset = document.offset_at(position, self.encoding)
        version = document.version
        options = self.options
        if options.candidates < min_candidates:
            options = replace(options, candidates=min_candidates)
        job = Job(uri, version, lambda: self._version(uri))
        if options.debounce_ms:
            self.engine.supersede(job)  # a request still waiting out its debounce stops too
            await asyncio.sleep(options.debounce_ms / 1000)
            if job.should_stop():
                return None
        before = document.text[:offset]
        after = document.text[offset : document.line_end(document.line_of(offset))]
        future = self.engine.submit(job, before, after, options)
        try:
            suggestions = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            job.cancelled.set()
            raise
        if job.should_stop():
            return None
        return document, offset, suggestions

    def _version(self, uri: str) -> int | None:
        document = self.documents.get(uri)
        return None if document is None else document.version

    # ---- commands ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        model = self.engine.model
        return {
            "version": self.version,
            "model": str(model.path) if model else None,
            "card": model.summary() if model else None,
            "problem": self.model_problem,
            "modelDirectory": str(self.model_dir()),
            "positionEncoding": self.encoding,
            "options": self.options.to_json(),
            "workspaceIndex": self.workspace_index_summary(),
            "cachedDocuments": self.engine.cached_documents,
            "dictionary": self.engine.stats.summary(),
            "training": self.training.state(),
        }

    async def index_workspace(self) -> None:
        """Put the workspace folders' words in the dictionary (on start and on reload)."""
        paths = self.workspace_paths()
        try:
            index = await asyncio.to_thread(self.engine.index_workspace, paths)
        except Exception as err:  # a dictionary problem must never stop completions
            log.warning("indexing the workspace failed: %s", err)
            return
        log.info("workspace dictionary: %d files, %d bytes", index.files, index.bytes)

    def workspace_index_summary(self) -> dict[str, Any] | None:
        index = self.engine.workspace
        if index is None:
            return None
        return {"files": index.files, "bytes": index.bytes, "skipped": index.skipped}

    def workspace_paths(self) -> list[str]:
        workspace = self.protocol._workspace
        if workspace is None:
            return []
        uris = [folder.uri for folder in workspace.folders.values()]
        if not uris and workspace.root_uri:
            uris = [workspace.root_uri]
        return [path for uri in uris if (path := to_fs_path(uri))]


def _capability(capabilities: Any, *names: str) -> Any:
    for name in names:
        capabilities = getattr(capabilities, name, None)
        if capabilities is None:
            return None
    return capabilities


def create_server(model: str | None = None) -> GhostwriteServer:
    server = GhostwriteServer(model)

    @server.feature(types.INITIALIZE)
    def initialize(ls: GhostwriteServer, params: types.InitializeParams) -> None:
        encoding = ServerCapabilitiesBuilder.choose_position_encoding(params.capabilities)
        ls.encoding = getattr(encoding, "value", encoding)
        ls.init_settings = params.initialization_options
        if ls.init_settings is not None:
            ls.apply_settings()

    @server.feature(types.INITIALIZED)
    async def initialized(ls: GhostwriteServer, params: types.InitializedParams) -> None:
        if ls.model_problem:
            ls.show(ls.model_problem)
        await ls.pull_configuration()
        ls.loop.create_task(ls.index_workspace())

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(
        ls: GhostwriteServer, params: types.DidChangeConfigurationParams
    ) -> None:
        settings = params.settings
        if isinstance(settings, dict) and isinstance(settings.get(SECTION), dict):
            ls.workspace_settings = settings[SECTION]
            ls.apply_settings()
        else:
            await ls.pull_configuration()

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: GhostwriteServer, params: Any) -> None:
        ls.engine.cancel_all()
        ls.training.stop()

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: GhostwriteServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        found = await ls.suggest(
            params.text_document.uri, params.position, INVOKED_CANDIDATES if invoked else 1
        )
        if found is None:
            return types.InlineCompletionList(items=[])
        document, offset, suggestions = found
        here = document.position_at(offset, ls.encoding)
        return types.InlineCompletionList(
            items=[
                types.InlineCompletionItem(insert_text=s.text, range=types.Range(here, here))
                for s in suggestions
            ]
        )

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=TRIGGER_CHARACTERS),
    )
    async def completion(
        ls: GhostwriteServer, params: types.CompletionParams
    ) -> types.CompletionList:
        found = await ls.suggest(params.text_document.uri, params.position)
        if found is None:
            return types.CompletionList(is_incomplete=True, items=[])
        document, offset, suggestions = found
        line_start = int(document.starts[document.line_of(offset)])
        start = offset
        while start > line_start and is_word_char(document.text[start - 1]):
            start -= 1
        typed = document.text[start:offset]
        replace = types.Range(
            document.position_at(start, ls.encoding), document.position_at(offset, ls.encoding)
        )
        items = []
        for rank, suggestion in enumerate(suggestions):
            # The label is the whole word after completion, so client-side filtering on the
            # typed word keeps the item.
            text = typed + suggestion.text
            items.append(
                types.CompletionItem(
                    label=text.strip() or text,
                    kind=types.CompletionItemKind.Text,
                    detail=f"ghostwrite {suggestion.probability:.0%}",
                    sort_text=f"{rank:02d}",
                    filter_text=text,
                    text_edit=types.TextEdit(range=replace, new_text=text),
                )
            )
        return types.CompletionList(is_incomplete=True, items=items)

    @server.command("ghostwrite.status")
    def status(ls: GhostwriteServer, *args: Any) -> dict[str, Any]:
        return ls.status()

    @server.command("ghostwrite.reload")
    async def reload(ls: GhostwriteServer, *args: Any) -> dict[str, Any]:
        loaded = await ls.reload_model(ls.model_dir(), announce=False)
        await ls.index_workspace()
        return {"reloaded": loaded, **ls.status()}

    @server.command("ghostwrite.train")
    async def train(ls: GhostwriteServer, *args: Any) -> dict[str, Any]:
        return await ls.training.start(args)

    @server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)
    def progress_cancel(ls: GhostwriteServer, params: types.WorkDoneProgressCancelParams) -> None:
        ls.training.cancel(params.token)

    return server
