"""The training corpus: find the user's text files (``walk``) and read them safely.

Walking skips what is not writing (hidden folders, version control, virtual environments, build
outputs, binary files) and counts every skip by reason. Reading never fails on bad bytes: they
become U+FFFD and are counted. Byte-order marks are dropped and CRLF/CR become LF. Files with the
same (normalised) content are used once.

``tokens`` lays the corpus out for training.
"""

from __future__ import annotations

import codecs
import errno
import glob
import hashlib
import io
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ghostwrite.model import tokenizer
from ghostwrite.model.files import NotRegularFile, open_regular

from . import walk

FORMAT_VERSION = 1  # of normalisation and layout: part of every cache key
SNIFF_BYTES = 8192
CHUNK_BYTES = 1 << 20  # files are read this much at a time, never whole
MAX_BAD_SHARE = 0.3  # more undecodable bytes than this in the first block: a binary file
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
        if mode is None and walk.GLOB_CHARS & set(text):
            matches = sorted(glob.glob(str(path), recursive=True))
            if not matches:
                raise CorpusError(f"no files match {text!r}")
            # Folders under the glob's fixed part follow the walking rules (`notes/**/*.md`
            # must not reach into notes/node_modules).
            base = walk.fixed_part(text)
            for match in map(Path, matches):
                reason = next(
                    filter(
                        None, (walk.skip_dir_reason(d) for d in match.parents if base in d.parents)
                    ),
                    None,
                )
                if reason is None:
                    yield from _candidates([match], exclude, skipped)
                else:
                    skipped[reason] += 1
        elif mode is None:
            raise CorpusError(f"no such file or folder: {text}")
        elif stat.S_ISDIR(mode):
            yield from walk.files_under(path, exclude, skipped)
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
        if exclude and walk.matches(rel, exclude):
            skipped["excluded by pattern"] += 1
            continue
        if include and not walk.matches(rel, include):
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
