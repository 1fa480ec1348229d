"""The atheris fuzzers of bench/fuzz_documents.py, run for a fixed number of inputs each (a few
seconds here) from the committed seed corpus, with a fixed seed so every run tries the same
inputs: document edits against a plain-string model, and the frame parser after any bytes.
A failing input is written to the test's temporary folder (libFuzzer's crash-* file)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

ROOT = Path(__file__).resolve().parents[1]
RUNS = 5000


@pytest.mark.parametrize("target", ["documents", "frames"])
def test_fuzzer_finds_nothing_in_bounded_time(tmp_path: Path, target: str) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "bench" / "fuzz_corpus" / target, corpus)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "fuzz_documents.py"),
            target,
            str(corpus),
            f"-runs={RUNS}",
            "-seed=1",
            "-timeout=5",  # an input that takes this long is a hang, reported as a failure
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*"))
    done = re.search(r"Done (\d+) runs", result.stderr)
    assert done is not None and int(done.group(1)) == RUNS, result.stderr[-2000:]
