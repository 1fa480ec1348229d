"""pygls's LSP protocol with the gaps that matter to editors closed:

- requests with invalid params are answered InvalidParams (pygls logs them and never answers);
- requests after ``shutdown`` are answered InvalidRequest (pygls drops them silently), and
  requests before ``initialize`` ServerNotInitialized;
- malformed JSON gets a ParseError answer, non-JSON-RPC objects InvalidRequest;
- ``exit`` goes to the server's handler, which stops the loop and leaves the exit code to the
  caller (0 after shutdown, else 1), instead of pygls's ``sys.exit``;
- document sync is the server's alone (``sync.DocumentSync``): pygls keeps no copy;
- popup completion is offered only to clients without inline completion, whose completion
  plugins (nvim-cmp, blink.cmp, VS Code's IntelliSense) would otherwise list the ghost text's
  words a second time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from cattrs import transform_error
from cattrs.errors import ClassValidationError
from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcParseError,
    JsonRpcServerNotInitialized,
)
from pygls.protocol import LanguageServerProtocol, lsp_method

from .transport import MAX_DEPTH, FrameError, too_deep

log = logging.getLogger(__name__)

# Messages a client may send before ``initialize`` has been answered.
ALLOWED_BEFORE_INIT = {types.INITIALIZE, types.EXIT, types.CANCEL_REQUEST}


@dataclass
class InvalidMessage:
    """A JSON-RPC message whose params did not fit the method's types."""

    id: Any
    method: str | None
    reason: str


class GhostwriteProtocol(LanguageServerProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # pygls keeps these two states only in private attributes.
        self.initialize_received = False
        self.shut_down = False

    def forget_client(self) -> None:
        """Back to the state before ``initialize``, for the next client. pygls serves one
        client per process and has no public way to drop one's requests, so its request tables
        are cleared here."""
        for future in list(self._request_futures.values()):
            future.cancel()
        self._request_futures.clear()
        self._result_types.clear()
        self.initialize_received = False
        self.shut_down = False

    def structure_message(self, data: dict[str, Any]) -> Any:
        if "jsonrpc" in data:
            method = data.get("method")
            if (
                data["jsonrpc"] != "2.0"
                or ("method" in data and not isinstance(method, str))
                or not isinstance(data.get("id"), (int, str, type(None)))
                or ("method" not in data and not {"result", "error"} & data.keys())
            ):
                return data  # not JSON-RPC 2.0: handle_frame answers InvalidRequest
            unknown = isinstance(method, str) and not self.get_message_type(method)
            if unknown and "params" not in data:
                # pygls's generic message needs params; an unknown method is MethodNotFound.
                data = {**data, "params": None}
        try:
            return super().structure_message(data)
        except JsonRpcException as err:
            cause = err.__cause__
            if isinstance(cause, ClassValidationError):
                reason = "; ".join(transform_error(cause)[:3])
            else:
                reason = str(cause or err) or type(cause or err).__name__
            return InvalidMessage(data.get("id"), data.get("method"), reason)

    def handle_frame(self, frame: bytes | FrameError) -> None:
        """One framed message off the wire (or a framing error)."""
        if isinstance(frame, FrameError):
            log.warning("ignored malformed input: %s", frame.reason)
            if frame.answer:
                self._send_error(None, JsonRpcInvalidRequest(frame.reason))
            return
        if too_deep(frame):
            reason = f"JSON nested deeper than {MAX_DEPTH} levels"
            log.warning("ignored a message: %s", reason)
            self._send_error(None, JsonRpcInvalidRequest(reason))
            return
        try:
            message = json.loads(frame, object_hook=self.structure_message)
        except (ValueError, RecursionError) as err:
            log.warning("message is not valid JSON: %s", err)
            self._send_error(None, JsonRpcParseError(f"invalid JSON: {err}"))
            return
        if not isinstance(message, InvalidMessage) and (
            isinstance(message, dict) or not hasattr(message, "jsonrpc")
        ):
            msg_id = message.get("id") if isinstance(message, dict) else None
            self._send_error(msg_id, JsonRpcInvalidRequest("not a JSON-RPC 2.0 message"))
            return
        self.handle_message(message)

    def _send_error(self, msg_id: Any, error: JsonRpcException) -> None:
        if msg_id is not None and not isinstance(msg_id, (int, str)):
            msg_id = None
        # pygls answers only the requests it dispatches; these never reach a handler and its
        # one way to send an answer is this private method.
        self._send_response(msg_id, error=error.to_response_error())

    def handle_message(self, message: Any) -> None:
        method = getattr(message, "method", None)
        is_request = method is not None and getattr(message, "id", None) is not None
        if isinstance(message, InvalidMessage):
            if is_request:
                self._send_error(message.id, JsonRpcInvalidParams(message.reason))
            elif method is None and message.id is not None:
                # A malformed answer to one of our requests: fail that request, not hang it.
                error = types.ResponseError(JsonRpcInvalidParams.CODE, message.reason)
                super().handle_message(types.ResponseErrorMessage(id=message.id, error=error))
            else:
                log.warning("ignored %s with invalid params: %s", method, message.reason)
            return
        if self.shut_down and method is not None and method != types.EXIT:
            if is_request:
                self._send_error(message.id, JsonRpcInvalidRequest("the server is shut down"))
            return
        before_init = not self.initialize_received and method not in ALLOWED_BEFORE_INIT
        if before_init and method is not None:
            if is_request:
                self._send_error(
                    message.id, JsonRpcServerNotInitialized("the server is not initialized")
                )
            return
        try:
            super().handle_message(message)
        except Exception as err:  # one bad message (e.g. an unhashable cancel id) must not kill us
            log.exception("failed to handle %s", method)
            if is_request:
                self._send_error(message.id, JsonRpcInternalError(f"{type(err).__name__}: {err}"))

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(
        self, params: types.InitializeParams
    ) -> Generator[Any, Any, types.InitializeResult]:
        # Set first: the server's initialize handler may already message the user.
        self.initialize_received = True
        result = yield from super().lsp_initialize(params)
        document = params.capabilities.text_document
        if document is not None and document.inline_completion is not None:
            result.capabilities.completion_provider = None
        return result

    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args: Any) -> Generator[Any, Any, None]:
        """pygls's shutdown, cancelling the requests in flight over a copy of their table (there
        is no public view of it): a cancelled command's callback removes its entry at once, so
        iterating the table itself would fail the shutdown."""
        if (user_handler := self.fm.features.get(types.SHUTDOWN)) is not None:
            yield user_handler, args, None
        current_id = self.msg_id
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current_id and not future.done():
                future.cancel()
        self.shut_down = True

    def _run_handler(self, method: str, params: Any) -> None:
        """Call the server's (synchronous) handler for a notification in place of pygls's built-in
        one. A plain call: pygls runs generator and async notification handlers under futures it
        never drops, one per keystroke for didChange."""
        if (handler := self.fm.features.get(method)) is not None:
            handler(params)

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> None:
        self._run_handler(types.EXIT, None)

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> None:
        self._run_handler(types.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> None:
        self._run_handler(types.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> None:
        self._run_handler(types.TEXT_DOCUMENT_DID_CLOSE, params)
