"""Setting a training run up: ranks, CPU streams and BLAS threads, the corpus and its tokens,
the model and its optimizer, and (``--resume``) the checkpointed state it continues from."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
from mlx.utils import tree_map, tree_unflatten

from ghostwrite.model import backend, files
from ghostwrite.model.gpt import GPT, load_weights

from . import parallel
from . import tokens as tokens_mod
from .checkpoint import CheckpointError, load_checkpoint, split_prefix
from .config import TrainConfig
from .corpus import CorpusError
from .errors import TrainingError
from .model_source import model_config, resumed_architecture
from .optimizers import make_optimizer
from .outputs import METRICS_FILE, check_destinations, trim_metrics
from .parallel import blas_thread_count, cpu_streams, json_from_rank0, stream_count
from .progress import Reporter
from .signals import StopFlag
from .step import make_eval_loss, make_train_step, step_seed


@dataclass
class LoopState:
    """Everything besides tensors that a checkpoint needs to continue the run exactly."""

    step: int = 0
    tokens_seen: int = 0
    elapsed_s: float = 0.0
    horizon: int | None = None  # steps the learning-rate schedule spans
    best_val: float | None = None
    best_step: int | None = None
    last_eval_step: int | None = None


def mlx_tree(arrays: dict[str, np.ndarray]) -> Any:
    return tree_unflatten([(name, mx.array(value)) for name, value in arrays.items()])


class RunSetup:
    """A run ready to train: ranks, CPU streams and BLAS threads, the corpus, the model and its
    optimizer, and the state of the checkpoint it resumes (``train.Run`` trains it)."""

    def __init__(self, cfg: TrainConfig, reporter: Reporter, stop: StopFlag) -> None:
        self.cfg = cfg
        self.stop = stop
        self.group = mx.distributed.init()
        self.rank, self.world = self.group.rank(), self.group.size()
        self.reporter = reporter
        self.reporter.silent = self.rank != 0
        if cfg.batch_size % self.world:
            raise TrainingError(
                f"--batch-size {cfg.batch_size} must be divisible by the {self.world} processes"
            )
        self.local_batch = cfg.batch_size // self.world
        self.streams = stream_count(cfg, self.local_batch, self.world)
        self.shard = self.local_batch // self.streams
        self.out = Path(cfg.out) if cfg.out else files.user_model_dir()
        self.ckpt_dir = (
            Path(cfg.checkpoint_dir)
            if cfg.checkpoint_dir
            else self.out.with_name(self.out.name + ".checkpoint")
        )
        check_destinations(cfg.paths, self.out, self.ckpt_dir)
        self.checkpoint_step: int | None = None  # the step of the checkpoint on disk
        self.model_cfg, init_weights, self.init_path = model_config(cfg)
        self.base_lr = cfg.learning_rate or (
            cfg.finetune_learning_rate if init_weights is not None else cfg.scratch_learning_rate
        )

        try:
            self.corpus, self.data = tokens_mod.prepare(
                cfg.paths, cfg.include, cfg.exclude, cfg.val_fraction, cfg.token_cache, cfg.hold_out
            )
        except CorpusError as err:
            raise TrainingError(str(err)) from None
        except OSError as err:
            raise TrainingError(f"cannot prepare the token cache: {err}") from None
        need = self.model_cfg.ctx_len + 1
        if self.corpus.tokens < need:
            raise TrainingError(
                f"the corpus has {self.corpus.tokens} bytes of text, less than one context "
                f"window ({need}); add more text or pick a smaller --preset"
            )
        self.train_len = min(self.model_cfg.ctx_len, len(self.data.train) - 1)
        self.val_len = min(self.model_cfg.ctx_len, len(self.data.val) - 1)

        # Rank 0 reads the checkpoint and sends it to the others.
        checkpoint = self._load_checkpoint() if cfg.resume and self.rank == 0 else None
        if cfg.resume and not cfg.init:
            saved_model = checkpoint[1].get("identity", {}).get("model") if checkpoint else None
            if self.world > 1:
                saved_model = json_from_rank0(self.rank, saved_model)
            self.model_cfg = resumed_architecture(self.model_cfg, saved_model)

        backend.set_blas_threads(blas_thread_count(cfg, self.streams, self.world))
        self.cpu_streams = cpu_streams(self.streams)
        if cfg.compile:
            backend.enable_native_jit()

        mx.random.seed(cfg.seed)  # identical initial weights on every rank
        self.model = GPT(self.model_cfg)
        if init_weights is not None:
            load_weights(self.model, init_weights)
        self.optimizer = make_optimizer(cfg, self.base_lr)
        self.optimizer.init(self.model.trainable_parameters())
        self.state = LoopState(horizon=self.fixed_horizon())
        self.best: dict[str, np.ndarray] | None = None
        if checkpoint is not None:
            self._restore(*checkpoint)
        if self.world > 1:
            self._sync_from_rank0()
        self.step_fn = make_train_step(
            self.model,
            self.optimizer,
            grad_clip=cfg.grad_clip,
            world=self.world,
            cpu_streams=self.cpu_streams,
            seed_dropout=self._seed_dropout,
            compile=cfg.compile,
        )
        self.eval_loss = make_eval_loss(self.model, cfg.compile)

    def fixed_horizon(self) -> int | None:
        """Steps implied by --max-steps / --epochs (a time budget is estimated later)."""
        limits = []
        if self.cfg.max_steps is not None:
            limits.append(self.cfg.max_steps)
        if self.cfg.epochs is not None:
            per_epoch = math.ceil(len(self.data.train) / (self.cfg.batch_size * self.train_len))
            limits.append(max(1, math.ceil(self.cfg.epochs * per_epoch)))
        return min(limits) if limits else None

    def checkpoint_identity(self) -> dict[str, Any]:
        """What must match for --resume to continue the same run."""
        return {
            "corpus_sha256": self.corpus.sha256,
            "model": self.model_cfg.to_dict(),
            "batch_size": self.cfg.batch_size,
            "optimizer": self.cfg.optimizer,
            "seed": self.cfg.seed,
            "val_fraction": self.cfg.val_fraction,
            "hold_out": sorted(self.cfg.hold_out),
        }

    @property
    def metrics_path(self) -> Path:
        return self.ckpt_dir / METRICS_FILE

    def _load_checkpoint(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        try:
            return load_checkpoint(self.ckpt_dir)
        except CheckpointError as err:
            raise TrainingError(str(err)) from None

    def _restore(self, arrays: dict[str, np.ndarray], saved: dict[str, Any]) -> None:
        identity = self.checkpoint_identity()
        differs = [k for k, v in identity.items() if saved.get("identity", {}).get(k) != v]
        if differs:
            raise TrainingError(
                f"the checkpoint in {self.ckpt_dir} is for a different run ({', '.join(differs)}"
                " changed); give the same corpus and settings, or train without --resume"
            )
        load_weights(self.model, split_prefix(arrays, "model"))
        self.optimizer.state = mlx_tree(split_prefix(arrays, "optimizer"))
        self.best = split_prefix(arrays, "best") or None
        loop = LoopState(**saved["loop"])
        fixed = self.fixed_horizon()
        # A longer --max-steps or --epochs extends the run; a time budget keeps its estimate.
        loop.horizon = fixed if fixed is not None else loop.horizon
        self.state = loop
        self.checkpoint_step = loop.step
        trim_metrics(self.metrics_path, loop.step)

    def _sync_from_rank0(self) -> None:
        """Make every rank start from rank 0's weights, optimizer state and loop state."""

        def from_rank0(a: mx.array) -> mx.array:
            return parallel.from_rank0(self.rank, a)

        self.model.update(tree_map(from_rank0, self.model.parameters()))
        self.optimizer.state = tree_map(from_rank0, self.optimizer.state)
        s = self.state
        counts = mx.array([s.step, s.tokens_seen, -1 if s.horizon is None else s.horizon])
        s.step, s.tokens_seen, horizon = from_rank0(counts.astype(mx.int64)).tolist()
        s.horizon = None if horizon < 0 else horizon
        s.elapsed_s = from_rank0(mx.array(s.elapsed_s)).item()
        mx.eval(self.model.parameters(), self.optimizer.state)

    def _seed_dropout(self, stream: int) -> None:
        shard = self.rank * self.streams + stream
        mx.random.seed(step_seed(self.cfg.seed, 0, self.state.step, 1 + shard))
