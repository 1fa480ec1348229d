"""Training checkpoints: one safetensors file holding the weights, the optimizer state and the
best weights so far as tensors, and the loop's state (step, RNG seed, data position, clock) as
JSON in the file's metadata. Never pickle.

The file is written to a temporary name, flushed to disk and renamed over the previous one, so
a crash or kill at any moment leaves the last complete checkpoint in place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

CHECKPOINT_FILE = "checkpoint.safetensors"
FORMAT = "ghostwrite-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file and the fault."""


def checkpoint_path(directory: Path) -> Path:
    return directory / CHECKPOINT_FILE


def save_checkpoint(directory: Path, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> Path:
    """Atomically replace the checkpoint in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    target = checkpoint_path(directory)
    tmp = directory / f".{CHECKPOINT_FILE}.{os.getpid()}.tmp"
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "state": json.dumps(state, sort_keys=True),
    }
    try:
        save_file({k: contiguous(v) for k, v in arrays.items()}, str(tmp), metadata)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(directory)
    return target


def contiguous(array: np.ndarray) -> np.ndarray:
    # np.ascontiguousarray would turn 0-d optimizer scalars into shape (1,).
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(directory: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, state) of the checkpoint in ``directory``."""
    path = checkpoint_path(directory)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint to resume from")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
        arrays = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint ({err})") from None
    if metadata.get("format") != FORMAT or metadata.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: not a version {FORMAT_VERSION} ghostwrite checkpoint")
    try:
        state = json.loads(metadata["state"])
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: checkpoint state is missing or not JSON") from None
    return arrays, state


def split_prefix(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays stored under ``prefix/``, with the prefix removed."""
    start = prefix + "/"
    return {k[len(start) :]: v for k, v in arrays.items() if k.startswith(start)}


def with_prefix(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}/{k}": v for k, v in arrays.items()}
