"""The token stream of a corpus: a cached memory-mapped file with a train/validation split.

Tokens go to ``<cache>/<key>.bin`` (uint8, as nanoGPT's ``train.bin``), keyed by the corpus
hash and the split rule, so a corpus larger than memory trains from a memory map and a second run
skips the work. Layout: training documents first, validation documents last; ``split`` is the
boundary.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ghostwrite.model.files import NotRegularFile, open_regular

from .corpus import Corpus, CorpusChanged, CorpusError, CorpusFile, normalised_chunks, scan
from .walk import matches

CACHE_ENTRIES_KEPT = 4
CHANGE_RETRIES = 3


@dataclass
class TokenData:
    """The laid-out token stream: ``tokens[:split]`` trains, ``tokens[split:]`` validates."""

    tokens: np.ndarray  # uint8 memory map
    split: int
    split_mode: str  # "files": whole held-out files; "tail": the end of the stream
    val_files: int
    path: Path | None = None
    val_names: tuple[str, ...] = ()  # the held-out files' names, for the model card

    @property
    def train(self) -> np.ndarray:
        return self.tokens[: self.split]

    @property
    def val(self) -> np.ndarray:
        return self.tokens[self.split :]

    def summary(self) -> dict[str, object]:
        return {
            "train_tokens": int(self.split),
            "val_tokens": int(len(self.tokens) - self.split),
            "validation": "held-out files" if self.split_mode == "files" else "end of the text",
            "val_files": self.val_files,
            "val_file_names": list(self.val_names),
        }


def choose_validation(
    files: Sequence[CorpusFile], fraction: float, hold_out: Sequence[str] = ()
) -> list[CorpusFile] | None:
    """The files to hold out: those whose name or path matches a ``hold_out`` glob, else whole
    files totalling about ``fraction`` of the corpus, or None if no such set exists (one file,
    or files too large to hold out): then the caller splits off the tail."""
    if hold_out:

        def held(f: CorpusFile, patterns: Sequence[str]) -> bool:
            return matches(f.path.name, patterns) or matches(str(f.path), patterns)

        chosen = [f for f in files if held(f, hold_out)]
        unmatched = [p for p in hold_out if not any(held(f, [p]) for f in files)]
        if unmatched:
            raise CorpusError(f"no file in the corpus matches --hold-out {unmatched[0]!r}")
        if len(chosen) == len(files):
            raise CorpusError("--hold-out matches every file: nothing would be left to train on")
        return chosen
    if len(files) < 2:
        return None
    total = sum(f.size + 1 for f in files)
    target = fraction * total
    chosen: list[CorpusFile] = []
    held = 0
    for f in reversed(files):  # hash order: an arbitrary but fixed choice
        if held + f.size + 1 <= 1.5 * target:
            chosen.append(f)
            held += f.size + 1
        if held >= 0.5 * target:
            break
    if held < 0.5 * target or len(chosen) == len(files):
        return None
    return chosen


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ghostwrite" / "tokens"


def build_tokens(
    corpus: Corpus,
    val_fraction: float,
    cache_dir: Path | None = None,
    hold_out: Sequence[str] = (),
) -> TokenData:
    """Lay the corpus out as tokens in a cached memory-mapped file (built once per corpus)."""
    cache_dir = cache_dir or default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    split_rule = f"{val_fraction!r}:{sorted(hold_out)!r}" if hold_out else repr(val_fraction)
    key = hashlib.sha256(f"{corpus.sha256}:{split_rule}".encode()).hexdigest()[:32]
    bin_path, meta_path = cache_dir / f"{key}.bin", cache_dir / f"{key}.json"
    meta = _read_meta(meta_path, bin_path)
    if meta is None:
        val = choose_validation(corpus.files, val_fraction, hold_out) or []
        val_hashes = {f.sha256 for f in val}
        order = [f for f in corpus.files if f.sha256 not in val_hashes] + val
        written = _write_stream(order, bin_path, corpus.tokens)
        if val:
            split, mode = written - sum(f.size + 1 for f in val), "files"
        else:
            split, mode = written - max(2, round(val_fraction * written)), "tail"
        meta = {
            "tokens": written,
            "split": split,
            "split_mode": mode,
            "val_files": len(val),
            "val_names": sorted(f.path.name for f in val),
        }
        tmp = meta_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, meta_path)  # last: a cache entry is valid only once its meta exists
    for path in (bin_path, meta_path):
        path.touch()
    _prune_cache(cache_dir)
    tokens = np.memmap(bin_path, dtype=np.uint8, mode="r")
    return TokenData(
        tokens,
        int(meta["split"]),
        meta["split_mode"],
        meta["val_files"],
        bin_path,
        tuple(meta.get("val_names", ())),
    )


def _read_meta(meta_path: Path, bin_path: Path) -> dict | None:
    try:
        meta = json.loads(meta_path.read_text())
        if bin_path.stat().st_size == meta["tokens"] and 0 < meta["split"] < meta["tokens"]:
            return meta
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _write_stream(order: Sequence[CorpusFile], bin_path: Path, expected: int) -> int:
    """Write each file's normalised bytes plus a newline, re-checking each file's hash: a file
    edited or removed since the scan raises ``CorpusChanged`` instead of poisoning the cache."""
    tmp = bin_path.with_suffix(f".{os.getpid()}.tmp")
    written = 0
    try:
        with open(tmp, "wb") as out:
            for f in order:
                try:
                    with open_regular(f.path) as handle:
                        found = normalised_chunks(handle, out.write)
                except FileNotFoundError:
                    raise CorpusChanged(f.path, "was removed") from None
                except NotRegularFile:
                    raise CorpusChanged(f.path, "became something other than a file") from None
                except OSError as err:
                    raise CorpusError(f"cannot read {f.path}: {err.strerror}") from None
                if found.sha256 != f.sha256:
                    raise CorpusChanged(f.path, "changed")
                out.write(b"\n")
                written += found.size + 1
        if written != expected:
            raise CorpusError("the corpus changed while it was being read; run again")
        os.replace(tmp, bin_path)
    finally:
        tmp.unlink(missing_ok=True)
    return written


def prepare(
    paths: Sequence[str | Path],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    val_fraction: float = 0.1,
    cache_dir: Path | None = None,
    hold_out: Sequence[str] = (),
) -> tuple[Corpus, TokenData]:
    """``scan`` then ``build_tokens``, scanning again when a file changes or disappears between
    the two reads (an editor saving, a sync client): the tokens always match the corpus."""
    for _ in range(CHANGE_RETRIES):
        corpus = scan(paths, include, exclude)
        try:
            return corpus, build_tokens(corpus, val_fraction, cache_dir, hold_out)
        except CorpusChanged as changed:
            last = changed
    raise CorpusError(
        f"{last.path} {last.how} while it was being read, {CHANGE_RETRIES} times in a row; "
        "leave it out with --exclude, or train when nothing is writing to it"
    )


def _prune_cache(cache_dir: Path) -> None:
    """Keep the most recently used token files; the cache is only a speed-up."""
    entries = sorted(cache_dir.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for meta in entries[CACHE_ENTRIES_KEPT:]:
        meta.unlink(missing_ok=True)
        meta.with_suffix(".bin").unlink(missing_ok=True)
