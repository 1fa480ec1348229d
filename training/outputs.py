"""The files a run writes besides its checkpoint: where they may go, and the metrics log."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ghostwrite.model import files

from .checkpoint import CHECKPOINT_FILE
from .errors import TrainingError
from .walk import fixed_part

METRICS_FILE = "metrics.jsonl"


def check_destinations(paths: Sequence[str], out: Path, checkpoint_dir: Path) -> None:
    """Refuse, before any work, a model or checkpoint folder that would take over someone's
    files (a model write replaces its whole folder) or that overlaps the corpus."""
    try:
        files.check_model_folder(out)
        files.check_writable_folder(checkpoint_dir, (CHECKPOINT_FILE, METRICS_FILE), "a checkpoint")
    except files.ForeignFolder as err:
        raise TrainingError(str(err)) from None
    for given in paths:
        source = Path(os.path.realpath(fixed_part(given)))
        for target in (out, checkpoint_dir):
            real = Path(os.path.realpath(target.expanduser()))
            if real == source or source in real.parents or real in source.parents:
                raise TrainingError(
                    f"{target}: refusing to write the model or its checkpoint here: it overlaps "
                    f"the corpus {given} (write it outside the folders you train on)"
                )


def append_metrics(path: Path, line: dict[str, Any]) -> None:
    """Append one JSON line to the metrics log (kept next to the checkpoint, copied into the
    model)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def trim_metrics(path: Path, step: int) -> None:
    """Drop the lines after ``step``, which a resumed run records again, so the log reads as
    one run."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
