"""A careless user and a hostile local client against real processes: `--out` never deletes
files ghostwrite did not write, the ``ghostwrite.train`` command reads only inside the workspace
and cannot be steered by flags, deep or huge messages and non-finite options are answered,
FIFOs and symlink loops are skipped without blocking, Ctrl-C says truthfully what was saved,
and over TCP a silent or vanishing client never locks the editor out.

bench/robustness.py runs these tests several times and counts them in its report."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ghostwrite.model import files, load_model
from ghostwrite.server.client import (
    RawClient,
    alive,
    children,
    encode,
    frame,
    open_params,
    wait_for,
)
from ghostwrite.server.transport import FrameParser
from ghostwrite.training.checkpoint import load_checkpoint
from ghostwrite.training.corpus import scan
from ghostwrite.training.harness import TINY, make_corpus, read_until, run_cli, start
from tests.helpers.network import free_port, listening_addresses
from tests.helpers.scripted import LAZY_TEXT

GHOSTWRITE = Path(sys.executable).with_name("ghostwrite")
ROOT = Path(__file__).resolve().parents[1]
INTERRUPTED_QUIETLY = (
    "ghostwrite train: interrupted by SIGINT before training started; nothing was written",
)
SAVED_AT_STEP = (
    r"ghostwrite train: interrupted by SIGINT at step \d+; checkpoint saved, continue with --resume"
)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def user_folder(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "thesis.txt").write_text("Chapter one. Years of work.\n")
    (root / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return root


# ---- --out and the model swap ------------------------------------------------------------------


def test_out_refuses_folders_it_does_not_own(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    users = user_folder(tmp_path / "users")
    before = {users: tree(users), corpus: tree(corpus)}
    for out in (users, corpus, corpus / "model", tmp_path):
        result = run_cli(corpus, *TINY, "--out", out, "--max-steps", "1")
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1, result.stderr
        assert len(lines) == 1 and str(out) in lines[0], result.stderr
        assert "Traceback" not in result.stderr
    assert {users: tree(users), corpus: tree(corpus)} == before
    assert not (corpus / "model").exists()


def test_retraining_keeps_a_users_file_in_the_model_folder(
    tmp_path: Path, scripted_model_dir: Path
) -> None:
    out = tmp_path / "model"
    m = load_model(scripted_model_dir)
    files.save_model(out, m.config, m.weights, {"note": "first"})
    (out / "my-notes.txt").write_text("mine\n")
    files.save_model(out, m.config, m.weights, {"note": "second"})
    assert load_model(out).card["note"] == "second"
    assert (out / "my-notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # nothing left behind


def test_save_model_refuses_a_folder_of_someone_elses_files(tmp_path, scripted_model_dir):
    users = user_folder(tmp_path / "users")
    m = load_model(scripted_model_dir)
    with pytest.raises(files.ForeignFolder, match="refusing to write a model"):
        files.save_model(users, m.config, m.weights)
    assert sorted(tree(users)) == ["sub/data.csv", "thesis.txt"]


# ---- the train command -------------------------------------------------------------------------


def workspace(work: Path) -> tuple[Path, Path]:
    """A workspace with notes, a folder outside it, and links in it that lead out."""
    ws, outside = work / "ws", work / "outside"
    (ws / "notes").mkdir(parents=True)
    outside.mkdir()
    (ws / "notes" / "a.txt").write_text("Notes of mine. " * 400)
    (outside / "secret.txt").write_text("A secret outside the workspace. " * 400)
    (ws / "leak.txt").symlink_to(outside / "secret.txt")
    (ws / "leakdir").symlink_to(outside)
    return ws, outside


def refused_arguments(ws: Path, outside: Path, victim: Path) -> list[object]:
    notes = str(ws / "notes" / "a.txt")
    return [
        [{"paths": [notes, "--out", str(victim), "--max-steps", "1"]}],
        [{"init": f"--out={victim}"}],
        [{"paths": [notes], "out": str(victim)}],
        [{"paths": ["/etc"]}],
        [{"paths": [str(outside)]}],
        [{"paths": [str(ws / "leakdir")]}],
        [{"paths": [str(ws / "leak.txt")]}],
        [{"paths": [f"{ws}/../outside"]}],
        [{"paths": "abc"}],
        [{"paths": [5]}],
        [{"paths": ["notes/a.txt"]}],
        [{"init": str(outside)}],
        ["x"],
    ]


def test_train_command_refuses_flags_and_paths_outside_the_workspace(
    tmp_path: Path, scripted_model_dir: Path
) -> None:
    ws, outside = workspace(tmp_path)
    victim = user_folder(tmp_path / "victim")
    before = tree(victim)
    client = RawClient(
        "--model", str(scripted_model_dir), env={"XDG_DATA_HOME": str(tmp_path)}, root=ws
    )
    try:
        client.initialize()
        for arguments in refused_arguments(ws, outside, victim):
            command = {"command": "ghostwrite.train", "arguments": arguments}
            result = client.call("workspace/executeCommand", command)["result"]
            assert result["started"] is False, (arguments, result)
            assert result["message"].startswith("ghostwrite.train refused: "), result
            assert children(client.process.pid) == [], arguments
        # Accepted: a path inside, passed after "--" as its resolved self.
        command = {"command": "ghostwrite.train", "arguments": [{"paths": [str(ws / "notes")]}]}
        result = client.call("workspace/executeCommand", command)["result"]
        assert result["started"], result
        argv = Path(f"/proc/{result['pid']}/cmdline").read_bytes().split(b"\0")[:-1]
        assert argv[-2:] == [b"--", os.fsencode(os.path.realpath(ws / "notes"))], argv
        assert client.shutdown() == 0
        wait_for("the trainer to exit", lambda: not alive(result["pid"]))
    finally:
        client.close()
    assert tree(victim) == before


def test_workspace_training_skips_links_leading_out(tmp_path):
    ws, _ = workspace(tmp_path)
    corpus = scan([ws])
    assert [f.path for f in corpus.files] == [ws / "notes" / "a.txt"]
    assert corpus.skipped["links leading out of the folder"] == 1


# ---- bounded parsing and options ----------------------------------------------------------------


def test_deep_huge_and_infinite_input_is_answered(scripted_model_dir: Path) -> None:
    client = RawClient("--model", str(scripted_model_dir))
    try:
        result = client.call(
            "initialize",
            {
                "processId": None,
                "rootUri": None,
                "capabilities": {},
                "initializationOptions": {"ghostwrite": {"maxChars": 1e999}},
            },
        )
        assert "capabilities" in result["result"], result
        client.notify("initialized", {})
        client.notify("textDocument/didOpen", open_params(LAZY_TEXT))
        want = client.inline(0, len(LAZY_TEXT))
        assert client.status()["options"]["maxChars"] == 32
        client.send_bytes(frame(b'{"a":' * 5000 + b"1" + b"}" * 5000))
        error = client.response(None)["error"]
        assert error["code"] == -32600 and "nested deeper" in error["message"], error
        # A declared length past the limit: skipped, answered, and the next message still read.
        client.send_bytes(b"Content-Length: 100000000\r\n\r\n{")
        error = client.response(None)["error"]
        assert error["code"] == -32600 and "larger than the limit" in error["message"], error
        assert client.inline(0, len(LAZY_TEXT)) == want
        settings = {"settings": {"ghostwrite": {"maxChars": 1e999, "confidence": float("nan")}}}
        client.notify("workspace/didChangeConfiguration", settings)
        assert client.status()["options"]["maxChars"] == 32
        assert client.inline(0, len(LAZY_TEXT)) == want
        assert client.shutdown() == 0
        assert "Traceback" not in client.stderr.decode(), client.stderr.decode()[-2000:]
    finally:
        client.close()


# ---- FIFOs and symlink loops ------------------------------------------------------------------


def fifo_model(work: Path) -> Path:
    directory = work / "fifo-model"
    directory.mkdir()
    for name in (files.META_FILE, files.WEIGHTS_FILE):
        os.mkfifo(directory / name)
    return directory


def test_fifo_models_are_refused_without_blocking(tmp_path: Path) -> None:
    directory = fifo_model(tmp_path)
    for args in (["info", str(directory)], ["complete", "--model", str(directory), "The"]):
        result = subprocess.run(
            [str(GHOSTWRITE), *args], capture_output=True, text=True, timeout=30, check=False
        )
        assert result.returncode == 1, result
        assert "not a regular file (a named pipe)" in result.stderr, result.stderr
    client = RawClient("--model", str(directory))
    try:
        client.initialize()
        # The reload and the shutdown arrive together: the reload is still in flight when the
        # shutdown cancels it.
        reload = {"command": "ghostwrite.reload"}
        client.send_bytes(
            encode(
                {
                    "jsonrpc": "2.0",
                    "id": 101,
                    "method": "workspace/executeCommand",
                    "params": reload,
                }
            )
            + encode({"jsonrpc": "2.0", "id": 102, "method": "shutdown", "params": None})
        )
        assert client.response(102) == {"jsonrpc": "2.0", "id": 102, "result": None}
        client.notify("exit")
        assert client.wait() == 0
    finally:
        client.close()
    client = RawClient("--model", str(directory))
    try:
        client.initialize()
        answer = client.call("workspace/executeCommand", {"command": "ghostwrite.reload"})
        assert answer["result"]["reloaded"] is False
        assert "not a regular file" in answer["result"]["problem"]
        assert client.shutdown() == 0
    finally:
        client.close()


def test_symlink_loops_and_fifos_in_a_corpus_are_skipped(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "looped", files=3)
    (corpus / "a").symlink_to(corpus / "b")
    (corpus / "b").symlink_to(corpus / "a")
    (corpus / "self").symlink_to(corpus / "self")
    os.mkfifo(corpus / "pipe.txt")
    found = scan([corpus])
    assert len(found.files) == 3
    assert found.skipped["symlink loops"] == 3
    assert found.skipped["not regular files"] == 1
    from ghostwrite.server.dictionary import index_workspace

    index = index_workspace([corpus])
    assert index.files == 3 and index.skipped["symlink loops"] == 3
    result = run_cli(corpus / "self", *TINY, "--out", tmp_path / "out", "--max-steps", "1")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().endswith("is a symlink loop"), result.stderr


# ---- signals -----------------------------------------------------------------------------------


def test_ctrl_c_in_the_final_evaluation_keeps_every_step(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "notes")
    out = tmp_path / "model"
    common = [corpus, *TINY, "--out", out, "--token-cache", tmp_path / "cache"]
    # A slow final evaluation (many windows, none during the loop) to interrupt.
    slow_eval = ["--max-steps", "20", "--eval-every", "1000", "--log-every", "20"]
    process = start(*common, *slow_eval, "--eval-windows", "60000", "--progress", "json")
    try:
        events = read_until(process, "step", 2)
        assert events[-1]["step"] == 20, events[-1]
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == (
        "ghostwrite train: interrupted by SIGINT at step 20; checkpoint saved, "
        "continue with --resume"
    ), stderr
    assert load_checkpoint(tmp_path / "model.checkpoint")[1]["loop"]["step"] == 20
    assert not out.exists()
    resumed = run_cli(*common, *slow_eval, "--eval-windows", "60000", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert load_model(out).card["steps"] == 20


def ours(traceback: str) -> list[str]:
    """The frames of a traceback in ghostwrite's own code (not the interpreter's start-up, its
    import machinery or the console-script wrapper pip writes, which run before it)."""
    packages = [f'File "{ROOT / name}/' for name in ("model", "server", "training")]
    return [line for line in traceback.splitlines() if any(p in line for p in packages)]


@pytest.fixture
def sigint_at_default() -> Iterator[None]:
    """Children start with SIGINT at its default action. A test run inside a background job
    inherits SIGINT ignored, which a child keeps until it sets a handler of its own, so a signal
    sent before that would be lost and the test would not test anything."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("sigint_at_default")
def test_early_ctrl_c_prints_no_traceback(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "notes", files=2)
    for delay in (0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.3):
        process = subprocess.Popen(
            # A bounded run: a lost signal shows as a finished run (exit 0), not a hang.
            [
                str(GHOSTWRITE),
                "train",
                str(corpus),
                "--out",
                str(tmp_path / "out"),
                "--max-steps",
                "3",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        # Once the first step has begun, the signal waits for it, and a first step compiles.
        _, stderr = process.communicate(timeout=180)
        assert ours(stderr) == [], (delay, stderr)
        if "Traceback" not in stderr and "Fatal Python error" not in stderr:
            assert process.returncode in (130, -signal.SIGINT), (delay, process.returncode)
            last = (stderr.strip().splitlines() or [""])[-1]
            checkpoint = tmp_path / "out.checkpoint"
            # A fast machine may already have taken a step: then the message must say what it
            # saved, and the checkpoint must be there; before that, nothing may be written.
            if re.fullmatch(SAVED_AT_STEP, last):
                assert checkpoint.is_dir(), (delay, stderr)
                shutil.rmtree(checkpoint)
            else:
                assert last in ("", *INTERRUPTED_QUIETLY), (delay, stderr)
                assert not checkpoint.exists(), (delay, stderr)
        assert not (tmp_path / "out").exists()


# ---- TCP -----------------------------------------------------------------------------------------


def tcp_server(model: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ghostwrite.server", "--model", str(model), "--tcp", port, *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not listening_addresses(int(port)):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the server never listened"
        time.sleep(0.1)
    return process, int(port)


def answers(connection: socket.socket, parser: FrameParser, msg_id: int) -> dict:
    while True:
        for body in parser.feed(connection.recv(1 << 16) or b"EOF"):
            if isinstance(body, bytes) and json.loads(body).get("id") == msg_id:
                return json.loads(body)


def initialize_over(connection: socket.socket) -> dict:
    params = {"processId": None, "rootUri": None, "capabilities": {}}
    connection.sendall(
        encode({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
    )
    return answers(connection, FrameParser(), 1)


@pytest.fixture
def stopped_at_end() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stderr is not None:
            process.stderr.close()


def test_tcp_serves_the_next_client_after_a_silent_or_vanished_one(
    scripted_model_dir: Path, stopped_at_end: list[subprocess.Popen[bytes]]
) -> None:
    process, port = tcp_server(scripted_model_dir, "--handshake-timeout", "1")
    stopped_at_end.append(process)
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as squatter:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as editor:
            # The silent first connection is dropped after a second; the editor waits its turn.
            assert "capabilities" in initialize_over(editor)["result"]
            assert time.monotonic() - began < 15
        assert squatter.recv(1) == b""  # closed by the server
    with socket.create_connection(("127.0.0.1", port), timeout=30) as half:
        half.sendall(b'Content-Length: 500\r\n\r\n{"jsonrpc": "2.0", ')  # leaves mid-frame
    with socket.create_connection(("127.0.0.1", port), timeout=30) as editor:
        assert "capabilities" in initialize_over(editor)["result"]
        editor.sendall(encode({"jsonrpc": "2.0", "method": "exit"}))
        assert process.wait(timeout=30) == 1  # exit without shutdown ends the server
