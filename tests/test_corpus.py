"""Corpus walking, skipping rules, text normalisation and the memory-mapped token layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghostwrite.server.client import without_root_powers
from ghostwrite.training import corpus as corpus_mod
from ghostwrite.training import tokens as tokens_mod
from ghostwrite.training.corpus import CorpusError, normalise, scan
from ghostwrite.training.harness import PROSE, tokenizing_peak_rss_mb
from ghostwrite.training.tokens import build_tokens, choose_validation, prepare

# Byte pieces that make chunk boundaries hard: CR/LF pairs, a BOM, a genuine U+FFFD, stray
# continuation bytes, truncated and complete multi-byte characters, an encoded surrogate.
TRICKY_BYTES = [
    b"\r",
    b"\n",
    b"\r\n",
    b"\xef\xbb\xbf",
    b"\xef\xbf\xbd",
    b"\xbf\xbd",
    b"\xff",
    b"a",
    b"\xc3\xa9",
    b"\xf0\x9f\x98\x80",
    b"\xe2",
    b"\xed\xa0\x80",
]

# The shared public-domain texts live beside the project (../shared/data); tests that need them
# skip when they are absent.
SHARED_DATA = Path(
    os.environ.get(
        "GHOSTWRITE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
    )
)


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


@given(
    pieces=st.lists(st.sampled_from(TRICKY_BYTES), max_size=40),
    chunk=st.integers(min_value=1, max_value=9),
)
def test_reading_in_chunks_equals_reading_whole(pieces: list[bytes], chunk: int) -> None:
    raw = b"".join(pieces)
    whole = raw.decode("utf-8", errors="replace")
    want_bad = whole.count("\ufffd") - raw.count("\ufffd".encode())
    want = whole.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    saved = corpus_mod.CHUNK_BYTES
    corpus_mod.CHUNK_BYTES = chunk
    try:
        assert normalise(raw) == (want, want_bad)
    finally:
        corpus_mod.CHUNK_BYTES = saved


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


def test_hold_out_names_the_validation_files(tmp_path: Path) -> None:
    for name in ("alice.txt", "time-machine.txt", "emma.txt", "notes.md"):
        write(tmp_path / "c" / name, f"{name}: " + PROSE)
    corpus = scan([tmp_path / "c"])
    data = build_tokens(corpus, 0.1, tmp_path / "cache", hold_out=["alice.txt", "time-*"])
    assert data.split_mode == "files"
    assert data.val_names == ("alice.txt", "time-machine.txt")
    val_text = bytes(data.val).decode()
    assert "alice.txt: " in val_text and "time-machine.txt: " in val_text
    assert "emma.txt" not in val_text and "notes.md" not in val_text
    assert data.summary()["val_file_names"] == ["alice.txt", "time-machine.txt"]
    # the held-out set is part of the cache key: another choice lays the tokens out anew
    other = build_tokens(corpus, 0.1, tmp_path / "cache", hold_out=["emma.txt"])
    assert other.path != data.path and other.val_names == ("emma.txt",)
    with pytest.raises(CorpusError, match=r"no file in the corpus matches --hold-out 'bob\.txt'"):
        build_tokens(corpus, 0.1, tmp_path / "cache", hold_out=["bob.txt"])
    with pytest.raises(CorpusError, match="matches every file"):
        build_tokens(corpus, 0.1, tmp_path / "cache", hold_out=["*"])


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


def edit_after_scan(monkeypatch: pytest.MonkeyPatch, edit, times: int) -> None:
    """Let ``edit`` change the corpus right after each of the first ``times`` scans: the file
    changes between the scan and the tokenization, as when an editor saves mid-run."""
    real_scan = corpus_mod.scan
    calls = []

    def scan_then_edit(*args, **kwargs):
        found = real_scan(*args, **kwargs)
        calls.append(1)
        if len(calls) <= times:
            edit(len(calls))
        return found

    monkeypatch.setattr(tokens_mod, "scan", scan_then_edit)


def test_a_file_edited_or_removed_during_tokenization_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "c"
    for i in range(4):
        write(root / f"note{i}.txt", f"Note {i}. " + PROSE)

    def edit(call: int) -> None:
        if call == 1:
            write(root / "note0.txt", "Rewritten while training started. " + PROSE)
        else:
            (root / "note1.txt").unlink()

    edit_after_scan(monkeypatch, edit, times=2)
    corpus, data = prepare([root], cache_dir=tmp_path / "cache")
    text = bytes(data.tokens).decode()
    assert "Rewritten while training started." in text and "Note 1." not in text
    assert len(corpus.files) == 3 and len(data.tokens) == corpus.tokens


def test_a_file_that_never_stops_changing_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = write(tmp_path / "c" / "live.log", PROSE)
    write(tmp_path / "c" / "notes.txt", PROSE + " more")
    edit_after_scan(monkeypatch, lambda call: write(log, f"{PROSE} line {call}"), times=99)
    with pytest.raises(CorpusError, match=r"live\.log changed .* 3 times in a row; .*--exclude"):
        prepare([tmp_path / "c"], cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.bin")), "no half-made cache entry is left"


def test_a_corpus_larger_than_the_memory_bound_tokenizes_in_bounded_memory(
    tmp_path: Path,
) -> None:
    """One 256 MB file (bench/robustness.py does 1 GB): reading it whole would hold it twice."""
    megabytes = 256
    block = (PROSE + "\r\n").encode() * (2**20 // (len(PROSE) + 2) + 1)
    with open(tmp_path / "big.txt", "wb") as out:
        for _ in range(megabytes):
            out.write(block[: 2**20])
    peak_mb = tokenizing_peak_rss_mb(tmp_path / "big.txt", tmp_path / "c")
    assert peak_mb < 150, f"peak RSS {peak_mb} MB while tokenizing {megabytes} MB"


def test_the_tokenizing_peak_is_the_measured_process_own_not_its_parent(tmp_path: Path) -> None:
    """A large parent (pytest late in a run) must not lend the measured process its peak."""
    ballast = b"\1" * (200 * 2**20)  # written through, so resident in this process
    peak_mb = tokenizing_peak_rss_mb(write(tmp_path / "note.txt", PROSE), tmp_path / "c")
    assert len(ballast) > peak_mb * 2**20, f"the child reported {peak_mb} MB, as its parent"


SCAN_AND_REPORT = """
import json, sys
from ghostwrite.training.corpus import CorpusError, scan
try:
    corpus = scan(sys.argv[1:])
    print(json.dumps({"names": [f.path.name for f in corpus.files], **corpus.summary()}))
except CorpusError as err:
    print(json.dumps({"error": str(err)}))
"""


def test_unreadable_files_and_folders_are_skipped_and_counted(tmp_path: Path) -> None:
    wrapper = without_root_powers()
    if wrapper is None:
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    root = tmp_path / "notes"
    write(root / "readable.txt", PROSE)
    write(root / "locked.txt", PROSE + " locked").chmod(0)
    write(root / "private" / "inside.txt", PROSE + " private")
    (root / "private").chmod(0)

    def scan_as_user(*paths: Path) -> dict:
        command = [*wrapper, sys.executable, "-c", SCAN_AND_REPORT, *map(str, paths)]
        return json.loads(subprocess.run(command, capture_output=True, check=True).stdout)

    found = scan_as_user(root)
    assert found["names"] == ["readable.txt"]
    assert found["skipped"] == {"unreadable files": 1, "unreadable folders": 1}
    assert "permission denied" in scan_as_user(root / "private" / "inside.txt")["error"]
