"""Training under faults the checkpoint tests do not cover: a full disk (an injected ENOSPC)
while writing the model, and SIGKILL in the middle of writing the final model. Each time the
previous model stays in place and loads, the checkpoint keeps the run's work, and ``--resume``
finishes it. The faults are injected into a real training process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ghostwrite.model import load_model
from ghostwrite.training.checkpoint import load_checkpoint
from tests.test_training import TINY, make_corpus, run_cli

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


def run_faulty(fault: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", FAULTY_TRAINING, fault, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_full_disk_and_kill_while_saving_keep_the_previous_model(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "notes")
    out = tmp_path / "model"
    common = [corpus, *TINY, "--out", out, "--token-cache", tmp_path / "cache", "--seed", "3"]
    previous = run_cli(*common, "--max-steps", "10")
    assert previous.returncode == 0, previous.stderr
    assert load_model(out).card["steps"] == 10

    longer = [*common, "--max-steps", "30", "--checkpoint-every", "10"]
    full = run_faulty("enospc", *longer)
    assert full.returncode != 0
    message = full.stderr.strip().splitlines()[-1]  # after the human progress lines
    assert message.startswith("ghostwrite train: error: cannot save the model")
    assert "No space left on device" in message
    assert load_model(out).card["steps"] == 10  # the previous model, intact
    _, saved = load_checkpoint(tmp_path / "model.checkpoint")
    assert saved["loop"]["step"] == 30  # the run's work is kept

    killed = run_faulty("kill", *longer, "--resume")
    assert killed.returncode == -9, killed.stderr
    assert load_model(out).card["steps"] == 10  # never half-written
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("model")) == [
        "model",
        "model.checkpoint",
    ]

    resumed = run_cli(*longer, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert load_model(out).card["steps"] == 30
