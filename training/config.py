"""Training settings: one dataclass holding every default (the CLI reads its defaults from here).

Kept free of MLX imports so that building the ``ghostwrite`` argument parser stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROGRESS_MODES = ("auto", "bar", "plain", "json")
OPTIMIZERS = ("muon", "adamw")
SCHEDULES = ("cosine", "wsd")


@dataclass
class TrainConfig:
    """What to train on, how, and for how long.

    Budget: training stops at the first of ``max_minutes``, ``max_steps`` and ``epochs`` that is
    set; with none of them set it runs ``default_minutes``. The learning-rate schedule spans
    that budget (a time budget is turned into a step count after the first timed steps).
    """

    paths: list[str] = field(default_factory=list)
    out: Path | None = None  # None: ghostwrite.model.files.user_model_dir()
    preset: str = "article"
    init: str | None = None  # fine-tune from "bundled", "personal" or a model directory
    # Shape changes to the preset (None: the preset's); a fine-tuned model keeps its shape.
    ctx_len: int | None = None
    n_emb: int | None = None
    n_heads: int | None = None
    n_layers: int | None = None
    # Architecture options (``GPTConfig`` fields) for a model trained from scratch, over the
    # preset's; a fine-tuned model keeps the architecture it was trained with.
    architecture: dict[str, Any] = field(default_factory=dict)
    max_minutes: float | None = None
    max_steps: int | None = None
    epochs: float | None = None
    default_minutes: float = 10.0  # what a laptop finishes "in about ten minutes"
    resume: bool = False
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    seed: int = 1337
    progress: str = "auto"

    # The blocks' weight matrices: "muon" orthogonalises their updates (Muon, from Keller Jordan's
    # nanoGPT speedrun; AdamW keeps the embeddings, head, LayerNorms and biases); "adamw" is the
    # article's AdamW everywhere. On tinyshakespeare Muon took 10 minutes of training from 1.543
    # to 1.472 nats/char, at batch 32 against 8 (bench/README.md, "Muon").
    optimizer: str = "muon"
    # Muon's peak rate at scratch_learning_rate; --lr scales both rates together.
    muon_learning_rate: float = 0.02
    muon_momentum: float = 0.95

    # Optimisation: the article's AdamW plus warm-up, cosine decay to min_lr_ratio * lr,
    # gradient clipping and weight decay on matrices only. The article's batch 64, lr 1e-3 and
    # dropout 0.1 learn far slower in the minutes a laptop gives: on tinyshakespeare (same
    # tokens/s) AdamW's val loss after 3 minutes is 2.28 with them, 1.735 at batch 8, lr 3e-3, no
    # dropout; after 10 minutes 2.014 against 1.563 (bench/README.md, "Sample efficiency").
    # Muon learns more per step from bigger batches, and bigger batches run faster here.
    batch_size: int = 32  # global: split across distributed ranks
    learning_rate: float | None = None  # None: scratch_ or finetune_learning_rate
    scratch_learning_rate: float = 3e-3
    finetune_learning_rate: float = 3e-4  # gentler: a small corpus should adjust, not erase
    # Decay to zero: over 10 minutes on tinyshakespeare it led decay to a tenth of the rate by
    # 0.007 nats at 5,700 steps against 6,150 (bench/README.md).
    min_lr_ratio: float = 0.0
    # After warm-up: "cosine" decays over the whole run; "wsd" holds the peak rate, then decays
    # linearly over the last ``decay_fraction`` of the steps (warm-up/stable/decay).
    schedule: str = "cosine"
    decay_fraction: float = 0.3
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99  # nanoGPT's char-level setting: small batches, noisy gradients
    grad_clip: float = 1.0
    dropout: float = 0.0

    # Evaluation, logging and checkpoints (in steps).
    val_fraction: float = 0.1
    hold_out: list[str] = field(default_factory=list)  # globs of files to validate on
    eval_every: int = 250
    eval_windows: int = 256  # fixed, evenly spaced validation windows
    log_every: int = 10
    checkpoint_every: int = 250
    sample_chars: int = 80

    # Machinery.
    checkpoint_dir: Path | None = None  # None: "<out>.checkpoint" next to the output directory
    token_cache: Path | None = None  # None: $XDG_CACHE_HOME/ghostwrite/tokens
    # Each process splits its share of the batch over ``streams`` MLX CPU streams: MLX runs a
    # stream's elementwise work on one thread, so one stream leaves the other cores idle.
    # 0: cores / ranks, at most 4, lowered to a divisor of the per-process batch.
    streams: int = 0
    # 0: one BLAS thread when there are several streams (they run BLAS calls side by side),
    # else (cores - 1) / ranks, at least 1 and at most 4. Idle OpenBLAS threads spin: a BLAS
    # thread per core made steps many times slower as soon as anything else ran (20x on the
    # 2-core machine).
    blas_threads: int = 0
    compile: bool = True
    command: str = ""  # the command line, for the model card

    def __post_init__(self) -> None:
        for name in ("out", "checkpoint_dir", "token_cache"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                setattr(self, name, Path(value).expanduser())  # e.g. from JSON
        checks = {
            "batch_size": self.batch_size >= 1,
            "learning_rate": self.learning_rate is None or self.learning_rate > 0,
            "muon_learning_rate": self.muon_learning_rate > 0,
            "muon_momentum": 0 <= self.muon_momentum < 1,
            "min_lr_ratio": 0 <= self.min_lr_ratio <= 1,
            "decay_fraction": 0 < self.decay_fraction <= 1,
            "warmup_steps": self.warmup_steps >= 0,
            "weight_decay": self.weight_decay >= 0,
            "grad_clip": self.grad_clip >= 0,
            "val_fraction": 0 < self.val_fraction < 1,
            "eval_every": self.eval_every >= 1,
            "eval_windows": self.eval_windows >= 1,
            "log_every": self.log_every >= 1,
            "checkpoint_every": self.checkpoint_every >= 1,
            "streams": self.streams >= 0,
            "blas_threads": self.blas_threads >= 0,
            "max_minutes": self.max_minutes is None or self.max_minutes > 0,
            "max_steps": self.max_steps is None or self.max_steps >= 1,
            "epochs": self.epochs is None or self.epochs > 0,
            "dropout": 0 <= self.dropout < 1,
            **{name: value is None or value >= 1 for name, value in self.shape_changes().items()},
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid training setting: {', '.join(bad)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}")
        if self.progress not in PROGRESS_MODES:
            raise ValueError(f"progress must be one of {', '.join(PROGRESS_MODES)}")

    def shape_changes(self) -> dict[str, int]:
        """The model-shape settings given, as ``GPTConfig`` changes."""
        names = ("ctx_len", "n_emb", "n_heads", "n_layers")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    @property
    def budget_minutes(self) -> float | None:
        """The wall-clock budget in minutes, or None when only steps or epochs bound the run."""
        if self.max_minutes is not None:
            return self.max_minutes
        if self.max_steps is None and self.epochs is None:
            return self.default_minutes
        return None
