"""The server over raw stdio: bytes no well-behaved client sends (malformed JSON, wrong
Content-Length, invalid params), the shutdown/exit rules, and a stdout that carries nothing but
protocol frames. The client here is a plain subprocess with a frame parser."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ghostwrite.server.client import RawClient, frame
from tests.helpers.scripted import LAZY_TEXT

TEXT = LAZY_TEXT
OPEN = {
    "textDocument": {"uri": "file:///a.txt", "languageId": "plaintext", "version": 1, "text": TEXT}
}
AT_END = {
    "textDocument": {"uri": "file:///a.txt"},
    "position": {"line": 0, "character": len(TEXT)},
    "context": {"triggerKind": 2},
}


@pytest.fixture
def raw(scripted_model_dir):
    client = RawClient("--model", str(scripted_model_dir))
    yield client
    client.close()


def works(client: RawClient) -> bool:
    """The server still answers with the scripted model's suggestion."""
    answer = client.call("textDocument/inlineCompletion", AT_END)
    return [item["insertText"] for item in answer["result"]["items"]] == ["zy"]


def test_malformed_input_is_answered_or_survived(raw):
    raw.initialize()
    raw.notify("textDocument/didOpen", OPEN)
    assert works(raw)
    # Malformed JSON: a ParseError answer (id null), then business as usual.
    raw.send_bytes(frame(b'{"jsonrpc": "2.0", "id": 77, "method": '))
    assert raw.response(None)["error"]["code"] == -32700
    assert works(raw)
    # Content-Length too short, too long, missing, junk between messages.
    body = json.dumps({"jsonrpc": "2.0", "id": 78, "method": "nope", "params": {}}).encode()
    raw.send_bytes(frame(body, len(body) - 5))
    assert works(raw)
    raw.send_bytes(frame(body, len(body) + 40))
    assert raw.response(78)["error"]["code"] == -32601  # method not found, but answered
    assert works(raw)
    raw.send_bytes(b"Content-Length: nope\r\n\r\n" + body)
    raw.send_bytes(b"garbage between messages\r\n")
    assert works(raw)
    # Valid JSON that is not JSON-RPC, and a batch (unsupported): InvalidRequest.
    raw.send_bytes(frame(b'{"id": 79, "method": "initialize"}'))
    assert raw.response(79)["error"]["code"] == -32600
    # Invalid params: answered InvalidParams (pygls alone never answers).
    bad = dict(AT_END, position={"line": "zero", "character": -1})
    answer = raw.call("textDocument/inlineCompletion", bad)
    assert answer["error"]["code"] == -32602
    assert "position" in answer["error"]["message"]
    raw.notify("textDocument/didChange", {"textDocument": {"uri": 5}})  # survived, logged
    assert works(raw)
    assert raw.call("shutdown")["result"] is None
    raw.notify("exit")
    assert raw.wait() == 0
    assert raw.errors == []  # stdout carried protocol frames only


def test_requests_after_shutdown_and_exit_codes(raw, scripted_model_dir):
    before_init = raw.call("textDocument/completion", AT_END)
    assert before_init["error"]["code"] == -32002  # ServerNotInitialized
    raw.initialize()
    raw.notify("textDocument/didOpen", OPEN)
    assert raw.call("shutdown")["result"] is None
    for method in ("textDocument/completion", "textDocument/inlineCompletion", "shutdown"):
        assert raw.call(method, AT_END)["error"]["code"] == -32600  # InvalidRequest
    raw.notify("textDocument/didChange", {})  # notifications after shutdown are dropped
    raw.notify("exit")
    assert raw.wait() == 0
    assert raw.errors == []

    without_shutdown = RawClient("--model", str(scripted_model_dir))
    try:
        without_shutdown.initialize()
        without_shutdown.notify("exit")
        assert without_shutdown.wait() == 1
    finally:
        without_shutdown.close()


def test_end_of_input_stops_the_server(raw):
    raw.initialize()
    assert raw.process.stdin is not None
    raw.process.stdin.close()
    assert raw.wait() == 1  # the client vanished without shutdown
    assert raw.errors == []


def test_print_options_markdown_lists_every_option():
    from dataclasses import fields

    from ghostwrite.server.options import ServerOptions, camel

    out = subprocess.run(
        [sys.executable, "-m", "ghostwrite.server", "--print-options-markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for f in fields(ServerOptions):
        assert f"`ghostwrite.{camel(f.name)}`" in out
