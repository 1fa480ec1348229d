"""Faults the language server must survive, for the robustness tests and the robustness report:
messages whose params do not fit their method, and the served model's files broken in place
(and put back) while the server runs."""

from __future__ import annotations

import shutil
from pathlib import Path

from ghostwrite.model import files
from ghostwrite.server.client import URI, inline_params

MODEL_FAULTS = ("deleted", "truncated", "garbage", "unreadable")

# (method, params) pairs that do not fit the method's parameter types.
INVALID_REQUESTS = [
    ("textDocument/inlineCompletion", None),
    ("textDocument/inlineCompletion", {"textDocument": {"uri": URI}}),
    (
        "textDocument/inlineCompletion",
        dict(inline_params(0, 3), position={"line": -1, "character": 0}),
    ),
    ("textDocument/inlineCompletion", dict(inline_params(0, 3), textDocument="a.txt")),
    ("textDocument/completion", None),
    ("textDocument/completion", {"textDocument": {"uri": 5}, "position": {"line": 0}}),
    ("textDocument/completion", dict(inline_params(0, 3), position=[0, 3])),
    ("workspace/executeCommand", None),
    ("workspace/executeCommand", {"command": 5}),
    ("workspace/executeCommand", {"command": "ghostwrite.status", "arguments": 5}),
]
INVALID_NOTIFICATIONS = [
    ("textDocument/didOpen", None),
    ("textDocument/didOpen", {"textDocument": {"uri": URI, "text": 5}}),
    ("textDocument/didChange", {"textDocument": {"uri": URI, "version": "2"}}),
    (
        "textDocument/didChange",
        {
            "textDocument": {"uri": URI, "version": 2},
            "contentChanges": [{"range": {"start": 0, "end": 1}, "text": "x"}],
        },
    ),
    ("textDocument/didChange", {"textDocument": {"uri": URI, "version": 2}, "contentChanges": 1}),
    ("textDocument/didClose", {"textDocument": {}}),
    ("workspace/didChangeConfiguration", None),
    ("workspace/didChangeConfiguration", {"settings": {"ghostwrite": {"candidates": "many"}}}),
    ("$/cancelRequest", {"id": [1]}),
    ("$/cancelRequest", None),
    ("window/workDoneProgress/cancel", {"token": {"x": 1}}),
    ("initialized", 5),
    ("$/setTrace", {"value": "loud"}),
]


def break_model(directory: Path, how: str) -> None:
    """Break the model in ``directory`` one of the ways in ``MODEL_FAULTS``."""
    weights = directory / files.WEIGHTS_FILE
    if how == "unreadable":
        directory.chmod(0)
    elif how == "deleted":
        weights.unlink()
    elif how == "truncated":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 3])
    else:
        weights.write_bytes(bytes(range(256)) * 64)


def repair_model(directory: Path, good: Path) -> None:
    """Undo ``break_model``: readable again, with the weights of the model in ``good``."""
    directory.chmod(0o755)
    (directory / files.WEIGHTS_FILE).unlink(missing_ok=True)
    shutil.copy(good / files.WEIGHTS_FILE, directory / files.WEIGHTS_FILE)
