"""The ``train`` and ``eval`` subcommands of ``ghostwrite``, and what every subcommand shares.

``python -m ghostwrite.training ARGS`` is ``ghostwrite train ARGS``. Exit codes: 0 done, 1 the
run failed (bad corpus, bad checkpoint, diverged; a one-line reason on stderr), 2 bad flags,
130 after Ctrl-C (SIGINT) and 143 after SIGTERM, once a checkpoint is saved (``--resume``
continues). MLX is imported only when a command runs, so other subcommands start fast.

The server's command line (``ghostwrite.server.cli``) builds on this module and never the other
way round, so the pieces both need live here, once: the one-line-error parser, the positive-number
validators, ``--model``, Ctrl-C held back during imports, and running a parsed command. Importing
this module imports nothing heavy (no numpy): the server's CLI imports it before deferring Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from .config import OPTIMIZERS, PROGRESS_MODES, TrainConfig

DEFAULTS = TrainConfig()
TRAIN_DESCRIPTION = "Train (or fine-tune) a model on your own text files."


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line reason for bad flags (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="DIR",
        help="model directory, or 'bundled' / 'personal' "
        "(default: $GHOSTWRITE_MODEL, else your trained model, else the bundled one)",
    )


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C back while modules import, then act on it: numpy turns an interrupt in the
    middle of its import into an ImportError, which optional imports swallow (the command then
    ran on) or which ends in a traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def run_command(build_parser: Callable[[], ArgumentParser], argv: Sequence[str] | None) -> int:
    """Parse ``argv`` (default: this process's arguments) and run the chosen command; Ctrl-C at
    any moment ends it quietly with exit code 130."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with interrupts_deferred():
            parser = build_parser()
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from ghostwrite.model.config import PRESETS

    d = DEFAULTS
    parser.add_argument(
        "paths", nargs="*", metavar="PATHS", help="files, folders (recursive) and globs to learn"
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="model directory to write (default: personal)"
    )
    parser.add_argument(
        "--preset", choices=list(PRESETS), default=d.preset, help=f"model size ({d.preset})"
    )
    parser.add_argument(
        "--init",
        nargs="?",
        const="bundled",
        metavar="bundled|personal|DIR",
        help="fine-tune this model instead of starting from scratch (alone: the bundled one)",
    )
    shape = parser.add_argument_group("model shape", "changes to the preset (from scratch only)")
    shape.add_argument("--ctx-len", type=positive_int, metavar="N", help="context in bytes")
    shape.add_argument("--n-emb", type=positive_int, metavar="N", help="width")
    shape.add_argument("--n-heads", type=positive_int, metavar="N", help="attention heads")
    shape.add_argument("--n-layers", type=positive_int, metavar="N", help="transformer blocks")
    budget = parser.add_argument_group(
        "budget", f"stop at the first limit reached; none given: {d.default_minutes:g} minutes"
    )
    budget.add_argument("--max-minutes", type=positive_float, metavar="M")
    budget.add_argument("--max-steps", type=positive_int, metavar="N")
    budget.add_argument("--epochs", type=positive_float, metavar="E")
    parser.add_argument(
        "--resume", action="store_true", help="continue the checkpoint of the same run"
    )
    parser.add_argument(
        "--include", action="append", default=[], metavar="GLOB", help="only matching files"
    )
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="skip matching paths"
    )
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default=d.progress,
        help="bar on a terminal, plain lines otherwise; json: one event per line on stdout",
    )
    tuning = parser.add_argument_group("optimisation")
    tuning.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    tuning.add_argument(
        "--lr",
        type=positive_float,
        default=d.learning_rate,
        help=f"peak learning rate (default {d.scratch_learning_rate:g}, "
        f"fine-tuning {d.finetune_learning_rate:g})",
    )
    tuning.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default=d.optimizer,
        help="muon: Muon for the blocks' matrices, AdamW for the rest; adamw: AdamW for all",
    )
    tuning.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    tuning.add_argument("--weight-decay", type=float, default=d.weight_decay)
    tuning.add_argument("--grad-clip", type=float, default=d.grad_clip, help="0: off")
    tuning.add_argument(
        "--dropout", type=float, default=d.dropout, help=f"{d.dropout:g} (the article used 0.1)"
    )
    runs = parser.add_argument_group("evaluation, checkpoints, machinery")
    runs.add_argument("--val-fraction", type=float, default=d.val_fraction)
    runs.add_argument(
        "--hold-out",
        action="append",
        default=[],
        metavar="GLOB",
        help="validate on the files whose name or path matches (default: whole files chosen "
        "to make --val-fraction of the text)",
    )
    runs.add_argument("--eval-every", type=positive_int, default=d.eval_every, metavar="STEPS")
    runs.add_argument("--eval-windows", type=positive_int, default=d.eval_windows)
    runs.add_argument("--log-every", type=positive_int, default=d.log_every, metavar="STEPS")
    runs.add_argument(
        "--checkpoint-every", type=positive_int, default=d.checkpoint_every, metavar="STEPS"
    )
    runs.add_argument(
        "--checkpoint-dir", type=Path, metavar="DIR", help="default: <out>.checkpoint"
    )
    runs.add_argument(
        "--token-cache", type=Path, metavar="DIR", help="default: ~/.cache/ghostwrite/tokens"
    )
    runs.add_argument(
        "--streams",
        type=int,
        default=d.streams,
        help="CPU streams each process splits its batch over (0: cores / processes, up to 4)",
    )
    runs.add_argument(
        "--blas-threads",
        type=int,
        default=d.blas_threads,
        help="0: 1 with several streams, else (cores - 1) / processes, 1 to 4",
    )
    runs.add_argument(
        "--no-compile", dest="compile", action="store_false", help="run the step uncompiled"
    )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    argv = sys.argv[1:]
    if argv[:1] == ["train"]:
        argv = argv[1:]
    return TrainConfig(
        paths=list(args.paths),
        out=args.out,
        preset=args.preset,
        init=args.init,
        ctx_len=args.ctx_len,
        n_emb=args.n_emb,
        n_heads=args.n_heads,
        n_layers=args.n_layers,
        max_minutes=args.max_minutes,
        max_steps=args.max_steps,
        epochs=args.epochs,
        resume=args.resume,
        include=list(args.include),
        exclude=list(args.exclude),
        seed=args.seed,
        progress=args.progress,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        optimizer=args.optimizer,
        warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay,
        grad_clip=args.grad_clip,
        dropout=args.dropout,
        val_fraction=args.val_fraction,
        hold_out=list(args.hold_out),
        eval_every=args.eval_every,
        eval_windows=args.eval_windows,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        checkpoint_dir=args.checkpoint_dir,
        token_cache=args.token_cache,
        streams=args.streams,
        blas_threads=args.blas_threads,
        compile=args.compile,
        command=shlex.join(["ghostwrite", "train", *argv]),
    )


def setup_mlx(command: str) -> None:
    """The fast BLAS, before anything imports ``mlx.core``; if it is missing, say so once."""
    from ghostwrite.model.backend import setup_mlx as setup

    warning = setup()
    if warning:
        print(f"ghostwrite {command}: warning: {warning}", file=sys.stderr)


def cmd_train(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
    except ValueError as err:
        print(f"ghostwrite train: error: {err}", file=sys.stderr)
        return 2
    with interrupts_deferred():
        setup_mlx("train")
        from .train import Interrupted, TrainingError, train

    try:
        train(cfg)
    except Interrupted as err:
        print(f"ghostwrite train: {err}", file=sys.stderr)
        return err.exit_code
    except TrainingError as err:
        print(f"ghostwrite train: error: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    setup_mlx("eval")
    import numpy as np

    from ghostwrite.model import files

    from .corpus import CorpusError, normalise, scan
    from .evaluate import EvalResult, evaluate_tokens, load_mlx_model

    try:
        model_files = files.load_model(files.resolve_model_dir(args.model))
        corpus = scan(args.files)
    except (files.ModelFileError, CorpusError) as err:
        print(f"ghostwrite eval: error: {err}", file=sys.stderr)
        return 1
    model = load_mlx_model(model_files)
    total = EvalResult()
    rows = []
    for f in sorted(corpus.files, key=lambda f: str(f.path)):
        text, _ = normalise(f.path.read_bytes())
        result = evaluate_tokens(model, np.frombuffer(text.encode("utf-8"), dtype=np.uint8))
        total += result
        rows.append((str(f.path), result))
    if len(rows) > 1:
        rows.append(("total", total))
    if args.json:
        print(
            json.dumps(
                {
                    "model": str(model_files.path),
                    "results": [
                        {
                            "file": name,
                            "chars": r.chars,
                            "bits_per_char": r.bits_per_char,
                            "words": r.words,
                            "next_word_accuracy": r.word_accuracy,
                        }
                        for name, r in rows
                    ],
                }
            )
        )
        return 0
    print(f"model: {model_files.path}")
    for name, r in rows:
        print(
            f"{name}: {r.bits_per_char:.4f} bits/char, next-word accuracy "
            f"{100 * r.word_accuracy:.1f}% ({r.words_correct}/{r.words} words, {r.chars} chars)"
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``eval`` to the ``ghostwrite`` command."""
    train = subparsers.add_parser(
        "train", help="train a personal model on your writing", description=TRAIN_DESCRIPTION
    )
    add_train_arguments(train)
    train.set_defaults(func=cmd_train)

    evaluate = subparsers.add_parser(
        "eval", help="bits per character and next-word accuracy of a model on some text"
    )
    add_model_argument(evaluate)
    evaluate.add_argument("files", nargs="+", metavar="FILE", help="held-out text files")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=cmd_eval)


def train_parser() -> ArgumentParser:
    """``ghostwrite train`` on its own, for ``python -m ghostwrite.training``."""
    parser = ArgumentParser(prog="ghostwrite train", description=TRAIN_DESCRIPTION)
    add_train_arguments(parser)
    parser.set_defaults(func=cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ghostwrite.training``: the same as ``ghostwrite train``."""
    return run_command(train_parser, argv)
