"""Training under faults the checkpoint tests do not cover: a full disk (an injected ENOSPC)
while writing the model, and SIGKILL in the middle of writing the final model. Each time the
previous model stays in place and loads, the checkpoint keeps the run's work, and ``--resume``
finishes it. The faults are injected into a real training process."""

from __future__ import annotations

from pathlib import Path

from ghostwrite.model import load_model
from ghostwrite.training.checkpoint import load_checkpoint
from ghostwrite.training.harness import TINY, make_corpus, run_cli, run_faulty


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
