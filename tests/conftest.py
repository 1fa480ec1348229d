"""Shared fixtures: a real tiny model, trained once per test session on real prose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ghostwrite.model import backend
from ghostwrite.training.harness import PROSE

backend.setup_mlx()  # before any test imports mlx.core: the fast BLAS for in-process training


@pytest.fixture(scope="session")
def prose() -> str:
    return PROSE * 20


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, prose: str) -> Path:
    """A real model (the 'tiny' preset) fitted for a few hundred steps on ``prose``."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim

    from ghostwrite.model import PRESETS, save_model, tokenizer
    from ghostwrite.model.gpt import GPT, cross_entropy, weights_to_numpy

    cfg = PRESETS["tiny"]
    mx.random.seed(0)
    rng = np.random.default_rng(0)
    model = GPT(cfg)
    optimizer = optim.AdamW(learning_rate=3e-3, weight_decay=0.0)
    data = tokenizer.encode(prose).astype(np.int32)
    loss_and_grad = nn.value_and_grad(model, cross_entropy)
    for _ in range(300):
        starts = rng.integers(0, len(data) - cfg.ctx_len - 1, size=16)
        x = mx.array(np.stack([data[s : s + cfg.ctx_len] for s in starts]))
        y = mx.array(np.stack([data[s + 1 : s + cfg.ctx_len + 1] for s in starts]))
        loss, grads = loss_and_grad(model, x, y)
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state)
    directory = tmp_path_factory.mktemp("models") / "tiny"
    save_model(
        directory,
        cfg,
        weights_to_numpy(model),
        {"corpus": {"note": "tests/conftest.py prose"}, "train_loss": loss.item()},
    )
    return directory


@pytest.fixture(scope="session")
def scripted_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory whose only confident suggestion after ``LAZY_TEXT`` is "zy", and after
    a line break "lazy", on every machine (``tests/helpers/scripted.py``)."""
    from tests.helpers.scripted import LAZY, save_scripted_model

    return save_scripted_model(tmp_path_factory.mktemp("models") / "scripted", LAZY)
