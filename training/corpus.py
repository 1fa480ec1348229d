"""The training corpus: find the user's text files, read them safely, and lay their tokens out in
a memory-mapped file with a train/validation split.

Walking skips what is not writing (hidden folders, version control, virtual environments, build
outputs, binary files) and counts every skip by reason. Reading never fails on bad bytes: they
become U+FFFD and are counted. Byte-order marks are dropped and CRLF/CR become LF. Files with the
same (normalised) content are used once.

Tokens go to ``<cache>/<key>.bin`` (uint8, as nanoGPT's ``train.bin``), keyed by the corpus
hash, so a corpus larger than memory trains from a memory map and a second run skips the work.
Layout: training documents first, validation documents last; ``split`` is the boundary.
"""

from __future__ import annotations

import codecs
import errno
import fnmatch
import glob
import hashlib
import io
import itertools
import json
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ghostwrite.model import tokenizer
from ghostwrite.model.files import NotRegularFile, open_regular

FORMAT_VERSION = 1  # of normalisation and layout: part of every cache key
SNIFF_BYTES = 8192
CHUNK_BYTES = 1 << 20  # files are read this much at a time, never whole
MAX_BAD_SHARE = 0.3  # more undecodable bytes than this in the first block: a binary file
CACHE_ENTRIES_KEPT = 4
CHANGE_RETRIES = 3
VCS_DIRS = frozenset({".git", ".hg", ".svn", ".bzr", "_darcs", ".jj"})
VENV_DIRS = frozenset({"venv", ".venv", "virtualenv", "site-packages", "__pypackages__"})
BUILD_DIRS = frozenset(
    {
        "node_modules",
        "__pycache__",
        "build",
        "dist",
        "target",
        "_build",
        "out",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".eggs",
    }
)
GLOB_CHARS = frozenset("*?[")
UTF8_REPLACEMENT = "\ufffd".encode()


class CorpusError(Exception):
    """A corpus that cannot be trained on; the message says why and what to do."""


class CorpusChanged(CorpusError):
    """A file changed or vanished between the scan and the tokenization."""

    def __init__(self, path: Path, how: str) -> None:
        super().__init__(f"{path} {how} while it was being read; run again")
        self.path, self.how = path, how


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    sha256: str  # of the normalised UTF-8 text
    chars: int
    size: int  # bytes of normalised UTF-8 = tokens
    replacements: int  # undecodable bytes replaced by U+FFFD


@dataclass
class Corpus:
    """The text files chosen for training, in a fixed order (by content hash)."""

    files: list[CorpusFile]
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def sha256(self) -> str:
        digest = hashlib.sha256(f"ghostwrite-corpus-v{FORMAT_VERSION}".encode())
        for f in self.files:
            digest.update(bytes.fromhex(f.sha256))
        return digest.hexdigest()

    @property
    def chars(self) -> int:
        return sum(f.chars for f in self.files)

    @property
    def tokens(self) -> int:
        """Token count of the laid-out stream (each document ends with a newline)."""
        return sum(f.size + 1 for f in self.files)

    @property
    def replacements(self) -> int:
        return sum(f.replacements for f in self.files)

    def summary(self) -> dict[str, object]:
        return {
            "files": len(self.files),
            "characters": self.chars,
            "bytes": self.tokens,
            "sha256": self.sha256,
            "replaced_bytes": self.replacements,
            "skipped": dict(sorted(self.skipped.items())),
        }

    def skipped_text(self) -> str:
        if not self.skipped:
            return "nothing skipped"
        parts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
        return f"skipped {parts}"


@dataclass(frozen=True)
class Normalised:
    """What streaming one file through ``normalised_chunks`` found."""

    sha256: str  # of the normalised UTF-8 bytes
    chars: int
    size: int  # normalised UTF-8 bytes
    replacements: int  # undecodable bytes replaced by U+FFFD
    blank: bool  # nothing but whitespace


def normalised_chunks(
    handle: BinaryIO, sink: Callable[[bytes], object] | None = None
) -> Normalised:
    """Decode a file as UTF-8 (bad bytes become U+FFFD and are counted), drop its byte-order
    mark and turn CRLF/CR into LF, ``CHUNK_BYTES`` at a time: memory stays bounded whatever the
    file's size. Each normalised chunk goes to ``sink``."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    digest = hashlib.sha256()
    chars = size = replacements = 0
    blank = at_start = True
    carry_cr = False  # a CR that ended the last chunk: the next one may start with its LF
    tail = b""  # a genuine U+FFFD may straddle two reads
    while True:
        raw = handle.read(CHUNK_BYTES)
        text = decoder.decode(raw, final=not raw)
        # U+FFFD already present in the file is text, not a decoding error.
        window = tail + raw
        replacements += text.count("\ufffd") - window.count(UTF8_REPLACEMENT)
        tail = window[-2:]
        if at_start and text:
            text, at_start = text.removeprefix("\ufeff"), False
        if carry_cr:
            text = "\r" + text
        carry_cr = bool(raw) and text.endswith("\r")
        if carry_cr:
            text = text[:-1]
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        data = text.encode("utf-8")  # never fails: decoded UTF-8 holds no lone surrogates
        digest.update(data)
        chars += len(text)
        size += len(data)
        blank = blank and not text.strip()
        if sink is not None and data:
            sink(data)
        if not raw:
            return Normalised(digest.hexdigest(), chars, size, replacements, blank)


def normalise(raw: bytes) -> tuple[str, int]:
    """UTF-8 bytes -> (text without BOM, LF line ends; count of replaced undecodable bytes)."""
    parts: list[bytes] = []
    found = normalised_chunks(io.BytesIO(raw), parts.append)
    return b"".join(parts).decode("utf-8"), found.replacements


def looks_binary(head: bytes) -> bool:
    """NUL bytes, or mostly undecodable bytes, in the first block of a file."""
    if b"\0" in head:
        return True
    if not head:
        return False
    cut = tokenizer.complete_prefix_length(head) if len(head) == SNIFF_BYTES else len(head)
    text = head[:cut].decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - head.count(UTF8_REPLACEMENT)
    return bad > MAX_BAD_SHARE * max(1, len(text))


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def _skip_dir_reason(path: Path) -> str | None:
    name = path.name
    if name in VCS_DIRS:
        return "version-control folders"
    if name in VENV_DIRS or os.path.isfile(
        path / "pyvenv.cfg"
    ):  # False, not an error, if unreadable
        return "virtual environments"
    if name in BUILD_DIRS or name.endswith(".egg-info"):
        return "build-output folders"
    if name.startswith("."):
        return "hidden folders"
    return None


def fixed_part(given: str | Path) -> Path:
    """A path, or the part of a glob before its first wildcard (``notes/**/*.md``: ``notes``)."""
    path = Path(str(given)).expanduser()
    fixed = list(itertools.takewhile(lambda p: not GLOB_CHARS & set(p), path.parts))
    return Path(*fixed) if fixed else Path(".")


def files_under(
    root: Path, exclude: Sequence[str], skipped: Counter[str]
) -> Iterator[tuple[Path, str]]:
    """The regular files under ``root`` as (resolved path, path relative to root): the walk of
    training and of the server's workspace dictionary. Skipped folders are pruned; symlink loops,
    links that lead out of ``root`` and things that are not regular files (FIFOs, devices,
    sockets) are skipped and counted, never opened."""
    top = Path(os.path.realpath(root))
    for path, rel in _walk(root, exclude, skipped):
        try:
            real = path.resolve(strict=True)
        except RuntimeError:
            skipped["symlink loops"] += 1  # Path.resolve reports a loop this way
            continue
        except OSError as err:
            if err.errno == errno.ELOOP:
                skipped["symlink loops"] += 1
            elif path.is_symlink():
                skipped["broken links"] += 1
            else:
                skipped["unreadable files"] += 1
            continue
        if not real.is_relative_to(top):
            skipped["links leading out of the folder"] += 1
            continue
        try:
            mode = real.stat().st_mode
        except OSError:
            skipped["unreadable files"] += 1
            continue
        if not stat.S_ISREG(mode):
            skipped["not regular files"] += 1
            continue
        yield real, rel


def _walk(root: Path, exclude: Sequence[str], skipped: Counter[str]) -> Iterator[tuple[Path, str]]:
    """Files under ``root`` as (path, path relative to root), pruning skipped folders."""

    def unreadable(error: OSError) -> None:
        skipped["unreadable folders"] += 1

    for current, dirnames, filenames in os.walk(root, onerror=unreadable):
        here = Path(current)
        kept = []
        for d in sorted(dirnames):
            rel = (here / d).relative_to(root).as_posix()
            reason = _skip_dir_reason(here / d)
            if reason is None and _matches(rel, exclude):
                reason = "excluded by pattern"
            if reason is None:
                kept.append(d)
            else:
                skipped[reason] += 1
        dirnames[:] = kept  # os.walk descends only into what is left
        for name in sorted(filenames):
            if name.startswith("."):
                skipped["hidden files"] += 1
                continue
            yield here / name, (here / name).relative_to(root).as_posix()


def _candidates(
    paths: Iterable[str | Path], exclude: Sequence[str], skipped: Counter[str]
) -> Iterator[tuple[Path, str]]:
    for given in paths:
        text = str(given)
        path = Path(text).expanduser()
        try:
            mode: int | None = path.stat().st_mode
        except PermissionError:
            raise CorpusError(f"cannot read {text}: permission denied") from None
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise CorpusError(f"{text} is a symlink loop") from None
            mode = None
        if mode is None and GLOB_CHARS & set(text):
            matches = sorted(glob.glob(str(path), recursive=True))
            if not matches:
                raise CorpusError(f"no files match {text!r}")
            # Folders under the glob's fixed part follow the walking rules (`notes/**/*.md`
            # must not reach into notes/node_modules).
            base = fixed_part(text)
            for match in map(Path, matches):
                reason = next(
                    filter(None, (_skip_dir_reason(d) for d in match.parents if base in d.parents)),
                    None,
                )
                if reason is None:
                    yield from _candidates([match], exclude, skipped)
                else:
                    skipped[reason] += 1
        elif mode is None:
            raise CorpusError(f"no such file or folder: {text}")
        elif stat.S_ISDIR(mode):
            yield from files_under(path, exclude, skipped)
        else:
            yield path, path.name


def scan(
    paths: Sequence[str | Path],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Corpus:
    """Find and read the training files (one at a time: nothing is held in memory)."""
    if not paths:
        raise CorpusError("nothing to train on: give files or folders of your writing")
    skipped: Counter[str] = Counter()
    seen_paths: set[Path] = set()
    by_hash: dict[str, CorpusFile] = {}
    for path, rel in _candidates(paths, exclude, skipped):
        real = Path(os.path.realpath(path))
        if real in seen_paths:
            continue
        seen_paths.add(real)
        if exclude and _matches(rel, exclude):
            skipped["excluded by pattern"] += 1
            continue
        if include and not _matches(rel, include):
            skipped["not matching --include"] += 1
            continue
        try:
            with open_regular(real) as handle:
                if looks_binary(handle.read(SNIFF_BYTES)):
                    skipped["binary files"] += 1
                    continue
                handle.seek(0)
                found = normalised_chunks(handle)
        except NotRegularFile:
            skipped["not regular files"] += 1
            continue
        except OSError:
            skipped["unreadable files"] += 1
            continue
        if found.blank:
            skipped["empty files"] += 1
            continue
        if found.sha256 in by_hash:
            skipped["duplicates"] += 1
            continue
        by_hash[found.sha256] = CorpusFile(
            real, found.sha256, found.chars, found.size, found.replacements
        )
    files = sorted(by_hash.values(), key=lambda f: f.sha256)
    corpus = Corpus(files, skipped)
    if not files:
        where = ", ".join(str(p) for p in paths)
        raise CorpusError(f"no text files found in {where} ({corpus.skipped_text()})")
    return corpus


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
            return _matches(f.path.name, patterns) or _matches(str(f.path), patterns)

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
