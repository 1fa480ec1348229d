"""Corpus walking, skipping rules, text normalisation and the memory-mapped token layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ghostwrite.training.corpus import (
    CorpusError,
    build_tokens,
    choose_validation,
    normalise,
    scan,
)
from tests.conftest import PROSE, SHARED_DATA


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    """A folder of notes with everything the walker must skip next to the real text."""
    root = tmp_path / "notes"
    write(root / "diary.md", "Dear diary, today I wrote a language server.\n")
    write(root / "drafts" / "essay.txt", "An essay about foxes and rivers.\n")
    write(root / "drafts" / "essay-copy.txt", "An essay about foxes and rivers.\r\n")  # same text
    write(root / "drafts" / "empty.txt", "  \n")
    write(root / "drafts" / ".secret.txt", "hidden file\n")
    write(root / "photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    write(root / ".git" / "config", "[core]\n")
    write(root / ".obsidian" / "workspace.json", "{}\n")
    write(root / "env" / "pyvenv.cfg", "home = /usr/bin\n")
    write(root / "env" / "lib" / "site.py", "import os\n")
    write(root / "node_modules" / "pkg" / "README.md", "a package\n")
    write(root / "build" / "out.txt", "generated\n")
    return root


def test_walk_keeps_text_and_counts_every_skip(notes: Path) -> None:
    corpus = scan([notes])
    # the first of two files with the same text (after CRLF -> LF) is used
    assert sorted(f.path.name for f in corpus.files) == ["diary.md", "essay-copy.txt"]
    assert corpus.skipped == {
        "duplicates": 1,
        "empty files": 1,
        "hidden files": 1,
        "binary files": 1,
        "version-control folders": 1,
        "hidden folders": 1,
        "virtual environments": 1,
        "build-output folders": 2,
    }
    summary = corpus.summary()
    assert summary["files"] == 2
    assert summary["characters"] == corpus.chars == sum(f.chars for f in corpus.files)
    assert len(summary["sha256"]) == 64


def test_include_exclude_and_globs(notes: Path) -> None:
    only_md = scan([notes], include=["*.md"])
    assert [f.path.name for f in only_md.files] == ["diary.md"]
    assert only_md.skipped["not matching --include"] == 4

    no_drafts = scan([notes], exclude=["drafts"])
    assert [f.path.name for f in no_drafts.files] == ["diary.md"]
    assert no_drafts.skipped["excluded by pattern"] == 1

    globbed = scan([str(notes / "**" / "*.txt")])
    assert [f.path.name for f in globbed.files] == ["essay-copy.txt"]
    assert globbed.skipped["build-output folders"] == 1  # build/out.txt
    assert globbed.skipped["duplicates"] == 1


def test_explicit_hidden_file_is_used(notes: Path) -> None:
    corpus = scan([notes / "drafts" / ".secret.txt"])
    assert [f.path.name for f in corpus.files] == [".secret.txt"]


def test_normalise_drops_bom_and_crlf_and_counts_bad_bytes() -> None:
    text, bad = normalise(b"\xef\xbb\xbfline one\r\nline two\rline three\n")
    assert (text, bad) == ("line one\nline two\nline three\n", 0)
    text, bad = normalise("caf\u00e9 ".encode() + b"\xff\xfe ok \xef\xbf\xbd")
    assert text == "caf\u00e9 \ufffd\ufffd ok \ufffd"
    assert bad == 2  # the U+FFFD written in the file is text, not a decoding error


def test_undecodable_bytes_never_crash_and_are_reported(tmp_path: Path) -> None:
    write(tmp_path / "latin1.txt", "na\u00efve r\u00e9sum\u00e9 text\n".encode("latin-1"))
    corpus = scan([tmp_path])
    assert corpus.replacements == 3
    assert corpus.summary()["replaced_bytes"] == 3


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "no text files found"),
        (lambda root: write(root / "a.bin", b"\x00\x01\x02" * 100), "1 binary files"),
        (lambda root: write(root / "empty.txt", ""), "1 empty files"),
    ],
)
def test_bad_corpora_raise_a_clear_error(tmp_path: Path, setup, message: str) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    setup(root)
    with pytest.raises(CorpusError, match=message):
        scan([root])


def test_missing_paths_and_no_paths_are_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such file or folder"):
        scan([tmp_path / "nope.txt"])
    with pytest.raises(CorpusError, match="no files match"):
        scan([str(tmp_path / "*.nothing")])
    with pytest.raises(CorpusError, match="nothing to train on"):
        scan([])


def test_tokens_split_by_files_and_cached(tmp_path: Path) -> None:
    for i in range(10):
        write(tmp_path / "c" / f"note{i}.txt", f"Note number {i}. " + PROSE[: 200 + 10 * i])
    corpus = scan([tmp_path / "c"])
    data = build_tokens(corpus, val_fraction=0.1, cache_dir=tmp_path / "cache")
    assert data.split_mode == "files"
    assert 1 <= data.val_files < 10
    assert len(data.tokens) == corpus.tokens
    # every file's text appears whole on one side of the split
    val_text = bytes(data.val).decode()
    held_out = [f for f in corpus.files if f.path.read_text() in val_text]
    assert len(held_out) == data.val_files
    assert 0.05 < len(data.val) / len(data.tokens) < 0.15

    mtime = data.path.stat().st_mtime_ns
    again = build_tokens(corpus, val_fraction=0.1, cache_dir=tmp_path / "cache")
    assert again.path == data.path and again.split == data.split
    assert data.path.stat().st_mtime_ns >= mtime
    assert np.array_equal(np.asarray(again.tokens), np.asarray(data.tokens))


def test_single_file_falls_back_to_the_tail(tmp_path: Path) -> None:
    corpus = scan([write(tmp_path / "one.txt", PROSE * 3)])
    assert choose_validation(corpus.files, 0.1) is None
    data = build_tokens(corpus, val_fraction=0.1, cache_dir=tmp_path / "cache")
    assert data.split_mode == "tail"
    assert bytes(data.tokens).decode() == PROSE * 3 + "\n"
    assert len(data.val) == round(0.1 * len(data.tokens))


def test_shared_books_are_normalised(tmp_path: Path) -> None:
    books = sorted(SHARED_DATA.glob("gutenberg-*.txt"))[:2] if SHARED_DATA.is_dir() else []
    if not books:
        pytest.skip(f"shared books not found in {SHARED_DATA}")
    corpus = scan(books)
    data = build_tokens(corpus, val_fraction=0.1, cache_dir=tmp_path / "cache")
    raw = np.asarray(data.tokens)
    assert not np.any(raw == ord("\r"))
    assert bytes(raw[:3]) != b"\xef\xbb\xbf"
    assert data.split_mode == "tail"  # two books: neither is ~10% of the total
