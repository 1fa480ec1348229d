"""The training loop: fit a GPT to a corpus within a step, epoch or time budget.

Random windows of the training tokens, Muon and AdamW (``optimizers``) on a warm-up/decay
schedule (``schedule``), gradient clipping, a compiled step (``step``). Every random draw is
derived from (seed, step, shard), so the step number is the whole RNG state and data position:
a resumed run takes exactly the batches and dropout masks the uninterrupted run would have.

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
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

from ghostwrite.model import files, tokenizer
from ghostwrite.model.completer import Completer
from ghostwrite.model.gpt import load_weights, weights_to_numpy
from ghostwrite.model.search import SearchOptions

from .card import model_card, val_bits_per_char
from .checkpoint import save_checkpoint, with_prefix
from .config import TrainConfig
from .errors import TrainingError
from .outputs import METRICS_FILE, append_metrics
from .parallel import agree
from .progress import Progress, Reporter
from .run_setup import LoopState, RunSetup
from .schedule import BudgetClock, learning_rate_at
from .signals import Interrupted, stop_signals
from .step import EvaluationCut, mean_loss, step_seed, windows

__all__ = ["Run", "train"]

SAMPLE_PROMPT_BYTES = 40


def numpy_tree(tree: Any) -> dict[str, np.ndarray]:
    return {name: np.array(value) for name, value in tree_flatten(tree)}


class Run(RunSetup):
    """One training run: set up on construction, then ``loop`` and ``finish``."""

    # --- the loop -----------------------------------------------------------------------------

    def loop(self) -> None:
        cfg, s = self.cfg, self.state
        budget_s = cfg.budget_minutes * 60 if cfg.budget_minutes is not None else None
        start_time = time.monotonic()
        elapsed_before = s.elapsed_s
        # Only a time budget's step count is estimated; --max-steps and --epochs fix theirs.
        clock = None
        if budget_s is not None and self.fixed_horizon() is None:
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
            stop_now, time_up, estimate = agree(
                self.rank, self.world, self.stop.signum is not None, time_up, estimate
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

    def _mean_loss(self, data: np.ndarray, length: int, interruptible: bool = True) -> float:
        """Raises ``EvaluationCut`` when a signal comes during it (a long evaluation must not
        hold Ctrl-C back); ``interruptible=False`` for the final report, made after a stop."""
        batch, n_windows = self.cfg.batch_size, self.cfg.eval_windows
        should_stop = self._signalled if interruptible else lambda: False
        return mean_loss(self.model, self.eval_loss, data, length, batch, n_windows, should_stop)

    def _signalled(self) -> bool:
        return self.stop.signum is not None

    def _evaluate(self) -> None:
        """Train and validation loss on fixed windows; keeps the best weights (rank 0 only).
        Cut short by a signal, it records nothing, so a resumed run evaluates this step again."""
        s = self.state
        if self.rank != 0:
            s.last_eval_step = s.step
            return
        try:
            train_loss = self._mean_loss(self.data.train, self.train_len)
            val_loss = self._mean_loss(self.data.val, self.val_len)
        except EvaluationCut:
            return
        s.last_eval_step = s.step
        if s.best_val is None or val_loss < s.best_val:
            s.best_val, s.best_step = val_loss, s.step
            self.best = weights_to_numpy(self.model)
        sample = self._sample()
        self._record("eval", train_loss=train_loss, val_loss=val_loss, sample=sample)
        self._emit("eval", train_loss=train_loss, val_loss=val_loss, message=f"sample: {sample}")

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
        saved = {"identity": self.checkpoint_identity(), "loop": asdict(self.state)}
        save_checkpoint(self.ckpt_dir, arrays, saved)
        self.checkpoint_step = self.state.step
        self._emit("checkpoint", message=f"checkpoint saved in {self.ckpt_dir}")

    def _record(self, event: str, **values: Any) -> None:
        """Append one line to the metrics log (rank 0 only)."""
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
        append_metrics(self.metrics_path, line)

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
        if agree(self.rank, self.world, self.stop.signum is not None, False, 0)[0]:
            raise self.interrupted()
        if self.rank != 0:
            return self.out
        best_val = s.best_val if s.best_val is not None else math.nan
        weights = self.best if self.best is not None else weights_to_numpy(self.model)
        load_weights(self.model, weights)  # report the train loss of the weights saved
        train_loss = self._mean_loss(self.data.train, self.train_len, interruptible=False)
        bpc = val_bits_per_char(best_val, self.data.val)
        card = model_card(
            self.cfg,
            self.corpus,
            self.data,
            init_path=self.init_path,
            steps=s.step,
            best_step=s.best_step,
            tokens_seen=s.tokens_seen,
            train_loss=train_loss,
            val_loss=best_val,
            learning_rate=self.base_lr,
            world=self.world,
            wall_time_s=s.elapsed_s,
        )
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
