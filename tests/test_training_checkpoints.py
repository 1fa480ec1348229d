"""Checkpoints: Ctrl-C saves and exits, --resume equals an uninterrupted run, and a process
killed at any moment (even while saving) leaves a loadable checkpoint."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from ghostwrite.model import load_model
from ghostwrite.training.checkpoint import load_checkpoint, split_prefix
from ghostwrite.training.errors import TrainingError
from ghostwrite.training.harness import TINY, make_corpus, read_until, run_cli, start
from ghostwrite.training.train import train
from tests.helpers.training import metrics, tiny_config


def finish(process: subprocess.Popen[str], events: list[dict]) -> tuple[int, list[dict], str]:
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()  # a run that ignored the signal must not outlive the test
        process.communicate()
        raise
    return process.returncode, events + [json.loads(line) for line in out.splitlines()], err


def test_ctrl_c_saves_and_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "notes")
    common = [corpus, *TINY, "--dropout", "0.1", "--max-steps", "60", "--seed", "7"]
    common += ["--eval-every", "15", "--log-every", "1", "--progress", "json"]
    common += ["--token-cache", tmp_path / "cache"]

    reference = run_cli(*common, "--out", tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "resumed"
    process = start(*common, "--out", out)
    events = read_until(process, "step", 5)
    process.send_signal(signal.SIGINT)
    code, events, stderr = finish(process, events)
    assert code == 130, stderr
    assert events[-1]["event"] == "error" and "interrupted by SIGINT" in events[-1]["message"]
    assert events[-2]["event"] == "checkpoint"
    stopped_at = events[-1]["step"]
    assert 5 <= stopped_at < 60
    assert not out.exists()  # only a finished run writes the model
    _, saved = load_checkpoint(tmp_path / "resumed.checkpoint")
    assert saved["loop"]["step"] == stopped_at

    resumed = run_cli(*common, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    first = json.loads(resumed.stdout.splitlines()[0])
    assert f"resuming at step {stopped_at}" in first["message"]

    # the final weights (the models hold the best-validation ones)
    reference_final, resumed_final = (
        split_prefix(load_checkpoint(tmp_path / f"{name}.checkpoint")[0], "model")
        for name in ("reference", "resumed")
    )
    for key, value in reference_final.items():
        np.testing.assert_allclose(resumed_final[key], value, rtol=0, atol=1e-6, err_msg=key)
    a, b = load_model(tmp_path / "reference"), load_model(out)
    assert a.card["val_loss"] == b.card["val_loss"] and a.card["steps"] == b.card["steps"] == 60
    evals = [
        [(m["step"], m["val_loss"]) for m in metrics(d) if m["event"] == "eval"]
        for d in (tmp_path / "reference", out)
    ]
    assert evals[0] == evals[1] and len(evals[0]) == 4


def test_kill_at_any_moment_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "notes")
    out = tmp_path / "model"
    common = [corpus, *TINY, "--out", out, "--max-steps", "60", "--checkpoint-every", "1"]
    common += ["--progress", "json", "--token-cache", tmp_path / "cache"]
    rng = random.Random(0)
    steps = [0]
    for round_ in range(3):
        process = start(*common, *(["--resume"] if round_ else []))
        events = read_until(process, "checkpoint", 3)
        time.sleep(rng.uniform(0, 0.02))  # lands mid-step or mid-save
        process.kill()
        process.wait(timeout=30)
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()
        assert events[-1]["event"] == "checkpoint"
        _, saved = load_checkpoint(tmp_path / "model.checkpoint")
        assert saved["loop"]["step"] >= max(steps) + 3
        steps.append(saved["loop"]["step"])
        assert not out.exists()

    process = start(*common, "--resume")
    events = read_until(process, "checkpoint", 2)
    process.send_signal(signal.SIGTERM)
    code, events, stderr = finish(process, events)
    assert code == 143, stderr
    assert events[-1]["event"] == "error" and "SIGTERM" in events[-1]["message"]

    done = run_cli(*common, "--resume")
    assert done.returncode == 0, done.stderr
    assert load_model(out).card["steps"] == 60


def test_resume_keeps_the_architecture_of_the_run_it_continues(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "notes")
    gpt2 = {"position": "learned", "qk_norm": False, "activation": "gelu"}
    train(tiny_config(tmp_path, corpus, architecture=gpt2, max_steps=4))

    # Resumed with today's defaults for new models, which differ from the checkpoint's.
    train(tiny_config(tmp_path, corpus, max_steps=8, resume=True))
    model = load_model(tmp_path / "model")
    assert model.card["steps"] == 8
    assert (model.config.position, model.config.qk_norm, model.config.activation) == (
        "learned",
        False,
        "gelu",
    )

    # The size still comes from the settings, and a different one is another run.
    with pytest.raises(TrainingError, match="model changed"):
        train(tiny_config(tmp_path, corpus, max_steps=12, n_emb=64, resume=True))


def test_ctrl_c_during_an_evaluation_stops_it_at_the_next_batch(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "notes")
    out = tmp_path / "model"
    # An evaluation of two million windows takes minutes; the signal comes a second into it.
    process = start(corpus, *TINY, "--eval-windows", "2000000", "--eval-every", "2", "--out", out,
                    "--max-steps", "10", "--log-every", "1", "--progress", "json",
                    "--token-cache", tmp_path / "cache")  # fmt: skip
    events = read_until(process, "step", 2)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    code, events, stderr = finish(process, events)
    assert code == 130, stderr
    assert events[-1]["event"] == "error" and "interrupted by SIGINT" in events[-1]["message"]
    assert "eval" not in [e["event"] for e in events]  # cut short: nothing recorded
    _, saved = load_checkpoint(tmp_path / "model.checkpoint")
    assert saved["loop"]["step"] == events[-1]["step"] < 10
