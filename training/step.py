"""The compiled training step (shards on CPU streams, averaged gradients, one update) and the
loss on fixed windows used for evaluation."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.nn.utils import average_gradients
from mlx.utils import tree_map

from ghostwrite.model.gpt import GPT, cross_entropy

Shards = Sequence[tuple[mx.array, mx.array]]
EvalLoss = Callable[[mx.array, mx.array], mx.array]


def step_seed(seed: int, rank: int, step: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, rank, step, stream]).generate_state(1)[0])


def windows(data: np.ndarray, starts: np.ndarray, length: int) -> tuple[mx.array, mx.array]:
    """Inputs and next-token targets for windows of ``length`` starting at ``starts``."""
    batch = data[starts[:, None] + np.arange(length + 1)].astype(np.int32)
    return mx.array(batch[:, :-1]), mx.array(batch[:, 1:])


def make_train_step(
    model: GPT,
    optimizer: optim.Optimizer,
    *,
    grad_clip: float,
    world: int,
    cpu_streams: Sequence[mx.Stream],
    seed_dropout: Callable[[int], None],
    compile: bool,
) -> Callable[[Shards], mx.array]:
    """The step: shards (inputs, targets), one per stream -> the mean loss (lazy).
    ``seed_dropout(i)`` seeds the dropout masks of shard ``i`` before its gradient is taken."""
    loss_and_grad = nn.value_and_grad(model, cross_entropy)

    def update(losses: list[mx.array], grads: list[Any]) -> mx.array:
        n = len(grads)
        loss = losses[0] if n == 1 else sum(losses[1:], losses[0]) / n
        mean = grads[0] if n == 1 else tree_map(lambda *g: sum(g[1:], g[0]) / n, *grads)
        if world > 1:
            mean = average_gradients(mean)
            loss = mx.distributed.all_sum(loss) / world
        if grad_clip > 0:
            mean, _ = optim.clip_grad_norm(mean, grad_clip)
        optimizer.update(model, mean)
        return loss

    def whole(x: mx.array, y: mx.array) -> mx.array:
        loss, grads = loss_and_grad(model, x, y)
        return update([loss], [grads])

    def shard_grad(x: mx.array, y: mx.array) -> tuple[mx.array, Any]:
        weights = model.trainable_parameters()
        loss, grads = loss_and_grad(model, x, y)
        # value_and_grad leaves its own tracers in the model; put back what mx.compile
        # gave us, which it swaps for the real arrays afterwards.
        model.update(weights)
        return loss, grads

    if compile:
        weights, rng = [model.state], [mx.random.state]
        everything = [model.state, optimizer.state, mx.random.state]
        whole = mx.compile(whole, inputs=everything, outputs=everything)
        # MLX keeps one compiled graph per default stream, so each stream gets its own.
        shard_grad = mx.compile(shard_grad, inputs=weights + rng, outputs=rng)
        optimizer_state = [model.state, optimizer.state]
        update = mx.compile(update, inputs=optimizer_state, outputs=optimizer_state)

    def step(shards: Shards) -> mx.array:
        if len(shards) == 1:
            seed_dropout(0)
            return whole(*shards[0])
        losses, grads = [], []
        for i, ((x, y), stream) in enumerate(zip(shards, cpu_streams, strict=True)):
            seed_dropout(i)
            with mx.stream(stream):
                loss, grad = shard_grad(x, y)
            losses.append(loss)
            grads.append(grad)
        return update(losses, grads)

    return step


def make_eval_loss(model: GPT, compile: bool) -> EvalLoss:
    def loss(x: mx.array, y: mx.array) -> mx.array:
        return cross_entropy(model, x, y)

    return partial(mx.compile, inputs=[model.state])(loss) if compile else loss


class EvaluationCut(Exception):
    """An evaluation stopped before its last batch; it has no result."""


def mean_loss(
    model: GPT,
    eval_loss: EvalLoss,
    data: np.ndarray,
    length: int,
    batch: int,
    n_windows: int,
    should_stop: Callable[[], bool] = lambda: False,
) -> float:
    """Loss on ``n_windows`` (rounded up to whole batches) fixed, evenly spaced windows of
    ``data``, without dropout; raises ``EvaluationCut`` when ``should_stop()`` (polled between
    batches) says so."""
    n_batches = max(1, math.ceil(n_windows / batch))
    starts = np.linspace(0, len(data) - length - 1, n_batches * batch).round().astype(np.int64)
    total = 0.0
    model.eval()  # no dropout
    try:
        for i in range(n_batches):
            if should_stop():
                raise EvaluationCut
            x, y = windows(data, starts[i * batch : (i + 1) * batch], length)
            total += eval_loss(x, y).item()
    finally:
        model.train()
    return total / n_batches
