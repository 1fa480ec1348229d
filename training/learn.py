"""One round of learning from the writer: fine-tune a model on their folders, and keep the result
only if it is better on what they wrote last.

    ghostwrite learn [--model DIR] [--out DIR] [--steps N] [--progress json] FOLDER...

(the flags are in ``cli``; this module does the work).

The newest files (by modification time) are held out, about a tenth of the text and at least one
file: they are what the writer is writing now, so they are what the next suggestions will be
about (a folder of one file holds out its last tenth, as ``ghostwrite train`` does). The model
(``--model``: by default the personal one, else the bundled one) is fine-tuned on the rest for
``--steps`` steps into a staging folder next to ``--out``. Then the old model and the candidate
are measured on the held-out text: bits per character on its newest ``SCORED_CHARS``, and the
keystrokes a typist saves with each model's word suggestions (``ghostwrite.model.typist``) on the
newest ``TYPED_CHARS`` characters. The candidate replaces the model at ``--out`` only when both
improve, in one atomic rename; otherwise it is deleted and the reason is the round's last line.

Killed at any moment, the model at ``--out`` is whole: the old one or the new one. Only the token
cache (``~/.cache/ghostwrite/tokens``) and the folder next to ``--out`` see the text. With
``--progress json`` every line on stdout is one JSON event: the training run's own, then
``{"event": "evaluate"}`` and one ``done`` event with ``swapped``, ``before`` and ``after``
(``bits_per_char``, ``savings``, ``precision``) and a ``message``.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ghostwrite.model import files

from .config import TrainConfig
from .corpus import CorpusError, CorpusFile, normalise, scan
from .outputs import METRICS_FILE

HELD_OUT_SHARE = 0.1  # of the characters: the newest files up to this share, at least one
MIN_HELD_OUT_CHARS = 200  # less is no test of anything
SCORED_CHARS = 200_000  # the newest characters scored in bits per character (seconds, not minutes)
TYPED_CHARS = 2000  # the newest characters the typist writes, after the text before them
CONTEXT_CHARS = 4000  # of text before those, already written when the typist starts
STAGING_PREFIX = ".learning-"
OWNED = {files.WEIGHTS_FILE, files.META_FILE, METRICS_FILE}


class LearnError(Exception):
    """A round that cannot run; the message says why and what would let it."""


@dataclass(frozen=True)
class Measured:
    bits_per_char: float
    savings: float
    precision: float


@dataclass(frozen=True)
class Verdict:
    swapped: bool
    message: str


def newest_files(corpus_files: list[CorpusFile], share: float = HELD_OUT_SHARE) -> list[CorpusFile]:
    """The most recently modified files, newest first, until they hold ``share`` of the text
    (at least one file, never all of them; none when there is only one)."""
    by_age = sorted(corpus_files, key=lambda f: f.path.stat().st_mtime_ns, reverse=True)
    total = sum(f.chars for f in corpus_files)
    held: list[CorpusFile] = []
    for f in by_age[:-1]:
        held.append(f)
        if sum(h.chars for h in held) >= share * total:
            break
    return held


def held_out_text(corpus_files: list[CorpusFile], held: list[CorpusFile]) -> str:
    """The held-out files as one text, oldest first, so that it ends with the newest writing;
    with no file held out (a single file), the tail training validates on."""
    if held:
        return "\n".join(normalise(f.path.read_bytes())[0] for f in reversed(held))
    data = b"".join(normalise(f.path.read_bytes())[0].encode() + b"\n" for f in corpus_files)
    tail = max(2, round(TrainConfig.val_fraction * len(data)))  # as tokens.build_tokens splits
    return data[-tail:].decode("utf-8", "replace")


def measure(model_files: files.ModelFiles, text: str) -> Measured:
    """Bits per character on the last ``SCORED_CHARS`` of ``text`` and the typist's savings on
    its last ``TYPED_CHARS``."""
    import numpy as np

    from ghostwrite.model.inference import Decoder
    from ghostwrite.model.typist import type_text

    from .evaluate import evaluate_tokens, load_mlx_model

    tokens = np.frombuffer(text[-SCORED_CHARS:].encode("utf-8"), dtype=np.uint8)
    scored = evaluate_tokens(load_mlx_model(model_files), tokens)
    window = text[-(CONTEXT_CHARS + TYPED_CHARS) :]
    typed = type_text(Decoder(model_files), window, start=max(0, len(window) - TYPED_CHARS))
    return Measured(scored.bits_per_char, typed.savings, typed.precision)


def judge(before: Measured, after: Measured) -> Verdict:
    """Swap only when the candidate is better on both counts."""
    figures = (
        f"{before.bits_per_char:.3f} -> {after.bits_per_char:.3f} bits/char, "
        f"keystrokes saved {100 * before.savings:.1f}% -> {100 * after.savings:.1f}%"
    )
    if after.bits_per_char < before.bits_per_char and after.savings > before.savings:
        return Verdict(True, f"learned from your writing: {figures} on your newest text")
    return Verdict(False, f"kept the current model (the new one was not better: {figures})")


@contextlib.contextmanager
def one_round_at_a_time(out: Path) -> Iterator[None]:
    """Hold the lock next to ``out`` (two servers may learn into one personal model); once
    held, staging folders there are leftovers of a killed round, and are removed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{STAGING_PREFIX}lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LearnError(f"another learning round is writing {out}") from None
        for stale in out.parent.glob(f"{STAGING_PREFIX}*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        yield


def stop_when_parent_goes() -> None:
    """Exit (as after Ctrl-C) when stdin closes: the server that started us is gone."""

    def watch() -> None:
        # The raw descriptor: a daemon thread blocked in the buffered reader would hold its
        # lock while the interpreter shuts down, which aborts the process.
        with contextlib.suppress(OSError):
            while os.read(0, 4096):
                pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def learn_round(
    folders: list[str],
    start_from: Path,
    out: Path,
    steps: int,
    progress: str = "auto",
    token_cache: Path | None = None,
    measure: Callable[[files.ModelFiles, str], Measured] = measure,
) -> Verdict:
    """Fine-tune ``start_from`` on ``folders`` and put the result at ``out`` if it is better on
    the newest files (see the module docstring); ``measure`` scores a model on them."""
    from .train import train

    try:
        corpus = scan(folders)
    except CorpusError as err:
        raise LearnError(str(err)) from None
    held = newest_files(corpus.files)
    text = held_out_text(corpus.files, held)
    if len(text) < MIN_HELD_OUT_CHARS:
        raise LearnError(
            f"the newest writing holds {len(text)} characters; learning needs at least "
            f"{MIN_HELD_OUT_CHARS} to check a new model"
        )
    try:
        current = files.load_model(start_from)
    except files.ModelFileError as err:
        raise LearnError(str(err)) from None
    files.check_model_folder(out)
    with one_round_at_a_time(out):
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out.parent))
        try:
            train(
                TrainConfig(
                    paths=list(folders),
                    out=staging / "model",
                    checkpoint_dir=staging / "checkpoint",
                    init=str(start_from),
                    max_steps=steps,
                    hold_out=[glob.escape(str(f.path)) for f in held],
                    progress=progress,
                    token_cache=token_cache,
                    command=f"ghostwrite learn (from {start_from})",
                )
            )
            emit(
                progress,
                {"event": "evaluate", "message": "measuring both models on your newest text"},
            )
            before = measure(current, text)
            after = measure(files.load_model(staging / "model"), text)
            verdict = judge(before, after)
            if verdict.swapped:
                files.replace_directory(staging / "model", out, OWNED)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    event = {"event": "done", "swapped": verdict.swapped, "message": verdict.message}
    emit(progress, {**event, "before": asdict(before), "after": asdict(after)})
    return verdict


def emit(progress: str, event: dict[str, Any]) -> None:
    if progress == "json":
        print(json.dumps(event), flush=True)
