"""The server under abuse, over raw stdio against a real process: framing and JSON-RPC faults
beyond tests/test_server_raw.py, invalid params for every method it serves, the model files
broken while serving, the client vanishing, and load (many documents, a 4 MB document, edit
bursts, completion on every keystroke with cancellations). After each fault the very next valid
request must be answered correctly."""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from ghostwrite.model.words import WORD
from ghostwrite.server.client import (
    RawClient,
    alive,
    children,
    encode,
    frame,
    inline_params,
    insert,
    open_params,
    peak_rss_mb,
    wait_for,
    without_root_powers,
)
from ghostwrite.server.engine import CACHED_DOCUMENTS
from ghostwrite.server.faults import (
    INVALID_NOTIFICATIONS,
    INVALID_REQUESTS,
    MODEL_FAULTS,
    break_model,
    repair_model,
)
from tests.helpers.scripted import LAZY_TEXT

TEXT = LAZY_TEXT  # the scripted model suggests "zy" here, and "lazy" at a line's start
BIG_DOCUMENT = 4_000_000  # characters (bench/robustness.py uses 10 MB)


@pytest.fixture
def served(scripted_model_dir: Path) -> Iterator[tuple[RawClient, list[str]]]:
    """An initialized server with TEXT open, and its answer at the end of TEXT."""
    client = RawClient("--model", str(scripted_model_dir))
    try:
        client.initialize()
        client.notify("textDocument/didOpen", open_params(TEXT))
        want = client.inline(0, len(TEXT))
        assert want == ["zy"]
        yield client, want
    finally:
        client.close()


def finish(client: RawClient) -> None:
    assert client.shutdown() == 0
    assert client.errors == []  # stdout carried protocol frames only


def test_framing_and_json_rpc_faults(served):
    client, want = served
    # Malformed JSON: a ParseError answer (id null), then business as usual.
    client.send_bytes(frame(b'{"jsonrpc": "2.0", "id": 77, "method": '))
    assert client.response(None)["error"]["code"] == -32700
    assert client.inline(0, len(TEXT)) == want
    # Content-Length too short, too long, missing, junk between messages.
    body = json.dumps({"jsonrpc": "2.0", "id": 78, "method": "nope", "params": {}}).encode()
    client.send_bytes(frame(body, len(body) - 5))
    assert client.inline(0, len(TEXT)) == want
    client.send_bytes(frame(body, len(body) + 40))
    assert client.response(78)["error"]["code"] == -32601  # method not found, but answered
    assert client.inline(0, len(TEXT)) == want
    client.send_bytes(b"Content-Length: nope\r\n\r\n" + body)
    client.send_bytes(b"garbage between messages\r\n")
    assert client.inline(0, len(TEXT)) == want
    # A huge header (no blank line for 64 KB), then a header with many unknown lines.
    client.send_bytes(b"X-Junk: " + b"a" * 65536 + b"\r\n")
    assert client.inline(0, len(TEXT)) == want
    client.send_bytes(b"".join(b"X-Header-%d: v\r\n" % i for i in range(2000)))
    client.send_bytes(encode({"jsonrpc": "2.0", "id": 500, "method": "nope"}))
    assert client.response(500)["error"]["code"] == -32601
    assert client.inline(0, len(TEXT)) == want
    # A truncated body (the client died mid-message), then the next message.
    body = json.dumps({"jsonrpc": "2.0", "id": 501, "method": "textDocument/inlineCompletion"})
    client.send_bytes(frame(body.encode()[:30], len(body)))
    assert client.inline(0, len(TEXT)) == want
    # Valid JSON that is not a JSON-RPC request: InvalidRequest, with the id when it has one.
    for payload, msg_id in [
        (b"42", None),
        (b'"text"', None),
        (b"null", None),
        (b"[]", None),
        (b'[{"jsonrpc": "2.0", "id": 502, "method": "shutdown"}]', None),
        (b'{"jsonrpc": "1.0", "id": 503, "method": "shutdown"}', 503),
        (b'{"jsonrpc": "2.0", "id": 504}', 504),
        (b'{"jsonrpc": "2.0", "id": 505, "method": 7}', 505),
        (b'{"id": 507, "method": "initialize"}', 507),
    ]:
        client.send_bytes(frame(payload))
        answer = client.response(msg_id)
        assert answer["error"]["code"] == -32600, (payload, answer)
        assert client.inline(0, len(TEXT)) == want
    # An id that is neither a number nor a string is answered with a null id.
    client.send({"jsonrpc": "2.0", "id": {"x": 1}, "method": "shutdown"})
    assert client.response(None)["error"]["code"] in (-32600, -32602)
    # Invalid UTF-8 and deeply nested JSON are parse errors, not crashes.
    client.send_bytes(frame(b'{"jsonrpc": "2.0", "id": 506, "method": "\xff\xfe"}'))
    assert client.response(None)["error"]["code"] == -32700
    client.send_bytes(frame(b"[" * 100_000 + b"]" * 100_000))
    assert client.response(None)["error"]["code"] in (-32700, -32600)
    # Unknown methods: requests get MethodNotFound, notifications are ignored.
    assert client.call("ghostwrite/nope", {})["error"]["code"] == -32601
    assert client.call("$/nope", {})["error"]["code"] == -32601
    client.notify("$/nope", {"x": 1})
    client.notify("ghostwrite/nope", None)
    assert client.inline(0, len(TEXT)) == want
    # Invalid params: answered InvalidParams (pygls alone never answers), with what was wrong.
    bad = dict(inline_params(0, len(TEXT)), position={"line": "zero", "character": -1})
    answer = client.call("textDocument/inlineCompletion", bad)
    assert answer["error"]["code"] == -32602
    assert "position" in answer["error"]["message"]
    client.notify("textDocument/didChange", {"textDocument": {"uri": 5}})  # survived, logged
    assert client.inline(0, len(TEXT)) == want
    finish(client)


def test_invalid_params_for_every_method(scripted_model_dir):
    client = RawClient("--model", str(scripted_model_dir))
    try:
        answer = client.call("initialize", {"processId": "me", "capabilities": 5})
        assert answer["error"]["code"] == -32602
        client.initialize()
        client.notify("textDocument/didOpen", open_params(TEXT))
        want = client.inline(0, len(TEXT))
        for method, params in INVALID_REQUESTS:
            answer = client.call(method, params)
            assert answer.get("error", {}).get("code") == -32602, (method, params, answer)
            assert client.inline(0, len(TEXT)) == want, (method, params)
        for method, params in INVALID_NOTIFICATIONS:
            client.notify(method, params)
            assert client.inline(0, len(TEXT)) == want, (method, params)
        # Arguments our commands do not understand are refused, never crash the server.
        for arguments in (["x"], [{"paths": 5}], [None], [{"paths": ["/nonexistent/dir"]}]):
            command = {"command": "ghostwrite.train", "arguments": arguments}
            answer = client.call("workspace/executeCommand", command)
            assert answer["result"]["started"] is False, (arguments, answer)
            assert client.inline(0, len(TEXT)) == want, arguments
        assert client.status()["model"] == str(scripted_model_dir)
        finish(client)
    finally:
        client.close()


@pytest.mark.parametrize("how", MODEL_FAULTS)
def test_model_broken_while_serving_keeps_the_old_model(scripted_model_dir, tmp_path, how):
    directory = tmp_path / "model"
    shutil.copytree(scripted_model_dir, directory)
    wrapper = without_root_powers()
    if wrapper is None:
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    client = RawClient("--model", str(directory), wrapper=wrapper)
    try:
        client.initialize()
        client.notify("textDocument/didOpen", open_params(TEXT))
        want = client.inline(0, len(TEXT))
        assert want == ["zy"] and client.status()["problem"] is None
        break_model(directory, how)
        wait_for("the problem", lambda: client.status()["problem"] is not None)
        state = client.status()
        assert str(directory) in state["problem"] and "still serving" in state["problem"]
        assert state["model"] == str(directory)
        assert client.inline(0, len(TEXT)) == want  # the copy in memory keeps serving
        if how == "unreadable":
            assert "cannot be read" in state["problem"]
        # Putting a good model back clears the problem and serves it.
        repair_model(directory, scripted_model_dir)
        wait_for("the problem to clear", lambda: client.status()["problem"] is None)
        assert client.inline(0, len(TEXT)) == want
        finish(client)
    finally:
        client.close()


def test_an_unreadable_model_at_start_is_reported_and_then_picked_up(scripted_model_dir, tmp_path):
    wrapper = without_root_powers()
    if wrapper is None:
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    directory = tmp_path / "model"
    shutil.copytree(scripted_model_dir, directory)
    break_model(directory, "unreadable")
    client = RawClient("--model", str(directory), wrapper=wrapper)
    try:
        client.initialize()
        client.notify("textDocument/didOpen", open_params(TEXT))
        problem = client.status()["problem"]
        assert "permission" in problem.lower() and str(directory) in problem
        assert client.inline(0, len(TEXT)) == []
        repair_model(directory, scripted_model_dir)
        wait_for("the problem to clear", lambda: client.status()["problem"] is None)
        assert client.inline(0, len(TEXT)) == ["zy"]
        finish(client)
    finally:
        client.close()


def client_with_training_notes(model_dir: Path, tmp_path: Path) -> tuple[RawClient, dict]:
    """A server whose personal model lives in ``tmp_path``, and the command that trains it on a
    folder of notes there."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text(TEXT * 400)
    client = RawClient(
        "--model", str(model_dir), env={"XDG_DATA_HOME": str(tmp_path)}, root=tmp_path
    )
    return client, {"command": "ghostwrite.train", "arguments": [{"paths": [str(notes)]}]}


def test_client_vanishing_mid_request_and_mid_training_leaves_no_process(
    scripted_model_dir, tmp_path
):
    client, command = client_with_training_notes(scripted_model_dir, tmp_path)
    try:
        client.initialize()
        client.notify("textDocument/didOpen", open_params(TEXT))
        started = client.call("workspace/executeCommand", command)["result"]
        assert started["started"], started
        trainer = started["pid"]
        assert trainer in children(client.process.pid)
        client.request("textDocument/inlineCompletion", inline_params(0, len(TEXT)))
        # The editor dies: both pipes close with a request in flight, no shutdown, no exit.
        assert client.process.stdin is not None and client.process.stdout is not None
        client.process.stdin.close()
        client.process.stdout.close()
        assert client.wait() == 1
        wait_for("the trainer to exit", lambda: not alive(trainer))
    finally:
        client.close()


def test_training_process_killed_while_serving(scripted_model_dir, tmp_path):
    client, command = client_with_training_notes(scripted_model_dir, tmp_path)
    try:
        client.initialize()
        client.notify("textDocument/didOpen", open_params(TEXT))
        want = client.inline(0, len(TEXT))
        started = client.call("workspace/executeCommand", command)["result"]
        os.kill(started["pid"], signal.SIGKILL)
        wait_for("the run to end", lambda: not client.status()["training"]["running"])
        result = client.status()["training"]["result"]
        assert result.startswith("failed"), result
        assert client.inline(0, len(TEXT)) == want
        assert client.status()["model"] == str(scripted_model_dir)
        again = client.call("workspace/executeCommand", command)["result"]
        assert again["started"], again  # a new run can start after the crash
        finish(client)
        wait_for("the trainer to exit", lambda: not alive(again["pid"]))
    finally:
        client.close()


def test_load_many_documents_big_document_bursts_and_keystrokes(scripted_model_dir):
    client = RawClient("--model", str(scripted_model_dir))
    fresh = RawClient("--model", str(scripted_model_dir))
    # The model's own suggestions: the dictionary's ranking learns its calibration from every
    # request, so after a burst of cancelled ones its answer would depend on which ran. The
    # dictionary still counts every document, which the end of the test checks.
    model_only = {"settings": {"ghostwrite": {"dictionary": False}}}
    try:
        client.initialize()
        client.notify("workspace/didChangeConfiguration", model_only)
        others = [f"file:///doc{i}.txt" for i in range(20)]
        for i, uri in enumerate(others):
            client.notify("textDocument/didOpen", open_params(TEXT * (50 + i), uri))
            assert client.inline(0, len(TEXT) * (50 + i), uri) == ["zy"]
        assert client.status()["cachedDocuments"] == CACHED_DOCUMENTS  # the oldest were dropped
        big_uri = "file:///big.txt"
        line = (TEXT + ", and the dog sleeps. ") * 20 + "\n"
        big = line * (BIG_DOCUMENT // len(line))
        client.notify("textDocument/didOpen", open_params(big, big_uri))
        last = big.count("\n")
        assert client.inline(last, 0, big_uri) == ["lazy"]  # answered at the very end
        assert client.inline(5, len(TEXT), big_uri) == ["zy"]  # and near its start

        # Over 1,000 single-character edits in one burst, then a completion at the end.
        client.notify("textDocument/didOpen", open_params(""))
        text = " ".join([TEXT] * 28)
        burst = b"".join(encode(insert(2 + i, 0, i, ch)) for i, ch in enumerate(text))
        client.send_bytes(burst)
        col = len(text)
        assert client.inline(0, col) == ["zy"]

        # Completion on every keystroke, each earlier request cancelled.
        version = 1000
        for ch in "The quick brown fox jumps over the la":
            version += 1
            client.send(insert(version, 0, col, ch))
            text += ch
            col += 1
            msg_id = client.request("textDocument/inlineCompletion", inline_params(0, col))
            client.notify("$/cancelRequest", {"id": msg_id})
            answer = client.response(msg_id)
            assert "result" in answer or answer["error"]["code"] == -32800

        # Close everything else: the dictionary holds what a fresh server's holds for the same
        # text and only one document keeps a model cache, so nothing leaked from the closed
        # documents.
        for uri in [*others, big_uri]:
            client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        assert client.inline(0, col) == ["zy"]
        after = client.status()
        assert after["cachedDocuments"] == 1
        fresh.initialize()
        fresh.notify("workspace/didChangeConfiguration", model_only)
        fresh.notify("textDocument/didOpen", open_params(text))
        assert fresh.inline(0, col) == ["zy"]
        assert after["dictionary"] == fresh.status()["dictionary"]
        assert after["dictionary"]["occurrences"] == len(WORD.findall(text))
        rss = peak_rss_mb(client.process.pid)
        print(f"server peak RSS under load: {rss:.0f} MiB")
        # A few copies of 10 MB of text plus the model; unbounded caches would be far beyond.
        assert rss < 1024
        finish(client)
        finish(fresh)
    finally:
        client.close()
        fresh.close()
