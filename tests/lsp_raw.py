"""A raw-stdio LSP client for tests and benchmarks: the server as a plain subprocess, every byte
it writes to stdout recorded and framed by the server's own parser."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ghostwrite.server.transport import FrameError, FrameParser

TIMEOUT = 30.0


def frame(body: bytes, length: int | None = None) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % (len(body) if length is None else length) + body


def encode(message: dict[str, Any]) -> bytes:
    return frame(json.dumps(message).encode())


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
        assert self.process.stdout is not None
        while chunk := self._read_chunk():
            self.stdout += chunk
            for item in parser.feed(chunk):
                if isinstance(item, FrameError):
                    self.errors.append(item)
                else:
                    self.messages.put(json.loads(item))
        self.messages.put(None)

    def _read_chunk(self) -> bytes:
        """The next bytes of stdout; empty at its end, or once the test closed it (a client
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


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid``."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
