"""The ``train``, ``eval`` and ``learn`` subcommands of ``ghostwrite``, and what they all share.

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
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import Field, fields
from pathlib import Path
from types import UnionType
from typing import Any, NoReturn, Union, get_args, get_origin, get_type_hints

from .config import LEARN_STEPS, PROGRESS_MODES, TrainConfig

TRAIN_DESCRIPTION = "Train (or fine-tune) a model on your own text files."
BACKGROUND_NICENESS = 19  # a background learning round's CPU priority: the lowest
LEARN_DESCRIPTION = (
    "Fine-tune your model on your folders and keep the result only if it is better on your "
    "newest files (held out): lower bits per character and more keystrokes saved."
)


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
    """Parse ``argv`` (default: this process's arguments) and run the chosen command, which finds
    the command line it was given in ``args.command_line``; Ctrl-C at any moment ends it quietly
    with exit code 130, and a reader that goes away (``ghostwrite info | head``) with 141, as
    SIGPIPE ends other tools."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with interrupts_deferred():
            parser = build_parser()
        args = parser.parse_args(argv)
        # The command as given (``main(argv)`` need not be this process's own arguments).
        args.command_line = shlex.join([*parser.prog.split(), *argv])
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Python would report the failed flush of stdout again at exit: point it at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


# Headings of ``ghostwrite train --help`` (title, description): a field's ``group`` names one.
FLAG_GROUPS: dict[str, tuple[str, str | None]] = {
    "shape": ("model shape", "changes to the preset (from scratch only)"),
    "budget": (
        "budget",
        "stop at the first limit reached; none given: {default_minutes:g} minutes",
    ),
    "optimisation": ("optimisation", None),
    "runs": ("evaluation, checkpoints, machinery", None),
}


def train_flags() -> list[Field[Any]]:
    """The ``TrainConfig`` fields that ``ghostwrite train`` has flags for, in the class's order."""
    return [f for f in fields(TrainConfig) if f.metadata.get("flag") is not None]


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """A flag for each field ``train_flags`` names, from its type, default and metadata."""
    defaults = vars(TrainConfig())
    hints = get_type_hints(TrainConfig)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in train_flags():
        spec = f.metadata["flag"]
        target: argparse._ActionsContainer = parser
        if (key := spec.get("group")) is not None:
            if key not in groups:
                title, description = FLAG_GROUPS[key]
                groups[key] = parser.add_argument_group(
                    title, description and description.format(**defaults)
                )
            target = groups[key]
        names, options = _flag(f.name, hints[f.name], spec, defaults)
        target.add_argument(*names, **options)


def _flag(
    name: str, kind: Any, spec: dict[str, Any], defaults: dict[str, Any]
) -> tuple[list[str], dict[str, Any]]:
    """``add_argument``'s names and options for one setting."""
    default = defaults[name]
    options: dict[str, Any] = {"default": default}
    if spec.get("help"):
        options["help"] = spec["help"].format(**defaults)
    options.update({key: spec[key] for key in ("metavar", "nargs", "const") if key in spec})
    if "choices" in spec:
        choices = spec["choices"]
        options["choices"] = list(choices() if callable(choices) else choices)
    present = [arg for arg in get_args(kind) if arg is not type(None)]
    if get_origin(kind) in (Union, UnionType) and len(present) == 1:
        kind = present[0]  # None stands for "not given"
    positional = bool(spec.get("positional"))
    if kind is bool:  # a switch: --name turns it on, or --no-name off when it defaults to on
        flag = spec.get("name", "--" + ("no-" if default else "") + name.replace("_", "-"))
        action = "store_false" if default else "store_true"
        return [flag], {**options, "dest": name, "action": action}
    if get_origin(kind) is list:  # a positional takes them all, a flag one per use
        (kind,) = get_args(kind)
        if positional:
            options["nargs"] = "*"
        else:
            options["action"] = "append"
    if kind is int:
        options["type"] = positive_int if spec.get("positive") else int
    elif kind is float:
        options["type"] = positive_float if spec.get("positive") else float
    elif kind is Path:
        options["type"] = Path
    elif kind is not str:
        raise TypeError(f"TrainConfig.{name}: no flag for {kind}; give it NO_FLAG metadata")
    if positional:
        return [name], options
    return [spec.get("name", "--" + name.replace("_", "-"))], {**options, "dest": name}


def config_from_args(args: argparse.Namespace, command: str = "") -> TrainConfig:
    """The settings the flags give; ``command`` is the command line, for the model card."""
    return TrainConfig(**{f.name: getattr(args, f.name) for f in train_flags()}, command=command)


def setup_mlx(command: str) -> None:
    """The fast BLAS, before anything imports ``mlx.core``; if it is missing, say so once."""
    from ghostwrite.model.backend import setup_mlx as setup

    warning = setup()
    if warning:
        print(f"ghostwrite {command}: warning: {warning}", file=sys.stderr)


def cmd_train(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args, args.command_line)
    except ValueError as err:
        print(f"ghostwrite train: error: {err}", file=sys.stderr)
        return 2
    with interrupts_deferred():
        setup_mlx("train")
        from .errors import TrainingError
        from .signals import Interrupted
        from .train import train

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


def cmd_learn(args: argparse.Namespace) -> int:
    with interrupts_deferred():
        setup_mlx("learn")
        from ghostwrite.model import files

        from .errors import TrainingError
        from .learn import LearnError, emit, learn_round, stop_when_parent_goes
        from .signals import Interrupted
    if args.background:
        os.nice(BACKGROUND_NICENESS)  # the editor's completions come first
        stop_when_parent_goes()
    out = Path(args.out).expanduser() if args.out else files.user_model_dir()
    start_from = files.resolve_model_dir(args.model) if args.model else files.default_model_dir()
    try:
        verdict = learn_round(args.folders, start_from, out, args.steps, args.progress)
    except Interrupted as err:
        print(f"ghostwrite learn: stopped; {out} is unchanged", file=sys.stderr)
        return err.exit_code
    except (LearnError, TrainingError, files.ForeignFolder) as err:
        emit(args.progress, {"event": "error", "message": str(err)})
        print(f"ghostwrite learn: error: {err}", file=sys.stderr)
        return 1
    if args.progress != "json":
        print(f"ghostwrite learn: {verdict.message}", file=sys.stderr)
    return 0


def add_learn_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folders", nargs="+", metavar="FOLDER", help="your writing")
    add_model_argument(parser)
    parser.add_argument(
        "--out", metavar="DIR", help="where a better model goes (default: the personal model)"
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=LEARN_STEPS,
        help=f"fine-tuning steps ({LEARN_STEPS})",
    )
    parser.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default="auto",
        help="as for train; json: one event per line on stdout",
    )
    parser.add_argument(
        "--background",
        action="store_true",
        help="run at the lowest CPU priority and stop (as after Ctrl-C) when stdin closes: for "
        "a parent process such as the server",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``eval`` and ``learn`` to the ``ghostwrite`` command."""
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

    learn = subparsers.add_parser(
        "learn",
        help="fine-tune on your writing, kept only if better",
        description=LEARN_DESCRIPTION,
    )
    add_learn_arguments(learn)
    learn.set_defaults(func=cmd_learn)


def train_parser() -> ArgumentParser:
    """``ghostwrite train`` on its own, for ``python -m ghostwrite.training``."""
    parser = ArgumentParser(prog="ghostwrite train", description=TRAIN_DESCRIPTION)
    add_train_arguments(parser)
    parser.set_defaults(func=cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ghostwrite.training``: the same as ``ghostwrite train``."""
    return run_command(train_parser, argv)
