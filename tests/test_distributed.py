"""Data-parallel training with 2 local processes over MLX's ring backend (``mlx.launch``)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from ghostwrite.model import load_model
from ghostwrite.training.harness import TINY, make_corpus

LAUNCH = Path(sys.executable).parent / "mlx.launch"

# Trains with the real loop on each rank and saves that rank's final weights, so the test can
# compare them (only rank 0 writes the model itself).
RANK_SCRIPT = """
import json, sys
from pathlib import Path
from safetensors.numpy import save_file
from ghostwrite.model.gpt import weights_to_numpy
from ghostwrite.training.config import TrainConfig
from ghostwrite.training.progress import Reporter
from ghostwrite.training.signals import StopFlag
from ghostwrite.training.train import Run

settings = json.loads(sys.argv[1])
cfg = TrainConfig(**settings)
run = Run(cfg, Reporter("json", cfg.log_every), StopFlag())
before = weights_to_numpy(run.model)
run.loop()
after = weights_to_numpy(run.model)
assert any((after[k] != before[k]).any() for k in after), "weights did not change"
save_file(after, str(Path(sys.argv[2]) / f"rank{run.rank}.safetensors"))
run.finish()
"""


def free_port_pair() -> int:
    """A port p with p and p + 1 free (the ring backend listens on one port per rank)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        try:
            with socket.socket() as second:
                second.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports")


def launch(*command: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    args = [str(LAUNCH), "-n", "2", "--backend", "ring", "--starting-port", str(free_port_pair())]
    return subprocess.run(
        [*args, "--", *map(str, command)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def ring_backend() -> None:
    if not LAUNCH.exists():
        pytest.skip(f"mlx.launch not found next to {sys.executable}")
    probe = launch(
        sys.executable,
        "-c",
        "import mlx.core as mx; g = mx.distributed.init(strict=True, backend='ring'); "
        "print(mx.distributed.all_sum(mx.array([1.0])).item())",
        timeout=60,
    )
    if probe.returncode != 0 or probe.stdout.split() != ["2.0", "2.0"]:
        pytest.skip(f"the MLX ring backend cannot start here: {probe.stderr.strip()[-300:]}")


def tiny_settings(tmp_path: Path, **changes: object) -> dict[str, object]:
    """TrainConfig settings (as JSON for the rank script) for a tiny run on a folder of notes,
    with dropout on, so that the ranks' dropout masks are part of what must agree."""
    return {
        "paths": [str(make_corpus(tmp_path / "notes"))],
        "preset": "tiny",
        "batch_size": 16,  # 8 windows per rank
        "dropout": 0.1,
        "eval_every": 6,
        "eval_windows": 32,
        "token_cache": str(tmp_path / "cache"),
        "blas_threads": 1,
        "compile": False,
        **changes,
    }


def test_two_ranks_stay_in_sync(tmp_path: Path, ring_backend: None) -> None:
    settings = tiny_settings(tmp_path, out=str(tmp_path / "model"), max_steps=12, log_every=3)
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    done = launch(sys.executable, script, json.dumps(settings), tmp_path)
    assert done.returncode == 0, done.stderr

    rank0, rank1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    for key, value in rank0.items():
        np.testing.assert_array_equal(rank1[key], value, err_msg=key)

    events = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("start") == 1 and kinds.count("done") == 1  # rank 0 alone reports
    assert "2 processes" in events[0]["message"]
    card = load_model(tmp_path / "model").card
    assert card["steps"] == 12 and card["tokens_seen"] == 12 * 16 * 64
    assert "2 processes" in card["machine"]


def test_launch_runs_the_train_command(tmp_path: Path, ring_backend: None) -> None:
    corpus = make_corpus(tmp_path / "notes")
    out = tmp_path / "model"
    done = launch(
        sys.executable,
        "-m",
        "ghostwrite.training",
        corpus,
        *TINY,
        "--out",
        out,
        "--max-steps",
        "4",
        "--no-compile",
        "--progress",
        "json",
        "--token-cache",
        tmp_path / "cache",
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["event"] for e in events].count("done") == 1
    assert load_model(out).card["steps"] == 4


def test_two_ranks_train_like_two_streams(tmp_path: Path, ring_backend: None) -> None:
    """The same global batch, dropout included, whether split over processes or streams."""
    from ghostwrite.model.gpt import weights_to_numpy
    from ghostwrite.training.config import TrainConfig
    from ghostwrite.training.progress import Reporter
    from ghostwrite.training.signals import StopFlag
    from ghostwrite.training.train import Run

    settings = tiny_settings(tmp_path, max_steps=6)
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    ranks = {**settings, "out": str(tmp_path / "ranks"), "streams": 1}
    done = launch(sys.executable, script, json.dumps(ranks), tmp_path)
    assert done.returncode == 0, done.stderr

    run = Run(
        TrainConfig(**settings, out=tmp_path / "streams", streams=2),
        Reporter("plain", 10, silent=True),
        StopFlag(),
    )
    assert run.world == 1 and run.streams == 2
    run.loop()
    streams = weights_to_numpy(run.model)
    rank0 = load_file(str(tmp_path / "rank0.safetensors"))
    for key, value in rank0.items():
        np.testing.assert_allclose(streams[key], value, atol=2e-5, err_msg=key)
