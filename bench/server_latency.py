"""Keystroke-to-suggestion latency of the language server, measured by an LSP client over stdio.

    python bench/server_latency.py --model DIR [--file F] [--chars 1500] [--stop line]
        [--workspace DIR]

Starts ``python -m ghostwrite.server``, opens a document holding the text before a held-out span
and replays typing the span one character at a time: an incremental didChange, then an inline
completion request, timed from sending the request to reading its answer. Each keystroke comes
``--pause-ms`` after the last answer (a fast typist's pace): the server does its work between
keystrokes in that gap (it prefills the model's next window behind each answer); 0 types back
to back, each request then also waiting for the work behind the one before. Prints
p50/p95/p99 round-trip ms and how often a suggestion was shown. Targets: p50 < 10 ms, p99 < 30
ms for 32-character suggestions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ghostwrite.server.documents import UTF16, code_units
from ghostwrite.server.suggester import SuggestOptions
from ghostwrite.server.transport import FrameParser

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_FILE = DATA / "gutenberg-the-time-machine.txt"  # held out by the bundled model's training
# From an answer to the next keystroke: a fast typist's keys are 60-100 ms apart.
TYPING_PAUSE_S = 0.05


def load_text(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig").replace("\r\n", "\n")


class Client:
    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.parser = FrameParser()
        self.pending: list[dict] = []
        self.next_id = 0

    def send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: object) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def call(self, method: str, params: object) -> dict:
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        while True:
            for message in self.pending:
                if message.get("id") == self.next_id and "method" not in message:
                    self.pending.remove(message)
                    return message
            assert self.process.stdout is not None
            chunk = os.read(self.process.stdout.fileno(), 1 << 16)
            if not chunk:
                raise SystemExit("server exited")
            for frame in self.parser.feed(chunk):
                if isinstance(frame, bytes):
                    message = json.loads(frame)
                    if "method" in message and "id" in message:  # a server request
                        self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
                    else:
                        self.pending.append(message)
                    self.pending = self.pending[-50:]


@dataclass
class Typing:
    """One replay: round-trip ms and suggestion length (0: none shown) per keystroke."""

    times_ms: np.ndarray
    lengths: np.ndarray
    cold_start_ms: float  # from starting the server process to its first answer

    def row(self) -> str:
        ms, shown = self.times_ms, self.lengths
        mean_length = shown[shown > 0].mean() if (shown > 0).any() else 0
        return (
            f"{np.percentile(ms, 50):.2f} | {np.percentile(ms, 95):.2f} | "
            f"{np.percentile(ms, 99):.2f} | {ms.max():.1f} | {(shown > 0).mean():.0%} | "
            f"{mean_length:.1f}"
        )


def replay(
    model: str,
    prefix: str,
    span: str,
    settings: dict[str, object],
    workspace: Path | None = None,
    pause_s: float = TYPING_PAUSE_S,
) -> Typing:
    """Start the server on ``model``, open a document holding ``prefix`` and type ``span``,
    asking for an inline completion after every character."""
    launched = time.perf_counter()
    client = Client([sys.executable, "-m", "ghostwrite.server", "--model", model])
    folders = None
    if workspace:
        folders = [{"uri": workspace.resolve().as_uri(), "name": "bench"}]
    client.call(
        "initialize",
        {
            "processId": None,
            "capabilities": {},
            "initializationOptions": {"ghostwrite": settings},
            "workspaceFolders": folders,
        },
    )
    client.notify("initialized", {})
    while workspace:  # wait for the index: typing starts with the dictionary in place
        status = client.call("workspace/executeCommand", {"command": "ghostwrite.status"})
        if index := status["result"]["workspaceIndex"]:
            print(f"workspace dictionary: {index['files']} files, {index['bytes']} bytes")
            break
        time.sleep(0.2)
    uri = "file:///bench/typing.txt"
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "plaintext", "version": 1, "text": prefix}},
    )
    line = prefix.count("\n")
    column = code_units(prefix[prefix.rfind("\n") + 1 :], UTF16)
    times: list[float] = []
    lengths: list[int] = []
    for version, ch in enumerate(span, start=2):
        here = {"line": line, "character": column}
        client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": {"start": here, "end": here}, "text": ch}],
            },
        )
        if ch == "\n":
            line, column = line + 1, 0
        else:
            column += code_units(ch, UTF16)
        start = time.perf_counter()
        answer = client.call(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": line, "character": column},
                "context": {"triggerKind": 2},
            },
        )
        times.append((time.perf_counter() - start) * 1000)
        if len(times) == 1:
            cold_start_ms = (time.perf_counter() - launched) * 1000
        items = answer["result"]["items"]
        lengths.append(len(items[0]["insertText"]) if items else 0)
        time.sleep(pause_s)
    client.call("shutdown", None)
    client.notify("exit", None)
    client.process.wait()
    return Typing(np.array(times), np.array(lengths), cold_start_ms)


HEADER = (
    "| round trip | p50 ms | p95 ms | p99 ms | max ms | suggestions shown | mean length |\n"
    "|---|---|---|---|---|---|---|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model directory")
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="held-out text")
    parser.add_argument("--start", type=int, default=50_000, help="where the span starts")
    parser.add_argument("--chars", type=int, default=1500, help="characters to type")
    parser.add_argument("--context", type=int, default=2000, help="text already in the document")
    parser.add_argument("--max-chars", type=int, default=32)
    parser.add_argument("--stop", default="line", choices=("word", "phrase", "line"))
    parser.add_argument("--confidence", type=float, default=0.0)
    parser.add_argument(
        "--pause-ms",
        type=float,
        default=TYPING_PAUSE_S * 1000,
        help="from an answer to the next keystroke (default: %(default)g)",
    )
    parser.add_argument(
        "--workspace", type=Path, help="a workspace folder (its words go in the dictionary)"
    )
    parser.add_argument(
        "--adaptive",
        action=argparse.BooleanOptionalAction,
        default=SuggestOptions.adaptive,
        help="the adaptive option (the server's default: %(default)s)",
    )
    args = parser.parse_args()

    text = load_text(args.file)
    prefix = text[max(0, args.start - args.context) : args.start]
    span = text[args.start : args.start + args.chars]
    settings = {"maxChars": args.max_chars, "stop": args.stop, "confidence": args.confidence}
    settings["adaptive"] = args.adaptive
    typing = replay(args.model, prefix, span, settings, args.workspace, args.pause_ms / 1000)
    print(
        f"model {args.model}; {len(span)} keystrokes of {args.file.name}, {args.pause_ms:g} ms "
        f"apart; settings {settings}; workspace {args.workspace}"
    )
    print(HEADER)
    print(f"| keystroke -> inline completion | {typing.row()} |")
    print(f"\ncold start (server process start to its first answer): {typing.cold_start_ms:.0f} ms")


if __name__ == "__main__":
    main()
