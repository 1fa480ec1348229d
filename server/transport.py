"""Framing of LSP messages (``Content-Length`` headers) that survives bad input.

pygls's reader loses its place for good after a wrong ``Content-Length`` or a header line it does
not expect, and a length that is too long blocks it waiting for bytes that never come. This
parser resynchronises on the next ``Content-Length:`` header instead, so the client's next
request is still answered. A message larger than ``MAX_MESSAGE_BYTES`` is skipped unread and one
nested deeper than ``MAX_DEPTH`` is never parsed (``too_deep``): both are answered with a
JSON-RPC error instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

HEADER_END = b"\r\n\r\n"
HEADER_START = re.compile(rb"content-length\s*:", re.IGNORECASE)
HEADER_LINE = re.compile(rb"[A-Za-z][A-Za-z0-9-]*[ \t]*:")
HEADER_NAME = re.compile(rb"[A-Za-z][A-Za-z0-9-]*")
# A raw CR LF cannot occur inside a JSON string, so this inside a body is always a real header.
INNER_HEADER = re.compile(rb"content-length[ \t]*:[ \t]*\d+[ \t]*\r\n", re.IGNORECASE)
CONTENT_LENGTH = re.compile(rb"content-length[ \t]*:[ \t]*(\d+)[ \t]*(?:\r\n|$)", re.IGNORECASE)
MAX_HEADER = 4096
MAX_JUNK = 1 << 20
# A 64 MiB document is far past what completion is for; the limit bounds the buffer.
MAX_MESSAGE_BYTES = 64 << 20
# LSP's own messages nest about ten levels; past this a message is refused unparsed (Python's
# parser and everything after it recurse once per level).
MAX_DEPTH = 100
JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
BRACKET_STEP = np.zeros(256, np.int8)
BRACKET_STEP[[ord("{"), ord("[")]] = 1
BRACKET_STEP[[ord("}"), ord("]")]] = -1


@dataclass(frozen=True)
class FrameError:
    """Bytes that could not be framed as a message; ``reason`` says why."""

    reason: str
    answer: bool = False  # tell the client (a JSON-RPC error with a null id), not just log


def too_deep(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON ``body`` nests arrays and objects deeper than ``limit``, without parsing it
    (brackets inside strings do not count)."""
    if body.count(b"{") + body.count(b"[") <= limit:
        return False  # the common case, without looking further
    steps = BRACKET_STEP[np.frombuffer(JSON_STRING.sub(b"", body), np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0)) > limit


class FrameParser:
    """Feed raw bytes, get message bodies (bytes) and ``FrameError``s in order."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.skipping = 0  # bytes of an oversized body still to drop

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        self.buffer += data
        frames: list[bytes | FrameError] = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)

    def _drop_junk(self) -> FrameError | None:
        """Drop bytes that cannot start a message, up to the next ``Content-Length`` header."""
        match = HEADER_START.search(self.buffer, 1)
        if match is None:
            if len(self.buffer) < MAX_JUNK:
                return None  # wait for the next header, to report the junk once
            # Keep a tail that may be the beginning of a header split across reads.
            cut = len(self.buffer) - len(b"content-length:")
        else:
            cut = match.start()
        junk = bytes(self.buffer[:cut])
        del self.buffer[:cut]
        return FrameError(f"bytes outside a message: {junk[:40]!r}") if junk.strip() else None

    def _skip(self) -> bool:
        """Drop what is left of an oversized body; True once it is gone. A header inside it
        means the declared length was wrong: the next message starts there."""
        inner = INNER_HEADER.search(self.buffer, 0, self.skipping)
        cut = inner.start() if inner else min(self.skipping, len(self.buffer))
        del self.buffer[:cut]
        self.skipping = 0 if inner else self.skipping - cut
        return not self.skipping

    def _next(self) -> bytes | FrameError | None:
        if self.skipping and not self._skip():
            return None
        while self.buffer[:1].isspace():
            del self.buffer[:1]
        if not self.buffer:
            return None
        if not HEADER_LINE.match(self.buffer) and not HEADER_NAME.fullmatch(self.buffer):
            error = self._drop_junk()
            if error is not None or not HEADER_LINE.match(self.buffer):
                return error
        end = self.buffer.find(HEADER_END)
        if end < 0:
            if len(self.buffer) <= MAX_HEADER:
                return None
            # Drop the oversized header (or it would be reported again on every call, forever),
            # up to the next Content-Length or a tail that may begin one split across reads.
            match = HEADER_START.search(self.buffer, 1)
            cut = match.start() if match else len(self.buffer) - len(b"content-length:")
            del self.buffer[:cut]
            return FrameError("header too long")
        header = bytes(self.buffer[:end])
        body_start = end + len(HEADER_END)
        match = CONTENT_LENGTH.search(header)
        if match is None:
            del self.buffer[:body_start]
            return FrameError(f"invalid header {header[:80]!r}")
        length = int(match.group(1))
        if length > MAX_MESSAGE_BYTES:
            del self.buffer[:body_start]
            self.skipping = length
            return FrameError(
                f"a message of {length:,} bytes is larger than the limit of "
                f"{MAX_MESSAGE_BYTES >> 20} MiB",
                answer=True,
            )
        available = self.buffer[body_start : body_start + length]
        # A header inside the body means the declared length was wrong: the body ends there.
        inner = INNER_HEADER.search(available)
        if inner is not None:
            body = bytes(available[: inner.start()])
            del self.buffer[: body_start + inner.start()]
            return body if _is_json(body) else FrameError("Content-Length does not match the body")
        if len(available) < length:
            body = bytes(available)
            # Too long a length would block forever; a body that is already complete JSON
            # cannot be the prefix of a longer valid message, so take it now.
            if body.rstrip().endswith(b"}") and _is_json(body):
                del self.buffer[: body_start + len(body)]
                return body
            return None
        del self.buffer[: body_start + length]
        return bytes(available)


def _is_json(body: bytes) -> bool:
    if too_deep(body):
        return False
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


class FrameWriter:
    """pygls's ``Writer`` over a write function (stdout's file descriptor or a TCP socket's),
    safe to call from any thread; ``written`` is called after each message."""

    def __init__(
        self, write: Callable[[bytes], None], written: Callable[[], None] = lambda: None
    ) -> None:
        self._write = write
        self._written = written
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._write(data)
        self._written()

    def close(self) -> None:
        """Part of pygls's ``Writer``; the session that made the connection closes it."""


def fd_writer(fd: int) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    return write


def start_fd_reader(fd: int, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
    """Read ``fd`` in a daemon thread (it must never keep the process alive) into ``queue``;
    an empty chunk marks the end of input."""

    def pump() -> None:
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                chunk = b""
            loop.call_soon_threadsafe(queue.put_nowait, chunk)
            if not chunk:
                return

    threading.Thread(target=pump, name="ghostwrite-stdin", daemon=True).start()
