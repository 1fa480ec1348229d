"""How a run spreads over the machine: CPU streams and BLAS threads per process, and what the
processes of a distributed run agree on or take from rank 0."""

from __future__ import annotations

import json
import os
from typing import Any

import mlx.core as mx
import numpy as np

from .config import TrainConfig
from .errors import TrainingError


def stream_count(cfg: TrainConfig, local_batch: int, world: int) -> int:
    """CPU streams for this process: ``cfg.streams``, or cores / ranks (at most 4) lowered to a
    divisor of the per-process batch."""
    if cfg.streams:
        if local_batch % cfg.streams:
            raise TrainingError(
                f"the batch of {local_batch} per process must be divisible by "
                f"--streams {cfg.streams}"
            )
        return cfg.streams
    wanted = max(1, min(4, (os.cpu_count() or 1) // world))
    return next(n for n in range(wanted, 0, -1) if local_batch % n == 0)


def blas_thread_count(cfg: TrainConfig, streams: int, world: int) -> int:
    """``cfg.blas_threads``, or one per stream when the batch is split (the streams keep the
    cores busy), else up to 4 of the cores left to this process."""
    cores = os.cpu_count() or 1
    return cfg.blas_threads or (1 if streams > 1 else max(1, min(4, (cores - 1) // world)))


def cpu_streams(count: int) -> list[mx.Stream]:
    # The first stream is the default one (evaluation runs there too).
    return [mx.default_stream(mx.cpu)] + [mx.new_stream(mx.cpu) for _ in range(count - 1)]


def agree(
    rank: int, world: int, stop: bool, time_up: bool, estimate: int
) -> tuple[bool, bool, int]:
    """(any rank stopping, rank 0's time being up, rank 0's step estimate) on every rank."""
    if world == 1:
        return stop, time_up, estimate
    mine = [float(stop), float(time_up and rank == 0), float(estimate * (rank == 0))]
    stop_sum, time_sum, est = mx.distributed.all_sum(mx.array(mine)).tolist()
    return stop_sum > 0, time_sum > 0, int(est)


def from_rank0(rank: int, a: mx.array) -> mx.array:
    """Rank 0's value of ``a`` on every rank."""
    return mx.distributed.all_sum(a if rank == 0 else mx.zeros_like(a))


def json_from_rank0(rank: int, value: Any) -> Any:
    """Rank 0's JSON-serialisable ``value`` on every rank (the others pass anything)."""
    data = json.dumps(value).encode() if rank == 0 else b""
    size = int(from_rank0(rank, mx.array(len(data))).item())
    padded = np.zeros(size, np.int32)
    padded[: len(data)] = np.frombuffer(data, np.uint8)
    return json.loads(np.array(from_rank0(rank, mx.array(padded))).astype(np.uint8).tobytes())
