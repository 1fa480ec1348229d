"""The training command as a real process, for the test suite and the benchmarks: a corpus of
sample notes, the tiny preset's quick flags, runs that are waited for, read event by event,
faulted while they save the model, or measured while they tokenize; learning rounds likewise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Real prose, so that a model trained on it learns something in a few hundred steps.
PROSE = (
    "The quick brown fox jumps over the lazy dog. The dog sleeps in the sun, and the fox runs "
    "into the forest. In the forest the fox finds a river, and the river runs to the sea. "
    "The sea is wide and blue, and the fox looks at the sea for a long time. Then the fox goes "
    "home to the forest, where the trees are tall and green, and the fox sleeps until morning. "
)

# One BLAS thread: tiny matmuls gain nothing from more, and on a busy machine spinning BLAS
# threads slow a step down several times.
TINY = ["--preset", "tiny", "--batch-size", "16", "--eval-windows", "32", "--blas-threads", "1"]

# Runs the training CLI with the model writer (safetensors' save_file in model/files.py)
# replaced by a fault: "enospc" raises a full-disk error, "kill" writes half the weights file
# and then SIGKILLs the process.
FAULTY_TRAINING = """
import errno, os, signal, sys
from ghostwrite.model import files
from ghostwrite.training.cli import main

real = files.save_file

def faulty(arrays, path, metadata=None):
    if sys.argv[1] == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    real(arrays, path, metadata)
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)
    os.kill(os.getpid(), signal.SIGKILL)

files.save_file = faulty
sys.exit(main(sys.argv[2:]))
"""

# Runs ``ghostwrite learn`` and SIGKILLs it at a point: "save" halfway through writing the
# candidate's weights, "swap" right after the candidate has replaced the model.
FAULTY_LEARNING = """
import os, signal, sys
from ghostwrite.model import files
from ghostwrite.server.cli import main

def kill_after(real, truncate):
    def faulty(*args, **kwargs):
        real(*args, **kwargs)
        if truncate:
            path = args[1]
            with open(path, "r+b") as handle:
                handle.truncate(os.path.getsize(path) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return faulty

if sys.argv[1] == "save":
    files.save_file = kill_after(files.save_file, truncate=True)
else:
    files.replace_directory = kill_after(files.replace_directory, truncate=False)
sys.exit(main(["learn", *sys.argv[2:]]))
"""

# Tokenizes one file into a cache and prints the process's peak RSS in MiB.
# VmHWM, not ru_maxrss: Linux carries a process's ru_maxrss over from before its exec, so a child
# spawned by a large parent (pytest late in a run) would report the parent's peak as its own.
TOKENIZE_AND_MEASURE = """
import sys
from pathlib import Path
from ghostwrite.training.tokens import prepare
corpus, data = prepare([sys.argv[1]], cache_dir=Path(sys.argv[2]))
assert len(data.tokens) == corpus.tokens
status = Path("/proc/self/status").read_text()
print(int(status.split("VmHWM:")[1].split()[0]) // 1024)
"""


def make_corpus(root: Path, files: int = 10) -> Path:
    """Several small notes of real prose (different enough to hold one out for validation)."""
    sentences = PROSE.split(". ")
    for i in range(files):
        text = ". ".join(sentences[i:] + sentences[:i]) * 4
        (root / f"note{i}.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / f"note{i}.txt").write_text(f"Note {i}.\n{text}\n", encoding="utf-8")
    return root


def run(*command: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *map(str, command)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m ghostwrite.training ARGS``, waited for."""
    return run("-m", "ghostwrite.training", *args, timeout=timeout)


def run_learn(*args: str | Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``ghostwrite learn ARGS``, waited for."""
    return run("-m", "ghostwrite.server.cli", "learn", *args, timeout=timeout)


def run_faulty_learning(fault: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``ghostwrite learn ARGS`` killed at ``fault`` ("save" or "swap")."""
    return run("-c", FAULTY_LEARNING, fault, *args, timeout=180)


def run_faulty(fault: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """The training CLI with ``fault`` ("enospc" or "kill") injected into the model writer."""
    return run("-c", FAULTY_TRAINING, fault, *args)


def start(*args: str | Path) -> subprocess.Popen[str]:
    """``python -m ghostwrite.training ARGS``, running."""
    return subprocess.Popen(
        [sys.executable, "-m", "ghostwrite.training", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_until(process: subprocess.Popen[str], event: str, count: int) -> list[dict]:
    """Progress events (``--progress json``) up to the ``count``-th ``event`` (or the end of
    the output)."""
    assert process.stdout is not None
    events: list[dict] = []
    seen = 0
    for line in process.stdout:
        events.append(json.loads(line))
        seen += events[-1]["event"] == event
        if seen >= count:
            break
    return events


def tokenizing_peak_rss_mb(path: Path, cache_dir: Path) -> int:
    """The peak RSS, in MiB, of a fresh process that tokenizes ``path`` into ``cache_dir``."""
    result = subprocess.run(
        [sys.executable, "-c", TOKENIZE_AND_MEASURE, str(path), str(cache_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout)
