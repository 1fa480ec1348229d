"""The training loop: fit a GPT to a corpus within a step, epoch or time budget.

Random windows of the training tokens, AdamW with warm-up and cosine decay, gradient clipping,
weight decay on matrices only, a compiled step. Every random draw is derived from
(seed, step, shard), so the step number is the whole RNG state and data position: a resumed run
takes exactly the batches and dropout masks the uninterrupted run would have.

Parallelism: the global batch of a step is drawn once and cut into equal shards, one per CPU
stream of each process (``Run.streams`` per process; MLX runs a stream's elementwise work on a
thread of its own). Each shard's gradient is computed on its stream with its own dropout seed,
the shards' gradients are averaged, then one optimizer update runs. Distributed
(``mlx.launch -n 2 -- ghostwrite train ...``) adds processes: ranks average their gradients with
``mx.distributed``, rank 0 alone evaluates, writes files and prints; stop decisions (budget,
Ctrl-C) are agreed every step. A shard's windows and masks depend only on (seed, step, shard),
so 1 process x 2 streams and 2 processes x 1 stream train the same weights.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.nn.utils import average_gradients
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from ghostwrite.model import backend, files, tokenizer
from ghostwrite.model.completer import Completer
from ghostwrite.model.config import PRESETS, GPTConfig
from ghostwrite.model.gpt import GPT, cross_entropy, load_weights, weights_to_numpy
from ghostwrite.model.search import SearchOptions

from . import tokens as tokens_mod
from .checkpoint import (
    CHECKPOINT_FILE,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    split_prefix,
    with_prefix,
)
from .config import TrainConfig
from .corpus import CorpusError
from .progress import Progress, Reporter
from .walk import fixed_part

__all__ = ["Interrupted", "TrainConfig", "TrainingError", "train"]

METRICS_FILE = "metrics.jsonl"
ESTIMATE_AFTER_STEPS = 10  # timed steps (after the compiling one) before a time budget -> steps
REESTIMATE_EVERY = 50  # steps between refreshed estimates
BUDGET_MARGIN = 0.97  # share of the remaining time for steps; the rest for evals and saves
SAMPLE_PROMPT_BYTES = 40


class TrainingError(Exception):
    """A run that cannot go on, with a one-line reason for the user."""


class Interrupted(TrainingError):
    """Stopped by a signal; the message says what was saved (``checkpoint_step``: the step of
    the checkpoint on disk for this run, None when there is none)."""

    def __init__(self, signum: int, step: int, checkpoint_step: int | None) -> None:
        name = signal.Signals(signum).name
        if checkpoint_step is not None and checkpoint_step == step:
            where = f"at step {step}; checkpoint saved, continue with --resume"
        elif checkpoint_step is not None:
            where = (
                f"at step {step}; the checkpoint of step {checkpoint_step} is kept, "
                "continue with --resume"
            )
        elif step:
            where = f"at step {step}, before the first checkpoint; nothing was written"
        else:
            where = "before training started; nothing was written"
        super().__init__(f"interrupted by {name} {where}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


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


class BudgetClock:
    """Turns a time budget into the step count the learning-rate schedule spans.

    A first estimate comes after ``ESTIMATE_AFTER_STEPS`` timed steps; it is refreshed every
    ``REESTIMATE_EVERY`` steps from the average pace since then, so that the decay ends at the
    budget even when the first steps were unrepresentative or the machine got busier or quieter
    (one early estimate left the last part of 10-minute runs at a wrong learning rate).
    """

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self._since: tuple[int, float] | None = None  # (step, elapsed s) after the first step

    def horizon(self, step: int, elapsed_s: float) -> int | None:
        """A new horizon at this step (after ``step`` steps, ``elapsed_s`` seconds in), or None
        when no estimate is due."""
        if self._since is None:
            self._since = (step, elapsed_s)  # the first step compiles: leave it out
            return None
        timed = step - self._since[0]
        due = timed == ESTIMATE_AFTER_STEPS or (
            timed > ESTIMATE_AFTER_STEPS and timed % REESTIMATE_EVERY == 0
        )
        if not due:
            return None
        per_step = max(1e-9, elapsed_s - self._since[1]) / timed
        left = (self.budget_s - elapsed_s) * BUDGET_MARGIN / per_step
        return step + max(1, int(left))


def warmup_steps(cfg: TrainConfig, horizon: int | None) -> int:
    # Short runs (tests, small fine-tunes) would otherwise spend all their steps warming up.
    return cfg.warmup_steps if horizon is None else min(cfg.warmup_steps, horizon // 5)


def learning_rate_at(cfg: TrainConfig, base_lr: float, step: int, horizon: int | None) -> float:
    """Linear warm-up, then ``cfg.schedule``'s decay to ``min_lr_ratio * base_lr`` at the
    horizon: cosine over all the steps after warm-up, or (wsd) the peak rate until the last
    ``decay_fraction`` of the horizon and a linear decay over those."""
    warm = warmup_steps(cfg, horizon)
    if step < warm:
        return base_lr * (step + 1) / warm
    if horizon is None:
        return base_lr
    low = cfg.min_lr_ratio * base_lr
    if cfg.schedule == "wsd":
        decay_start = max(warm, horizon - round(cfg.decay_fraction * horizon))
        progress = min(1.0, max(0, step - decay_start) / max(1, horizon - decay_start))
        return base_lr - progress * (base_lr - low)
    progress = min(1.0, (step - warm) / max(1, horizon - warm))
    return low + 0.5 * (1.0 + math.cos(math.pi * progress)) * (base_lr - low)


def step_seed(seed: int, rank: int, step: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, rank, step, stream]).generate_state(1)[0])


def windows(data: np.ndarray, starts: np.ndarray, length: int) -> tuple[mx.array, mx.array]:
    """Inputs and next-token targets for windows of ``length`` starting at ``starts``."""
    batch = data[starts[:, None] + np.arange(length + 1)].astype(np.int32)
    return mx.array(batch[:, :-1]), mx.array(batch[:, 1:])


def bits_per_char(nats_per_byte: float, data: np.ndarray) -> float:
    """Convert a per-byte loss to bits per character (UTF-8 continuation bytes are no chars)."""
    chars = int(np.count_nonzero((np.asarray(data) & 0xC0) != 0x80))
    return nats_per_byte * len(data) / max(1, chars) / math.log(2)


def machine_description(world: int) -> str:
    device = "gpu" if mx.default_device() == mx.gpu else "cpu"
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"mlx {mx.__version__} ({device}), {world} process{'es' if world > 1 else ''}"
    )


class StopFlag:
    """Set by SIGINT/SIGTERM. Before training starts a signal interrupts at once (nothing to
    save); once ``armed`` the loop finishes its step, saves a checkpoint and exits."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.armed = False

    def handle(self, signum: int, _frame: object) -> None:
        if self.signum is not None or not self.armed:
            self.signum = signum
            raise KeyboardInterrupt  # a second Ctrl-C, or nothing to save yet
        self.signum = signum


@contextmanager
def stop_signals() -> Iterator[StopFlag]:
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signal handlers can only live in the main thread
        return
    previous = {s: signal.signal(s, flag.handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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


def numpy_tree(tree: Any) -> dict[str, np.ndarray]:
    return {name: np.array(value) for name, value in tree_flatten(tree)}


def mlx_tree(arrays: dict[str, np.ndarray]) -> Any:
    return tree_unflatten([(name, mx.array(value)) for name, value in arrays.items()])


def check_destinations(paths: Sequence[str], out: Path, checkpoint_dir: Path) -> None:
    """Refuse, before any work, a model or checkpoint folder that would take over someone's
    files (a model write replaces its whole folder) or that overlaps the corpus."""
    try:
        files.check_model_folder(out)
        files.check_writable_folder(checkpoint_dir, (CHECKPOINT_FILE, METRICS_FILE), "a checkpoint")
    except files.ForeignFolder as err:
        raise TrainingError(str(err)) from None
    for given in paths:
        source = Path(os.path.realpath(fixed_part(given)))
        for target in (out, checkpoint_dir):
            real = Path(os.path.realpath(target.expanduser()))
            if real == source or source in real.parents or real in source.parents:
                raise TrainingError(
                    f"{target}: refusing to write the model or its checkpoint here: it overlaps "
                    f"the corpus {given} (write it outside the folders you train on)"
                )


class Run:
    """One training run: set up in ``__init__``, then ``loop`` and ``finish``."""

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
        self.streams = self._stream_count()
        self.shard = self.local_batch // self.streams
        self.out = Path(cfg.out) if cfg.out else files.user_model_dir()
        self.ckpt_dir = (
            Path(cfg.checkpoint_dir)
            if cfg.checkpoint_dir
            else self.out.with_name(self.out.name + ".checkpoint")
        )
        check_destinations(cfg.paths, self.out, self.ckpt_dir)
        self.checkpoint_step: int | None = None  # the step of the checkpoint on disk
        self.model_cfg, init_weights, self.init_path = self._model_config()
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

        cores = os.cpu_count() or 1
        threads = cfg.blas_threads or (
            1 if self.streams > 1 else max(1, min(4, (cores - 1) // self.world))
        )
        backend.set_blas_threads(threads)
        # The first stream is the default one (evaluation runs there too).
        self.cpu_streams = [mx.default_stream(mx.cpu)] + [
            mx.new_stream(mx.cpu) for _ in range(self.streams - 1)
        ]
        if cfg.compile:
            backend.enable_native_jit()

        mx.random.seed(cfg.seed)  # identical initial weights on every rank
        self.model = GPT(self.model_cfg)
        if init_weights is not None:
            load_weights(self.model, init_weights)
        self.optimizer = make_optimizer(cfg, self.base_lr)
        self.optimizer.init(self.model.trainable_parameters())
        self.state = LoopState(horizon=self._fixed_horizon())
        self.best: dict[str, np.ndarray] | None = None
        if cfg.resume:
            self._restore()
        if self.world > 1:
            self._sync_from_rank0()
        self.step_fn = self._make_train_step()
        self.eval_loss = self._make_eval_loss()

    # --- set-up -------------------------------------------------------------------------------

    def _stream_count(self) -> int:
        """CPU streams for this process: ``cfg.streams``, or cores / ranks (at most 4) lowered
        to a divisor of the per-process batch."""
        if self.cfg.streams:
            if self.local_batch % self.cfg.streams:
                raise TrainingError(
                    f"the batch of {self.local_batch} per process must be divisible by "
                    f"--streams {self.cfg.streams}"
                )
            return self.cfg.streams
        wanted = max(1, min(4, (os.cpu_count() or 1) // self.world))
        return next(n for n in range(wanted, 0, -1) if self.local_batch % n == 0)

    def _model_config(self) -> tuple[GPTConfig, dict[str, np.ndarray] | None, Path | None]:
        cfg = self.cfg
        if cfg.init:
            path = files.resolve_model_dir(cfg.init)
            try:
                init = files.load_model(path)
            except files.ModelFileError as err:
                raise TrainingError(f"cannot fine-tune from {cfg.init}: {err}") from None
            model_cfg, weights = init.config, init.weights
        else:
            if cfg.preset not in PRESETS:
                raise TrainingError(
                    f"unknown preset {cfg.preset!r} (choose from {', '.join(PRESETS)})"
                )
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

    def _fixed_horizon(self) -> int | None:
        """Steps implied by --max-steps / --epochs (a time budget is estimated later)."""
        limits = []
        if self.cfg.max_steps is not None:
            limits.append(self.cfg.max_steps)
        if self.cfg.epochs is not None:
            per_epoch = math.ceil(len(self.data.train) / (self.cfg.batch_size * self.train_len))
            limits.append(max(1, math.ceil(self.cfg.epochs * per_epoch)))
        return min(limits) if limits else None

    def _checkpoint_identity(self) -> dict[str, Any]:
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

    def _restore(self) -> None:
        if self.rank != 0:
            return  # rank 0 reads the checkpoint and sends it to the others
        try:
            arrays, saved = load_checkpoint(self.ckpt_dir)
        except CheckpointError as err:
            raise TrainingError(str(err)) from None
        identity = self._checkpoint_identity()
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
        fixed = self._fixed_horizon()
        # A longer --max-steps or --epochs extends the run; a time budget keeps its estimate.
        loop.horizon = fixed if fixed is not None else loop.horizon
        self.state = loop
        self.checkpoint_step = loop.step
        self._trim_metrics(loop.step)

    def _sync_from_rank0(self) -> None:
        """Make every rank start from rank 0's weights, optimizer state and loop state."""

        def from_rank0(a: mx.array) -> mx.array:
            return mx.distributed.all_sum(a if self.rank == 0 else mx.zeros_like(a))

        self.model.update(tree_map(from_rank0, self.model.parameters()))
        self.optimizer.state = tree_map(from_rank0, self.optimizer.state)
        s = self.state
        counts = mx.array([s.step, s.tokens_seen, -1 if s.horizon is None else s.horizon])
        s.step, s.tokens_seen, horizon = from_rank0(counts.astype(mx.int64)).tolist()
        s.horizon = None if horizon < 0 else horizon
        s.elapsed_s = from_rank0(mx.array(s.elapsed_s)).item()
        mx.eval(self.model.parameters(), self.optimizer.state)

    def _make_train_step(self) -> Callable[[Sequence[tuple[mx.array, mx.array]]], mx.array]:
        """The step: shards (inputs, targets), one per stream -> the mean loss (lazy)."""
        model, optimizer, clip, world = self.model, self.optimizer, self.cfg.grad_clip, self.world
        loss_and_grad = nn.value_and_grad(model, cross_entropy)

        def update(losses: list[mx.array], grads: list[Any]) -> mx.array:
            n = len(grads)
            loss = losses[0] if n == 1 else sum(losses[1:], losses[0]) / n
            mean = grads[0] if n == 1 else tree_map(lambda *g: sum(g[1:], g[0]) / n, *grads)
            if world > 1:
                mean = average_gradients(mean)
                loss = mx.distributed.all_sum(loss) / world
            if clip > 0:
                mean, _ = optim.clip_grad_norm(mean, clip)
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

        if self.cfg.compile:
            weights, rng = [model.state], [mx.random.state]
            everything = [model.state, optimizer.state, mx.random.state]
            whole = mx.compile(whole, inputs=everything, outputs=everything)
            # MLX keeps one compiled graph per default stream, so each stream gets its own.
            shard_grad = mx.compile(shard_grad, inputs=weights + rng, outputs=rng)
            optimizer_state = [model.state, optimizer.state]
            update = mx.compile(update, inputs=optimizer_state, outputs=optimizer_state)

        def step(shards: Sequence[tuple[mx.array, mx.array]]) -> mx.array:
            if len(shards) == 1:
                self._seed_dropout(0)
                return whole(*shards[0])
            losses, grads = [], []
            for i, ((x, y), stream) in enumerate(zip(shards, self.cpu_streams, strict=True)):
                self._seed_dropout(i)
                with mx.stream(stream):
                    loss, grad = shard_grad(x, y)
                losses.append(loss)
                grads.append(grad)
            return update(losses, grads)

        return step

    def _seed_dropout(self, stream: int) -> None:
        shard = self.rank * self.streams + stream
        mx.random.seed(step_seed(self.cfg.seed, 0, self.state.step, 1 + shard))

    def _make_eval_loss(self) -> Callable[[mx.array, mx.array], mx.array]:
        model = self.model

        def loss(x: mx.array, y: mx.array) -> mx.array:
            return cross_entropy(model, x, y)

        return partial(mx.compile, inputs=[model.state])(loss) if self.cfg.compile else loss

    # --- the loop -----------------------------------------------------------------------------

    def loop(self) -> None:
        cfg, s = self.cfg, self.state
        budget_s = cfg.budget_minutes * 60 if cfg.budget_minutes is not None else None
        start_time = time.monotonic()
        elapsed_before = s.elapsed_s
        # Only a time budget's step count is estimated; --max-steps and --epochs fix theirs.
        clock = None
        if budget_s is not None and self._fixed_horizon() is None:
            clock = BudgetClock(budget_s)
        window_tokens, window_start, losses = 0, time.monotonic(), []
        self._emit("start", message=self._start_message())
        self.stop.armed = True
        while s.horizon is None or s.step < s.horizon:
            loss_value = self.train_step()
            now = time.monotonic()
            s.elapsed_s = elapsed_before + now - start_time
            losses.append(loss_value)
            window_tokens += cfg.batch_size * self.train_len

            # Agree on stopping and on the budget's step count (rank 0's clock decides).
            time_up = budget_s is not None and s.elapsed_s >= budget_s
            estimate = (clock.horizon(s.step, s.elapsed_s) if clock is not None else None) or 0
            stop_now, time_up, estimate = self._agree(
                self.stop.signum is not None, time_up, estimate
            )
            if estimate:
                s.horizon = estimate

            if self.reporter.mode == "bar" or s.step == 1 or s.step % cfg.log_every == 0:
                rate = window_tokens / max(1e-9, now - window_start)
                self._emit(
                    "step",
                    train_loss=float(np.mean(losses)),
                    tokens_per_s=rate,
                    eta_s=self._eta(rate, budget_s),
                )
                if s.step % cfg.log_every == 0:
                    self._record("step", train_loss=float(np.mean(losses)), tokens_per_s=rate)
                    window_tokens, window_start, losses = 0, time.monotonic(), []
            if stop_now:
                self._save_checkpoint()
                raise self.interrupted()
            if time_up:
                break
            finished = s.horizon is not None and s.step >= s.horizon
            if s.step % cfg.eval_every == 0 and not finished:
                self._evaluate()
                window_tokens, window_start = 0, time.monotonic()  # tokens/s: training only
            if s.step % cfg.checkpoint_every == 0 and not finished:
                self._save_checkpoint()
                window_tokens, window_start = 0, time.monotonic()

    def train_step(self) -> float:
        """One optimisation step on this rank's windows for the current step; returns the
        (rank-averaged) loss."""
        cfg, s = self.cfg, self.state
        # The global batch, drawn identically on every rank; this rank takes its part.
        rng = np.random.default_rng(step_seed(cfg.seed, 0, s.step, 0))
        starts = rng.integers(0, len(self.data.train) - self.train_len, cfg.batch_size)
        mine = starts[self.rank * self.local_batch : (self.rank + 1) * self.local_batch]
        shards = [
            windows(self.data.train, mine[i : i + self.shard], self.train_len)
            for i in range(0, self.local_batch, self.shard)
        ]
        self.optimizer.learning_rate = learning_rate_at(cfg, self.base_lr, s.step, s.horizon)
        loss = self.step_fn(shards)
        mx.eval(loss, self.model.state, self.optimizer.state)
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingError(
                f"training diverged at step {s.step + 1} (loss {value}); "
                "try a lower --lr or more --warmup-steps"
            )
        s.step += 1
        s.tokens_seen += cfg.batch_size * self.train_len
        return value

    def _agree(self, stop: bool, time_up: bool, estimate: int) -> tuple[bool, bool, int]:
        if self.world == 1:
            return stop, time_up, estimate
        mine = [float(stop), float(time_up and self.rank == 0), float(estimate * (self.rank == 0))]
        stop_sum, time_sum, est = mx.distributed.all_sum(mx.array(mine)).tolist()
        return stop_sum > 0, time_sum > 0, int(est)

    def _eta(self, tokens_per_s: float, budget_s: float | None) -> float | None:
        s = self.state
        etas = []
        if s.horizon is not None and tokens_per_s > 0:
            step_tokens = self.cfg.batch_size * self.train_len
            etas.append((s.horizon - s.step) * step_tokens / tokens_per_s)
        if budget_s is not None:
            etas.append(max(0.0, budget_s - s.elapsed_s))
        return min(etas) if etas else None

    # --- evaluation, samples, files -----------------------------------------------------------

    def mean_loss(self, data: np.ndarray, length: int) -> float:
        """Loss on ``eval_windows`` fixed, evenly spaced windows of ``data`` (no dropout)."""
        batch = self.cfg.batch_size
        n_batches = max(1, math.ceil(self.cfg.eval_windows / batch))
        starts = np.linspace(0, len(data) - length - 1, n_batches * batch).round().astype(np.int64)
        total = 0.0
        self.model.eval()  # no dropout
        try:
            for i in range(n_batches):
                x, y = windows(data, starts[i * batch : (i + 1) * batch], length)
                total += self.eval_loss(x, y).item()
        finally:
            self.model.train()
        return total / n_batches

    def _evaluate(self) -> tuple[float, float]:
        """Train and validation loss on fixed windows; keeps the best weights (rank 0 only)."""
        s = self.state
        s.last_eval_step = s.step
        if self.rank != 0:
            return math.nan, math.nan
        train_loss = self.mean_loss(self.data.train, self.train_len)
        val_loss = self.mean_loss(self.data.val, self.val_len)
        if s.best_val is None or val_loss < s.best_val:
            s.best_val, s.best_step = val_loss, s.step
            self.best = weights_to_numpy(self.model)
        sample = self._sample()
        self._record("eval", train_loss=train_loss, val_loss=val_loss, sample=sample)
        self._emit("eval", train_loss=train_loss, val_loss=val_loss, message=f"sample: {sample}")
        return train_loss, val_loss

    def _sample(self) -> str:
        """A continuation of the start of the validation text, as one readable line."""
        model = files.ModelFiles(self.model_cfg, weights_to_numpy(self.model))
        prompt = tokenizer.decode(self.data.val[:SAMPLE_PROMPT_BYTES])
        options = SearchOptions(
            max_chars=self.cfg.sample_chars, stop="none", temperature=0.8, seed=self.cfg.seed
        )
        completions = Completer(model).complete(prompt, options)
        text = completions[0].text if completions else ""
        return f"{json.dumps(prompt, ensure_ascii=False)} -> {json.dumps(text, ensure_ascii=False)}"

    def interrupted(self) -> Interrupted:
        return Interrupted(
            self.stop.signum or signal.SIGTERM, self.state.step, self.checkpoint_step
        )

    def _save_checkpoint(self) -> None:
        if self.state.step == 0:
            return
        if self.rank != 0:
            self.checkpoint_step = self.state.step  # rank 0 writes it
            return
        arrays = with_prefix("model", weights_to_numpy(self.model))
        arrays |= with_prefix("optimizer", numpy_tree(self.optimizer.state))
        if self.best is not None:
            arrays |= with_prefix("best", self.best)
        saved = {"identity": self._checkpoint_identity(), "loop": asdict(self.state)}
        save_checkpoint(self.ckpt_dir, arrays, saved)
        self.checkpoint_step = self.state.step
        self._emit("checkpoint", message=f"checkpoint saved in {self.ckpt_dir}")

    @property
    def metrics_path(self) -> Path:
        return self.ckpt_dir / METRICS_FILE

    def _record(self, event: str, **values: Any) -> None:
        """Append one line to metrics.jsonl (next to the checkpoint; copied into the model)."""
        if self.rank != 0:
            return
        s = self.state
        line = {
            "event": event,
            "step": s.step,
            "time_s": round(s.elapsed_s, 3),
            "tokens_seen": s.tokens_seen,
            "lr": learning_rate_at(self.cfg, self.base_lr, max(0, s.step - 1), s.horizon),
            **values,
        }
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")

    def _trim_metrics(self, step: int) -> None:
        """Drop metrics a resumed run will record again, so the file reads as one run."""
        if not self.metrics_path.exists():
            return
        lines = self.metrics_path.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
        self.metrics_path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def _emit(self, event: str, **values: Any) -> None:
        self.reporter.emit(
            Progress(event, step=self.state.step, max_steps=self.state.horizon, **values)
        )

    def _start_message(self) -> str:
        c, d, m = self.corpus, self.data, self.model_cfg
        source = f"fine-tuning {self.init_path}" if self.init_path else f"preset {self.cfg.preset}"
        budget = self.cfg.budget_minutes
        return (
            f"{len(c.files)} files, {c.chars:,} characters ({c.skipped_text()}); "
            f"{d.summary()['validation']} for validation; {source} "
            f"(ctx {m.ctx_len}, {m.n_layers}x{m.n_emb}, {self.model.num_params():,} parameters)"
            + (f"; up to {budget:g} minutes" if budget is not None else "")
            + (f"; {self.world} processes" if self.world > 1 else "")
            + (f"; batch split over {self.streams} CPU streams" if self.streams > 1 else "")
            + (f"; resuming at step {self.state.step}" if self.state.step else "")
        )

    def finish(self) -> Path:
        """Final evaluation; save the best-validation weights as the model (rank 0). A signal
        during the evaluation stops the run with every step in the checkpoint (``--resume``
        then only evaluates and saves); once the model is being written it is finished."""
        s = self.state
        if s.last_eval_step != s.step:
            self._evaluate()
        self._save_checkpoint()
        if self._agree(self.stop.signum is not None, False, 0)[0]:
            raise self.interrupted()
        if self.rank != 0:
            return self.out
        best_val = s.best_val if s.best_val is not None else math.nan
        weights = self.best if self.best is not None else weights_to_numpy(self.model)
        load_weights(self.model, weights)  # report the train loss of the weights saved
        train_loss = self.mean_loss(self.data.train, self.train_len)
        bpc = bits_per_char(best_val, self.data.val)
        card = {
            "corpus": self.corpus.summary() | self.data.summary(),
            "preset": None if self.init_path else self.cfg.preset,
            "init": str(self.init_path) if self.init_path else None,
            "steps": s.step,
            "best_step": s.best_step,
            "tokens_seen": s.tokens_seen,
            "train_loss": round(train_loss, 4),
            "val_loss": round(best_val, 4),
            "bits_per_char": round(bpc, 4),
            "batch_size": self.cfg.batch_size,
            "learning_rate": self.base_lr,
            "seed": self.cfg.seed,
            "command": self.cfg.command,
            "machine": machine_description(self.world),
            "wall_time_s": round(s.elapsed_s, 1),
        }
        extra = {METRICS_FILE: self.metrics_path.read_bytes()} if self.metrics_path.exists() else {}
        try:
            files.save_model(self.out, self.model_cfg, weights, card, extra_files=extra)
        except (files.ModelFileError, OSError) as err:
            raise TrainingError(f"cannot save the model to {self.out}: {err}") from None
        self._emit(
            "done",
            train_loss=train_loss,
            val_loss=best_val,
            message=f"saved {self.out} (val loss {best_val:.4f} nats, {bpc:.3f} bits/char, "
            f"best at step {s.best_step})",
        )
        return self.out


def train(cfg: TrainConfig) -> Path:
    """Train (or fine-tune) a model on ``cfg.paths``; returns the model directory written.

    Raises ``TrainingError`` with a one-line reason for anything the user can fix (nothing is
    written over an existing model then), and ``Interrupted`` after SIGINT/SIGTERM (with a
    checkpoint saved once training has started). Both are also reported as an "error" event.
    """
    reporter = Reporter(cfg.progress, cfg.log_every)
    run: Run | None = None

    def report(err: Exception) -> None:
        state = run.state if run is not None else LoopState()
        message = str(err) or type(err).__name__
        reporter.emit(Progress("error", state.step, state.horizon, message=message))

    with stop_signals() as stop:
        try:
            run = Run(cfg, reporter, stop)
            run.loop()
            return run.finish()
        except KeyboardInterrupt:
            step = run.state.step if run is not None else 0
            saved = run.checkpoint_step if run is not None else None
            interrupted = Interrupted(stop.signum or signal.SIGINT, step, saved)
            report(interrupted)
            raise interrupted from None
        except Exception as err:
            report(err)
            raise
