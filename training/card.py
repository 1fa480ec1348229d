"""The model card: what a trained model was trained on, how, and how well it did."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np

from ghostwrite.model import tokenizer

from .config import TrainConfig
from .corpus import Corpus
from .evaluate import bits_per_char
from .tokens import TokenData


def val_bits_per_char(nats_per_byte: float, data: np.ndarray) -> float:
    """A per-byte loss over ``data`` as bits per character (UTF-8 continuation bytes are no
    characters)."""
    return bits_per_char(nats_per_byte * len(data), tokenizer.count_chars(data))


def machine_description(world: int) -> str:
    device = "gpu" if mx.default_device() == mx.gpu else "cpu"
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"mlx {mx.__version__} ({device}), {world} process{'es' if world > 1 else ''}"
    )


def model_card(
    cfg: TrainConfig,
    corpus: Corpus,
    data: TokenData,
    *,
    init_path: Path | None,
    steps: int,
    best_step: int | None,
    tokens_seen: int,
    train_loss: float,
    val_loss: float,
    learning_rate: float,
    world: int,
    wall_time_s: float,
) -> dict[str, Any]:
    """The card saved with the model; ``val_loss`` is the best validation loss (nats/byte)."""
    return {
        "corpus": corpus.summary() | data.summary(),
        "preset": None if init_path else cfg.preset,
        "init": str(init_path) if init_path else None,
        "steps": steps,
        "best_step": best_step,
        "tokens_seen": tokens_seen,
        "train_loss": round(train_loss, 4),
        "val_loss": round(val_loss, 4),
        "bits_per_char": round(val_bits_per_char(val_loss, data.val), 4),
        "batch_size": cfg.batch_size,
        "learning_rate": learning_rate,
        "seed": cfg.seed,
        "command": cfg.command,
        "machine": machine_description(world),
        "wall_time_s": round(wall_time_s, 1),
    }
