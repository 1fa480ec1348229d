"""The optimizers: Muon for the blocks' matrices, AdamW (decaying matrices only) for the rest."""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx
import mlx.optimizers as optim

from .config import TrainConfig


class ScaledOptimizers(optim.MultiOptimizer):
    """Optimizers for disjoint groups of parameters whose learning rates keep fixed ratios to
    the schedule's rate (``MultiOptimizer`` gives them all the same rate)."""

    def __init__(
        self,
        optimizers: list[optim.Optimizer],
        filters: list[Callable[[str, mx.array], bool]],
        scales: list[float],
    ) -> None:
        super().__init__(optimizers, filters)
        self.scales = scales

    @property
    def learning_rate(self) -> mx.array:
        return self.optimizers[-1].learning_rate / self.scales[-1]

    @learning_rate.setter
    def learning_rate(self, learning_rate: float | mx.array) -> None:
        for optimizer, scale in zip(self.optimizers, self.scales, strict=True):
            optimizer.learning_rate = learning_rate * scale


def is_hidden_matrix(path: str, weight: mx.array) -> bool:
    """The blocks' weight matrices, which Muon updates (not the embeddings, the blocks' value
    embeddings included, or the head)."""
    return weight.ndim == 2 and path.startswith("blocks.") and "value_embed" not in path


def is_matrix(_path: str, weight: mx.array) -> bool:
    return weight.ndim >= 2


def make_optimizer(cfg: TrainConfig, lr: float) -> optim.Optimizer:
    """AdamW whose weight decay applies to matrices only (not to biases and LayerNorm gains),
    with Muon for the blocks' matrices unless ``cfg.optimizer`` is "adamw"."""
    betas = [cfg.beta1, cfg.beta2]
    adamw = [
        optim.AdamW(lr, betas=betas, weight_decay=cfg.weight_decay),
        optim.AdamW(lr, betas=betas, weight_decay=0.0),
    ]
    if cfg.optimizer == "adamw":
        return optim.MultiOptimizer(adamw, [is_matrix])
    scale = cfg.muon_learning_rate / cfg.scratch_learning_rate
    # MLX's Muon adds its weight decay to the gradient, which the orthogonalisation then
    # normalises away; its updates have a fixed scale anyway.
    muon = optim.Muon(lr * scale, momentum=cfg.muon_momentum, weight_decay=0.0)
    return ScaledOptimizers([muon, *adamw], [is_hidden_matrix, is_matrix], [scale, 1.0, 1.0])
