"""Shared fixtures: a real tiny model, trained once per test session on real prose."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ghostwrite.model import backend

backend.setup_mlx()  # before any test imports mlx.core: the fast BLAS for in-process training

# The shared public-domain texts live beside the project (../shared/data); tests that need them
# skip when they are absent.
SHARED_DATA = Path(
    os.environ.get(
        "GHOSTWRITE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
    )
)

# Real prose for tests that do not need the shared books (which may be absent).
PROSE = (
    "The quick brown fox jumps over the lazy dog. The dog sleeps in the sun, and the fox runs "
    "into the forest. In the forest the fox finds a river, and the river runs to the sea. "
    "The sea is wide and blue, and the fox looks at the sea for a long time. Then the fox goes "
    "home to the forest, where the trees are tall and green, and the fox sleeps until morning. "
)


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
    a line break "lazy", on every machine (``tests/scripted.py``)."""
    from tests.scripted import LAZY, save_scripted_model

    return save_scripted_model(tmp_path_factory.mktemp("models") / "scripted", LAZY)
