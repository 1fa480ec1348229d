"""The ``ghostwrite`` command: a thin dispatcher over the model, training and server packages.

Importing this module imports nothing heavy: ``main`` does, with Ctrl-C held back until the
imports are done, so an interrupt at any moment ends the command quietly (exit code 130), never
with a traceback.
"""

from __future__ import annotations

import _signal
import os
import sys

# The console script imports this module and calls ``main`` at once: hold Ctrl-C back from the
# very start (``_signal`` is the C module; ``signal`` imports enum, itself slow enough to be
# interrupted). ``main`` acts on it once the imports are done.
_early_interrupts: list[int] = []
_EARLY = os.path.basename(sys.argv[0]) == "ghostwrite"
if _EARLY:
    _signal.signal(_signal.SIGINT, lambda signum, _frame: _early_interrupts.append(signum))

import argparse  # noqa: E402
import json  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from ghostwrite.training.cli import (  # noqa: E402
    ArgumentParser,
    add_model_argument,
    interrupts_deferred,
    positive_int,
    run_command,
)
from ghostwrite.training.cli import register as register_training  # noqa: E402

if TYPE_CHECKING:
    from ghostwrite.model import files


def load_or_exit(name: str | None) -> files.ModelFiles:
    from ghostwrite.model import files

    try:
        return files.load_model(files.resolve_model_dir(name))
    except files.ModelFileError as err:
        sys.exit(f"ghostwrite: cannot load model: {err}")


def cmd_complete(args: argparse.Namespace) -> int:
    with interrupts_deferred():
        from ghostwrite.model.completer import Completer
        from ghostwrite.model.search import SearchOptions

    text = sys.stdin.read() if args.text == "-" else args.text
    options = SearchOptions(
        max_chars=args.max_chars,
        stop=args.stop,
        candidates=args.candidates,
        temperature=args.temperature,
        seed=args.seed,
    )
    completions = Completer(load_or_exit(args.model)).complete(text, options)
    if args.json:
        print(json.dumps([{"text": c.text, "probability": c.probability} for c in completions]))
    else:
        for completion in completions:
            print(
                completion.text
                if len(completions) == 1
                else f"{completion.probability:.3f}\t{completion.text!r}"
            )
    return 0 if completions else 1


def cmd_info(args: argparse.Namespace) -> int:
    model = load_or_exit(args.dir)
    info = {"path": str(model.path), "config": model.config.to_dict(), "card": model.card}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"model: {model.path}")
    print("config: " + ", ".join(f"{k}={v}" for k, v in model.config.to_dict().items()))
    for key, value in model.card.items():
        rendered = json.dumps(value) if isinstance(value, (dict, list)) else value
        print(f"{key}: {rendered}")
    return 0


def build_parser() -> ArgumentParser:
    from ghostwrite.model import files
    from ghostwrite.model.search import STOP_RULES, SearchOptions

    defaults = SearchOptions()
    parser = ArgumentParser(
        prog="ghostwrite",
        description="Local inline text completion from a tiny character-level GPT.",
    )
    parser.add_argument("--version", action="version", version=files.version())
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    complete = commands.add_parser("complete", help="print likely continuations of a text")
    add_model_argument(complete)
    complete.add_argument("text", help="the text to continue ('-' reads stdin)")
    complete.add_argument("--max-chars", type=positive_int, default=defaults.max_chars)
    complete.add_argument("--candidates", type=positive_int, default=defaults.candidates)
    complete.add_argument("--stop", choices=STOP_RULES, default=defaults.stop)
    complete.add_argument(
        "--temperature",
        type=float,
        default=defaults.temperature,
        help="0 (default) is deterministic beam search",
    )
    complete.add_argument("--seed", type=int, default=None)
    complete.add_argument("--json", action="store_true", help="print JSON with probabilities")
    complete.set_defaults(func=cmd_complete)

    info = commands.add_parser("info", help="print a model's card")
    info.add_argument("dir", nargs="?", default=None, help="model directory (default: as serve)")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)

    from . import serve

    serve.register(commands)
    register_training(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    global _EARLY
    try:
        if _EARLY:  # Python's usual handler back in place of the module's holding one
            _signal.signal(_signal.SIGINT, _signal.default_int_handler)
            _EARLY = False
            if _early_interrupts:
                raise KeyboardInterrupt
        return run_command(build_parser, argv)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
