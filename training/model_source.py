"""The model a run trains: a preset with the run's changes, the model it fine-tunes, or, on
--resume, the architecture of the run being continued."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from ghostwrite.model import files
from ghostwrite.model.config import PRESETS, GPTConfig

from .config import TrainConfig
from .errors import TrainingError

# What a run's settings size (the preset and the shape flags) and the dropout it trains with;
# every other ``GPTConfig`` field is the architecture.
SIZE_FIELDS = ("vocab_size", "ctx_len", "n_emb", "n_heads", "n_layers", "dropout")
ARCHITECTURE_FIELDS = tuple(f.name for f in fields(GPTConfig) if f.name not in SIZE_FIELDS)


def model_config(cfg: TrainConfig) -> tuple[GPTConfig, dict[str, np.ndarray] | None, Path | None]:
    """(config, starting weights, the model directory they come from); no weights and no
    directory for a model trained from scratch."""
    if cfg.init:
        path = files.resolve_model_dir(cfg.init)
        try:
            init = files.load_model(path)
        except files.ModelFileError as err:
            raise TrainingError(f"cannot fine-tune from {cfg.init}: {err}") from None
        model_cfg, weights = init.config, init.weights
    else:
        if cfg.preset not in PRESETS:
            raise TrainingError(f"unknown preset {cfg.preset!r} (choose from {', '.join(PRESETS)})")
        try:
            model_cfg = PRESETS[cfg.preset].with_changes(**cfg.architecture)
        except (TypeError, ValueError) as err:
            raise TrainingError(f"invalid architecture: {err}") from None
        weights, path = None, None
    if cfg.shape_changes():
        if cfg.init:
            raise TrainingError(
                "a fine-tuned model keeps the shape of the model it starts from: "
                "drop --ctx-len/--n-emb/--n-heads/--n-layers or --init"
            )
        try:
            model_cfg = model_cfg.with_changes(**cfg.shape_changes())
        except ValueError as err:
            raise TrainingError(f"invalid model shape: {err}") from None
    return model_cfg.with_changes(dropout=cfg.dropout), weights, path


def resumed_architecture(model_cfg: GPTConfig, saved_model: Any) -> GPTConfig:
    """``model_cfg`` with the architecture of the checkpointed run's model (``saved_model``, its
    ``GPTConfig`` as a dict), so that a checkpoint outlives a change of the defaults for new
    models. The size still comes from the settings: the checkpoint's identity check refuses a
    different one, as it does a ``saved_model`` that is no valid config."""
    if not isinstance(saved_model, dict):
        return model_cfg
    saved = {name: saved_model[name] for name in ARCHITECTURE_FIELDS if name in saved_model}
    try:
        return model_cfg.with_changes(**saved)
    except (TypeError, ValueError):
        return model_cfg
