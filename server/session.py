"""Serving a ``GhostwriteServer``: over stdio, or over TCP one client after another, each
connection's bytes framed and handed to the protocol until the client leaves or sends ``exit``."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable

from .server import GhostwriteServer
from .transport import FrameParser, FrameWriter, fd_writer, start_fd_reader

log = logging.getLogger(__name__)


def run_stdio(server: GhostwriteServer) -> int:
    """Serve on stdin/stdout. The protocol keeps a private copy of stdout and fd 1 becomes
    stderr, so stray prints (ours or a library's) can never corrupt the message stream."""
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    async def serve() -> None:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        start_fd_reader(0, asyncio.get_running_loop(), queue)
        server.begin_serving()
        try:
            writer = FrameWriter(fd_writer(out_fd), server.engine.answer_sent)
            await _session(server, queue.get, writer, None)
        finally:
            server.end_serving()

    asyncio.run(serve())
    return server.exit_code


def run_tcp(
    server: GhostwriteServer,
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
        loop = asyncio.get_running_loop()
        waiting: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        waiting = asyncio.Queue()
        listener = await asyncio.start_server(
            lambda reader, writer: waiting.put_nowait((reader, writer)), host, port
        )
        ready(", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in listener.sockets))
        server.begin_serving()
        stopped = asyncio.create_task(server.stopped.wait())
        try:
            while not server.stopped.is_set():
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

                framed = FrameWriter(write, server.engine.answer_sent)
                await _session(server, read, framed, handshake_timeout)
                writer.close()
                if not server.stopped.is_set():
                    server.forget_client()
        finally:
            stopped.cancel()
            listener.close()
            while not waiting.empty():
                waiting.get_nowait()[1].close()
            server.end_serving()

    asyncio.run(serve())
    return server.exit_code


async def _session(
    server: GhostwriteServer,
    read: Callable[[], Awaitable[bytes]],
    writer: FrameWriter,
    handshake_timeout: float | None,
) -> None:
    """One client's messages until it leaves, sends ``exit``, or (with a
    ``handshake_timeout``) sends no ``initialize`` in time."""
    loop = asyncio.get_running_loop()
    protocol = server.protocol
    protocol.set_writer(writer)
    parser = FrameParser()
    stopped = asyncio.create_task(server.stopped.wait())
    deadline = None if handshake_timeout is None else loop.time() + handshake_timeout
    try:
        while not server.stopped.is_set():
            reading = asyncio.create_task(read())
            timeout = None
            if deadline is not None and not protocol.initialize_received:
                timeout = max(0.0, deadline - loop.time())
            await asyncio.wait(
                {reading, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if not reading.done():
                reading.cancel()
                if not server.stopped.is_set():
                    log.warning(
                        "dropped a client that sent no initialize within %g s", handshake_timeout
                    )
                break
            chunk = reading.result()
            if not chunk:
                break
            for frame in parser.feed(chunk):
                protocol.handle_frame(frame)
                if server.stopped.is_set():
                    break
    finally:
        stopped.cancel()
