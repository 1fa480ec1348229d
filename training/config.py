"""Training settings: one dataclass holding every default and the help of each CLI flag.

Kept free of MLX imports so that building the ``ghostwrite`` argument parser stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROGRESS_MODES = ("auto", "bar", "plain", "json")
# Fine-tuning steps of one ``ghostwrite learn`` round: about four minutes for the bundled
# model's shape on two cores.
LEARN_STEPS = 300
OPTIMIZERS = ("muon", "adamw")
SCHEDULES = ("cosine", "wsd")


def flag(help: str = "", **cli: Any) -> dict[str, Any]:
    """Field metadata for a setting ``ghostwrite train`` takes as a flag (training/cli.py builds
    the flag from it and from the field's type and default).

    ``help`` may quote other settings' defaults (``{default_minutes:g}``). ``cli`` says what the
    type and default cannot: ``group`` (a heading of ``--help``, one of ``cli.FLAG_GROUPS``),
    ``name`` (default ``--field-name``; ``--no-field-name`` for a setting that defaults to true),
    ``metavar``, ``choices`` (or a function returning them, for lists in modules too heavy to
    import here), ``positive`` (whole numbers from 1, other numbers above 0), ``positional``,
    ``nargs`` and ``const``.
    """
    return {"flag": {"help": help, **cli}}


# Field metadata for a setting without a ``ghostwrite train`` flag: Python callers (the
# benchmarks' recipes, tests) set it, the command keeps its default.
NO_FLAG: dict[str, Any] = {"flag": None}


def preset_names() -> list[str]:
    """The model presets; ``ghostwrite.model`` imports numpy, so only when a parser is built."""
    from ghostwrite.model.config import PRESETS

    return list(PRESETS)


@dataclass
class TrainConfig:
    """What to train on, how, and for how long.

    Budget: training stops at the first of ``max_minutes``, ``max_steps`` and ``epochs`` that is
    set; with none of them set it runs ``default_minutes``. The learning-rate schedule spans
    that budget (a time budget is turned into a step count after the first timed steps).
    """

    paths: list[str] = field(
        default_factory=list,
        metadata=flag(
            positional=True, metavar="PATHS", help="files, folders (recursive) and globs to learn"
        ),
    )
    # None: ghostwrite.model.files.user_model_dir()
    out: Path | None = field(
        default=None,
        metadata=flag(metavar="DIR", help="model directory to write (default: personal)"),
    )
    preset: str = field(
        default="article", metadata=flag(choices=preset_names, help="model size ({preset})")
    )
    # fine-tune from "bundled", "personal" or a model directory
    init: str | None = field(
        default=None,
        metadata=flag(
            nargs="?",
            const="bundled",
            metavar="bundled|personal|DIR",
            help="fine-tune this model instead of starting from scratch (alone: the bundled one)",
        ),
    )
    # Shape changes to the preset (None: the preset's); a fine-tuned model keeps its shape.
    ctx_len: int | None = field(
        default=None,
        metadata=flag(group="shape", positive=True, metavar="N", help="context in bytes"),
    )
    n_emb: int | None = field(
        default=None, metadata=flag(group="shape", positive=True, metavar="N", help="width")
    )
    n_heads: int | None = field(
        default=None,
        metadata=flag(group="shape", positive=True, metavar="N", help="attention heads"),
    )
    n_layers: int | None = field(
        default=None,
        metadata=flag(group="shape", positive=True, metavar="N", help="transformer blocks"),
    )
    # Architecture options (``GPTConfig`` fields) for a model trained from scratch, over the
    # preset's; a fine-tuned model keeps the architecture it was trained with. Rotary positions,
    # QK-norm and ReLU² from the nanoGPT speedrun: each alone lowered tinyshakespeare's
    # held-out loss at equal training time (rotary by 0.25 nats/char, QK-norm by 0.17, ReLU² by
    # 0.02 at 5% more tokens per CPU-second); value embeddings, soft-capped logits and an EMA of
    # the weights did not (bench/README.md, "The nanoGPT speedrun's recipe").
    architecture: dict[str, Any] = field(
        default_factory=lambda: {"position": "rope", "qk_norm": True, "activation": "relu2"},
        metadata=NO_FLAG,
    )
    max_minutes: float | None = field(
        default=None, metadata=flag(group="budget", positive=True, metavar="M")
    )
    max_steps: int | None = field(
        default=None, metadata=flag(group="budget", positive=True, metavar="N")
    )
    epochs: float | None = field(
        default=None, metadata=flag(group="budget", positive=True, metavar="E")
    )
    # what a laptop finishes "in about ten minutes"
    default_minutes: float = field(default=10.0, metadata=NO_FLAG)
    resume: bool = field(
        default=False, metadata=flag(help="continue the checkpoint of the same run")
    )
    include: list[str] = field(
        default_factory=list, metadata=flag(metavar="GLOB", help="only matching files")
    )
    exclude: list[str] = field(
        default_factory=list, metadata=flag(metavar="GLOB", help="skip matching paths")
    )
    seed: int = field(default=1337, metadata=flag())
    progress: str = field(
        default="auto",
        metadata=flag(
            choices=PROGRESS_MODES,
            help="bar on a terminal, plain lines otherwise; json: one event per line on stdout",
        ),
    )

    # The blocks' weight matrices: "muon" orthogonalises their updates (Muon, from Keller Jordan's
    # nanoGPT speedrun; AdamW keeps the embeddings, head, LayerNorms and biases); "adamw" is the
    # article's AdamW everywhere. On tinyshakespeare Muon took 10 minutes of training from 1.543
    # to 1.472 nats/char, at batch 32 against 8 (bench/README.md, "Muon").
    optimizer: str = field(
        default="muon",
        metadata=flag(
            group="optimisation",
            choices=OPTIMIZERS,
            help="muon: Muon for the blocks' matrices, AdamW for the rest; adamw: AdamW for all",
        ),
    )
    # Muon's peak rate at scratch_learning_rate; --lr scales both rates together.
    muon_learning_rate: float = field(default=0.02, metadata=NO_FLAG)
    muon_momentum: float = field(default=0.95, metadata=NO_FLAG)

    # Optimisation: the article's AdamW plus warm-up, cosine decay to min_lr_ratio * lr,
    # gradient clipping and weight decay on matrices only. The article's batch 64, lr 1e-3 and
    # dropout 0.1 learn far slower in the minutes a laptop gives: on tinyshakespeare (same
    # tokens/s) AdamW's val loss after 3 minutes is 2.28 with them, 1.735 at batch 8, lr 3e-3, no
    # dropout; after 10 minutes 2.014 against 1.563 (bench/README.md, "Sample efficiency").
    # Muon learns more per step from bigger batches, and bigger batches run faster here.
    # global: split across distributed ranks
    batch_size: int = field(default=32, metadata=flag(group="optimisation", positive=True))
    # None: scratch_ or finetune_learning_rate
    learning_rate: float | None = field(
        default=None,
        metadata=flag(
            group="optimisation",
            name="--lr",
            metavar="LR",
            positive=True,
            help="peak learning rate (default {scratch_learning_rate:g}, "
            "fine-tuning {finetune_learning_rate:g})",
        ),
    )
    scratch_learning_rate: float = field(default=3e-3, metadata=NO_FLAG)
    # gentler: a small corpus should adjust, not erase
    finetune_learning_rate: float = field(default=3e-4, metadata=NO_FLAG)
    # Decay to zero: over 10 minutes on tinyshakespeare it led decay to a tenth of the rate by
    # 0.007 nats at 5,700 steps against 6,150 (bench/README.md).
    min_lr_ratio: float = field(default=0.0, metadata=NO_FLAG)
    # After warm-up: "cosine" decays over the whole run; "wsd" holds the peak rate, then decays
    # linearly over the last ``decay_fraction`` of the steps (warm-up/stable/decay). On
    # tinyshakespeare wsd led cosine at equal training time by 0.14 nats/char on GPT-2's
    # architecture and by 0.13 with rotary positions, QK-norm and ReLU² (bench/README.md).
    schedule: str = field(default="wsd", metadata=NO_FLAG)
    decay_fraction: float = field(default=0.3, metadata=NO_FLAG)
    warmup_steps: int = field(default=100, metadata=flag(group="optimisation"))
    weight_decay: float = field(default=0.1, metadata=flag(group="optimisation"))
    beta1: float = field(default=0.9, metadata=NO_FLAG)
    # nanoGPT's char-level setting: small batches, noisy gradients
    beta2: float = field(default=0.99, metadata=NO_FLAG)
    grad_clip: float = field(default=1.0, metadata=flag(group="optimisation", help="0: off"))
    dropout: float = field(
        default=0.0, metadata=flag(group="optimisation", help="{dropout:g} (the article used 0.1)")
    )

    # Evaluation, logging and checkpoints (in steps).
    val_fraction: float = field(default=0.1, metadata=flag(group="runs"))
    # globs of files to validate on
    hold_out: list[str] = field(
        default_factory=list,
        metadata=flag(
            group="runs",
            metavar="GLOB",
            help="validate on the files whose name or path matches (default: whole files chosen "
            "to make --val-fraction of the text)",
        ),
    )
    eval_every: int = field(
        default=250, metadata=flag(group="runs", positive=True, metavar="STEPS")
    )
    # fixed, evenly spaced validation windows
    eval_windows: int = field(default=256, metadata=flag(group="runs", positive=True))
    log_every: int = field(default=10, metadata=flag(group="runs", positive=True, metavar="STEPS"))
    checkpoint_every: int = field(
        default=250, metadata=flag(group="runs", positive=True, metavar="STEPS")
    )
    sample_chars: int = field(default=80, metadata=NO_FLAG)

    # Machinery.
    # None: "<out>.checkpoint" next to the output directory
    checkpoint_dir: Path | None = field(
        default=None, metadata=flag(group="runs", metavar="DIR", help="default: <out>.checkpoint")
    )
    # None: $XDG_CACHE_HOME/ghostwrite/tokens
    token_cache: Path | None = field(
        default=None,
        metadata=flag(group="runs", metavar="DIR", help="default: ~/.cache/ghostwrite/tokens"),
    )
    # Each process splits its share of the batch over ``streams`` MLX CPU streams: MLX runs a
    # stream's elementwise work on one thread, so one stream leaves the other cores idle.
    # 0: cores / ranks, at most 4, lowered to a divisor of the per-process batch.
    streams: int = field(
        default=0,
        metadata=flag(
            group="runs",
            help="CPU streams each process splits its batch over (0: cores / processes, up to 4)",
        ),
    )
    # 0: one BLAS thread when there are several streams (they run BLAS calls side by side),
    # else (cores - 1) / ranks, at least 1 and at most 4. Idle OpenBLAS threads spin: a BLAS
    # thread per core made steps many times slower as soon as anything else ran (20x on the
    # 2-core machine).
    blas_threads: int = field(
        default=0,
        metadata=flag(
            group="runs", help="0: 1 with several streams, else (cores - 1) / processes, 1 to 4"
        ),
    )
    compile: bool = field(default=True, metadata=flag(group="runs", help="run the step uncompiled"))
    command: str = field(default="", metadata=NO_FLAG)  # the command line, for the model card

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
