"""In-process training runs on the tiny preset, and what a run leaves in its model folder."""

from __future__ import annotations

import json
from pathlib import Path

from ghostwrite.training.config import TrainConfig


def tiny_config(tmp_path: Path, corpus: Path, **changes: object) -> TrainConfig:
    settings: dict[str, object] = {
        "paths": [str(corpus)],
        "out": tmp_path / "model",
        "preset": "tiny",
        "batch_size": 16,
        "eval_windows": 32,
        "token_cache": tmp_path / "cache",
        "progress": "plain",
        "compile": False,  # compiled runs are covered by the subprocess tests
        "blas_threads": 1,
    }
    return TrainConfig(**(settings | changes))


def metrics(model_dir: Path) -> list[dict]:
    lines = (model_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]
