"""Batch splitting over CPU streams: the split step trains the same weights as the whole batch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ghostwrite.model.gpt import weights_to_numpy
from ghostwrite.training.errors import TrainingError
from ghostwrite.training.harness import TINY, make_corpus, run_cli
from ghostwrite.training.progress import Reporter
from ghostwrite.training.signals import StopFlag
from ghostwrite.training.train import Run
from tests.helpers.training import tiny_config

STEPS = 8

# Compiled steps build JIT kernels with native flags, which changes PATH and TMPDIR: run them in
# a process of their own. Prints the losses and the final weights' checksum per stream count.
COMPILED_SCRIPT = """
import json, sys
import numpy as np
import pytest
from ghostwrite.model.gpt import weights_to_numpy
from ghostwrite.training.config import TrainConfig
from ghostwrite.training.progress import Reporter
from ghostwrite.training.signals import StopFlag
from ghostwrite.training.train import Run

settings = json.loads(sys.argv[1])
out = {}
for streams in (1, 2):
    cfg = TrainConfig(**settings, streams=streams, out=f"{settings['token_cache']}/m{streams}")
    run = Run(cfg, Reporter("plain", 10, silent=True), StopFlag())
    losses = [run.train_step() for _ in range(int(sys.argv[2]))]
    weights = weights_to_numpy(run.model)
    out[streams] = {"losses": losses, "weights": {k: v.tolist() for k, v in weights.items()}}
print(json.dumps(out))
"""


def train_steps(run: Run, steps: int) -> tuple[list[float], dict[str, np.ndarray]]:
    losses = [run.train_step() for _ in range(steps)]
    return losses, weights_to_numpy(run.model)


def assert_same_training(
    a: tuple[list[float], dict[str, np.ndarray]], b: tuple[list[float], dict[str, np.ndarray]]
) -> None:
    np.testing.assert_allclose(a[0], b[0], rtol=1e-5)
    for name, value in a[1].items():
        np.testing.assert_allclose(b[1][name], value, atol=2e-5, err_msg=name)


def test_two_streams_train_like_the_whole_batch(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "notes")
    results = {}
    for streams in (1, 2):
        cfg = tiny_config(tmp_path, corpus, streams=streams, dropout=0.0, out=tmp_path / "m")
        run = Run(cfg, Reporter("plain", 10, silent=True), StopFlag())
        assert run.streams == streams and run.shard == 16 // streams
        results[streams] = train_steps(run, STEPS)
    assert_same_training(results[1], results[2])
    before = weights_to_numpy(Run(cfg, Reporter("plain", 10, silent=True), StopFlag()).model)
    assert any(np.abs(results[2][1][k] - before[k]).max() > 1e-4 for k in before)


def test_compiled_split_step_matches_the_whole_batch(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "notes")
    settings = {
        "paths": [str(corpus)],
        "preset": "tiny",
        "batch_size": 16,
        "dropout": 0.0,
        "token_cache": str(tmp_path / "cache"),
        "blas_threads": 1,
        "compile": True,
    }
    done = subprocess.run(
        [sys.executable, "-c", COMPILED_SCRIPT, json.dumps(settings), str(STEPS)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    whole, split = (
        (out[s]["losses"], {k: np.array(v) for k, v in out[s]["weights"].items()})
        for s in ("1", "2")
    )
    assert_same_training(whole, split)


def test_stream_count_follows_the_batch(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "notes")
    quiet = Reporter("plain", 10, silent=True)
    run = Run(tiny_config(tmp_path, corpus, batch_size=5), quiet, StopFlag())
    assert run.streams in (1, 5) and run.shard * run.streams == 5  # auto never splits unevenly
    with pytest.raises(TrainingError, match="divisible by --streams 2"):
        Run(tiny_config(tmp_path, corpus, batch_size=5, streams=2), quiet, StopFlag())


def test_cli_rejects_an_uneven_stream_split(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "notes")
    done = run_cli(corpus, *TINY, "--streams", "3", "--token-cache", tmp_path / "cache",
                   "--out", tmp_path / "model")  # fmt: skip
    assert done.returncode == 1
    assert "must be divisible by --streams 3" in done.stderr
    assert not (tmp_path / "model").exists()
