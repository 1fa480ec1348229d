"""The server over raw stdio: the shutdown/exit rules, the end of input, and the options table
it prints. Malformed input is tests/test_robustness_server.py's."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ghostwrite.server.client import RawClient, inline_params, open_params
from tests.helpers.scripted import LAZY_TEXT

AT_END = inline_params(0, len(LAZY_TEXT))


@pytest.fixture
def raw(scripted_model_dir):
    client = RawClient("--model", str(scripted_model_dir))
    yield client
    client.close()


def test_requests_after_shutdown_and_exit_codes(raw, scripted_model_dir):
    before_init = raw.call("textDocument/completion", AT_END)
    assert before_init["error"]["code"] == -32002  # ServerNotInitialized
    raw.initialize()
    raw.notify("textDocument/didOpen", open_params(LAZY_TEXT))
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
