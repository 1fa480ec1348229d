"""A raw-stdio client for the language server, for the test suite and the benchmarks: the server
as a plain subprocess, every byte it writes to stdout recorded and framed by the server's own
parser, the messages they send built as JSON, and the server process inspected through /proc
(its children, whether a process runs, its peak memory)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ghostwrite.server.documents import UTF8, UTF16
from ghostwrite.server.transport import FrameError, FrameParser

TIMEOUT = 30.0
URI = "file:///a.txt"  # the document of callers that open only one

T = TypeVar("T")


def frame(body: bytes, length: int | None = None) -> bytes:
    """``body`` behind a Content-Length header (``length`` to declare another, wrong length)."""
    return b"Content-Length: %d\r\n\r\n" % (len(body) if length is None else length) + body


def encode(message: dict[str, Any]) -> bytes:
    return frame(json.dumps(message).encode())


def open_params(text: str, uri: str = URI, version: int = 1) -> dict[str, Any]:
    item = {"uri": uri, "languageId": "plaintext", "version": version, "text": text}
    return {"textDocument": item}


def inline_params(line: int, character: int, uri: str = URI) -> dict[str, Any]:
    """Params of an inline completion the editor asked for on its own (trigger kind 2)."""
    return {
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 2},
    }


def insert(version: int, line: int, character: int, text: str, uri: str = URI) -> dict[str, Any]:
    """A didChange notification typing ``text`` at a position."""
    here = {"line": line, "character": character}
    change = {"range": {"start": here, "end": here}, "text": text}
    params = {"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]}
    return {"jsonrpc": "2.0", "method": "textDocument/didChange", "params": params}


def unit_length(ch: str, encoding: str) -> int:
    if encoding == UTF8:
        return len(ch.encode("utf-8", "surrogatepass"))
    if encoding == UTF16:
        return 2 if ord(ch) > 0xFFFF else 1
    return 1


def reference_offset(text: str, line: int, character: int, encoding: str) -> int:
    """The LSP's rules spelled out on a plain string: lines end at CR LF, CR or LF; a position
    inside a character rounds down to it; past a line's end or the last line clamps."""
    spans: list[tuple[int, int]] = []
    start = i = 0
    while i < len(text):
        if text[i] in "\r\n":
            spans.append((start, i))
            i += 2 if text[i : i + 2] == "\r\n" else 1
            start = i
        else:
            i += 1
    spans.append((start, len(text)))
    if line >= len(spans):
        return len(text)
    offset, end = spans[line]
    units = 0
    while offset < end and units + unit_length(text[offset], encoding) <= character:
        units += unit_length(text[offset], encoding)
        offset += 1
    return offset


def wait_for(what: str, probe: Callable[[], T], timeout: float = TIMEOUT) -> T:
    """Polls ``probe`` until it returns something truthy, and returns that."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


def without_root_powers() -> list[str] | None:
    """A command prefix under which file permissions apply even to root (which otherwise reads
    anything): drops the capabilities that bypass them. None where that cannot be done."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        return None
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}"]


class RawClient:
    """The server as a subprocess; every byte it writes to stdout is recorded and must frame."""

    def __init__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        wrapper: Sequence[str] = (),
        root: Path | None = None,
    ) -> None:
        self.root = root  # the workspace folder ``initialize`` names (None: no workspace)
        self.process = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "ghostwrite.server", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.stdout = bytearray()
        self.messages: queue.Queue[Any] = queue.Queue()
        self.errors: list[FrameError] = []
        self.stderr = bytearray()
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        parser = FrameParser()
        while chunk := self._read_chunk():
            self.stdout += chunk
            for item in parser.feed(chunk):
                if isinstance(item, FrameError):
                    self.errors.append(item)
                else:
                    self.messages.put(json.loads(item))
        self.messages.put(None)

    def _read_chunk(self) -> bytes:
        """The next bytes of stdout; empty at its end, or once the caller closed it (a client
        that hangs up)."""
        assert self.process.stdout is not None
        try:
            return os.read(self.process.stdout.fileno(), 1 << 16)
        except (OSError, ValueError):
            return b""

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while chunk := os.read(self.process.stderr.fileno(), 1 << 16):
            self.stderr += chunk

    def send_bytes(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_bytes(encode(message))

    def request(self, method: str, params: Any = None) -> int:
        self._next_id += 1
        self.send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        return self._next_id

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def response(self, msg_id: Any) -> dict[str, Any]:
        """Wait for the response to ``msg_id`` (server requests get a null result)."""
        while True:
            message = self.messages.get(timeout=TIMEOUT)
            if message is None:
                raise EOFError(f"server exited; stderr: {self.stderr.decode()[-2000:]}")
            if "method" in message and "id" in message:
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif "method" not in message and message.get("id") == msg_id:
                return message

    def call(self, method: str, params: Any = None) -> dict[str, Any]:
        return self.response(self.request(method, params))

    def initialize(self, capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
        root_uri = self.root.resolve().as_uri() if self.root is not None else None
        result = self.call(
            "initialize",
            {"processId": None, "rootUri": root_uri, "capabilities": capabilities or {}},
        )
        self.notify("initialized", {})
        return result

    def inline(self, line: int, character: int, uri: str = URI) -> list[str]:
        """The texts of the inline completion at a position (which must not be an error)."""
        answer = self.call("textDocument/inlineCompletion", inline_params(line, character, uri))
        assert "error" not in answer, answer
        return [item["insertText"] for item in answer["result"]["items"]]

    def status(self) -> dict[str, Any]:
        return self.call("workspace/executeCommand", {"command": "ghostwrite.status"})["result"]

    def shutdown(self) -> int:
        """Shut the server down the way an editor does; its exit status."""
        assert self.call("shutdown")["result"] is None
        self.notify("exit")
        return self.wait()

    def wait(self) -> int:
        return self.process.wait(timeout=TIMEOUT)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmHWM for process {pid}")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        # The command name is in parentheses and may contain them; the state follows the last.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def children(pid: int) -> list[int]:
    """The running child processes of ``pid`` (none once ``pid`` is gone)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
    except FileNotFoundError:
        return []
    return [child for child in found if alive(child)]
