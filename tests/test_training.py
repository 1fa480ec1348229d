"""Training end to end on tiny corpora: learning, the model card, progress output, exit codes,
bad corpora, fine-tuning, time budgets and evaluation. Real models, real processes."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ghostwrite.model import PRESETS, load_model
from ghostwrite.training.config import TrainConfig
from ghostwrite.training.corpus import scan
from ghostwrite.training.errors import TrainingError
from ghostwrite.training.harness import PROSE, TINY, make_corpus, run_cli
from ghostwrite.training.optimizers import make_optimizer
from ghostwrite.training.schedule import (
    ESTIMATE_AFTER_STEPS,
    REESTIMATE_EVERY,
    BudgetClock,
    learning_rate_at,
)
from ghostwrite.training.train import train
from tests.helpers.training import metrics, tiny_config

PROGRESS_KEYS = {
    "event",
    "step",
    "max_steps",
    "train_loss",
    "val_loss",
    "tokens_per_s",
    "eta_s",
    "message",
}


def test_learning_rate_schedule() -> None:
    cfg = TrainConfig(warmup_steps=10, min_lr_ratio=0.1, schedule="cosine")
    lrs = [learning_rate_at(cfg, 1e-3, step, horizon=110) for step in range(111)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))  # decays monotonically
    assert lrs[110] == pytest.approx(1e-4)
    short = [learning_rate_at(cfg, 1e-3, step, horizon=20) for step in range(20)]
    assert short[3] == pytest.approx(1e-3)  # warm-up shrinks to a fifth of a short run


def test_warmup_stable_decay_schedule() -> None:
    cfg = TrainConfig(warmup_steps=10, min_lr_ratio=0.0, schedule="wsd", decay_fraction=0.25)
    lrs = [learning_rate_at(cfg, 1e-3, step, horizon=100) for step in range(101)]
    assert lrs[0] == pytest.approx(1e-4)
    assert lrs[9:76] == pytest.approx([1e-3] * 67)  # the peak until the last quarter
    assert lrs[85] == pytest.approx(1e-3 * 15 / 25)  # then linear
    assert lrs[100] == pytest.approx(0.0)


def test_time_budget_schedule_follows_the_pace() -> None:
    """The schedule's step count is re-estimated as the pace changes, so it ends at the budget."""
    clock = BudgetClock(budget_s=100.0)
    elapsed, pace, horizons = 0.0, 0.1, {}
    for step in range(1, 2000):
        elapsed += 5.0 if step == 1 else pace  # the first step compiles
        if step == 300:
            pace = 0.05  # the machine got quieter
        horizon = clock.horizon(step, elapsed)
        if horizon is not None:
            horizons[step] = horizon
        if elapsed >= 100.0:
            break
    first = 1 + ESTIMATE_AFTER_STEPS
    assert min(horizons) == first and horizons[first] == first + int((100 - 6) * 0.97 / 0.1)
    assert all((s - 1) % REESTIMATE_EVERY == 0 for s in horizons if s != first)
    last = horizons[max(horizons)]
    assert last > horizons[first]  # the faster pace bought more steps
    assert abs(last - step) <= 0.03 * step  # and the decay ends where the budget does


@pytest.mark.parametrize("name", ["muon", "adamw"])
def test_optimizer_groups_and_their_learning_rates(name: str) -> None:
    import mlx.optimizers as optim
    from mlx.utils import tree_flatten

    from ghostwrite.model.gpt import GPT

    cfg = TrainConfig(optimizer=name)
    model = GPT(PRESETS["tiny"].with_changes(qk_norm=True, value_embeds=True))
    optimizer = make_optimizer(cfg, cfg.scratch_learning_rate)
    optimizer.init(model.trainable_parameters())
    optimizer.learning_rate = 1e-3  # what the schedule sets each step
    assert optimizer.learning_rate.item() == pytest.approx(1e-3)
    groups = {}
    for part in optimizer.optimizers:
        names = {n for n, _ in tree_flatten(part.state) if n.endswith(("v", "m"))}
        for n in names:
            groups[n.rsplit(".", 1)[0]] = (type(part).__name__, part.learning_rate.item())
    muon_rate = 1e-3 * cfg.muon_learning_rate / cfg.scratch_learning_rate
    for n, weight in tree_flatten(model.trainable_parameters()):
        kind, rate = groups[n]
        hidden = n.startswith("blocks.") and weight.ndim == 2 and "value_embed" not in n
        if name == "muon" and hidden:
            assert (kind, rate) == ("Muon", pytest.approx(muon_rate)), n
        else:
            assert (kind, rate) == ("AdamW", pytest.approx(1e-3)), n
    assert isinstance(optimizer, optim.MultiOptimizer)


def test_loss_goes_down_and_the_card_describes_the_run(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "notes")
    cfg = tiny_config(tmp_path, corpus, max_steps=80, eval_every=20, learning_rate=3e-3)
    out = train(cfg)
    assert out == tmp_path / "model"

    evals = [m for m in metrics(out) if m["event"] == "eval"]
    assert [m["step"] for m in evals] == [20, 40, 60, 80]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.3
    assert evals[-1]["train_loss"] < math.log(256) - 1.5

    model = load_model(out)
    card = model.card
    assert card["steps"] == 80 and card["tokens_seen"] == 80 * 16 * 64
    assert card["val_loss"] == pytest.approx(min(m["val_loss"] for m in evals), abs=1e-4)
    assert card["best_step"] in (60, 80)
    # ASCII text: one byte per character
    assert card["bits_per_char"] == pytest.approx(card["val_loss"] / math.log(2), abs=1e-3)
    assert card["corpus"]["files"] == 10
    assert card["corpus"]["sha256"] == scan([corpus]).sha256
    assert card["corpus"]["validation"] == "held-out files"
    assert card["preset"] == "tiny" and card["init"] is None
    assert card["machine"] and card["wall_time_s"] > 0
    assert model.config.n_emb == 32


def test_progress_json_events_and_compiled_run(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "notes")
    out = tmp_path / "model"
    done = run_cli(
        corpus,
        *TINY,
        "--out",
        out,
        "--token-cache",
        tmp_path / "cache",
        "--max-steps",
        "20",
        "--eval-every",
        "10",
        "--log-every",
        "5",
        "--progress",
        "json",
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(set(e) == PROGRESS_KEYS for e in events)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert kinds.count("eval") == 2 and "checkpoint" in kinds
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == [1, 5, 10, 15, 20]
    assert all(e["max_steps"] == 20 and e["tokens_per_s"] > 0 for e in steps)
    evals = [e for e in events if e["event"] == "eval"]
    assert all(e["val_loss"] > 0 and e["message"].startswith("sample: ") for e in evals)
    assert load_model(out).card["command"].startswith("ghostwrite train ")


def make_empty(root: Path) -> None:
    root.mkdir()


def make_short(root: Path) -> None:
    root.mkdir()
    (root / "short.txt").write_text("Too short for one context window.")


def make_binary(root: Path) -> None:
    root.mkdir()
    (root / "x.bin").write_bytes(b"\0" * 500)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (make_empty, "no text files found"),
        (make_short, "less than one context window"),
        (make_binary, "1 binary files"),
    ],
)
def test_bad_corpus_fails_clearly_and_keeps_the_model(
    tmp_path: Path, tiny_model_dir: Path, make, reason: str
) -> None:
    out = tmp_path / "model"
    shutil.copytree(tiny_model_dir, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    corpus = tmp_path / "corpus"
    make(corpus)
    done = run_cli(corpus, *TINY, "--out", out, "--token-cache", tmp_path / "cache")
    assert done.returncode == 1
    assert reason in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not (tmp_path / "model.checkpoint").exists()


def test_cli_usage_errors(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "notes")
    assert run_cli(corpus, "--max-steps", "0").returncode == 2
    assert run_cli(corpus, "--preset", "huge").returncode == 2
    missing = run_cli(tmp_path / "nope", "--out", tmp_path / "m")
    assert missing.returncode == 1 and "no such file or folder" in missing.stderr
    resume = run_cli(corpus, *TINY, "--out", tmp_path / "m", "--resume")
    assert resume.returncode == 1 and "no checkpoint" in resume.stderr
    assert not (tmp_path / "m").exists()


def test_model_shape_flags_change_the_preset(tmp_path: Path, tiny_model_dir: Path) -> None:
    corpus = make_corpus(tmp_path / "notes")
    shape = ["--ctx-len", "48", "--n-emb", "24", "--n-heads", "3", "--n-layers", "1"]
    result = run_cli(corpus, *TINY, *shape, "--max-steps", "3", "--out", tmp_path / "m")
    assert result.returncode == 0, result.stderr
    config = load_model(tmp_path / "m").config
    assert (config.ctx_len, config.n_emb, config.n_heads, config.n_layers) == (48, 24, 3, 1)
    uneven = run_cli(corpus, *TINY, "--n-heads", "5", "--out", tmp_path / "u")
    assert uneven.returncode == 1 and "invalid model shape" in uneven.stderr
    refit = run_cli(corpus, "--init", tiny_model_dir, "--n-layers", "4", "--out", tmp_path / "f")
    assert refit.returncode == 1 and "keeps the shape" in refit.stderr
    assert run_cli(corpus, "--n-layers", "0").returncode == 2
    assert not (tmp_path / "u").exists() and not (tmp_path / "f").exists()


def test_architecture_applies_to_models_trained_from_scratch(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    corpus = make_corpus(tmp_path / "notes")
    changes = {"position": "learned", "activation": "gelu", "qk_norm": True, "logit_cap": 20.0}
    out = train(tiny_config(tmp_path, corpus, architecture=changes, max_steps=3))
    config = load_model(out).config
    assert (config.position, config.activation, config.qk_norm, config.logit_cap) == (
        "learned",
        "gelu",
        True,
        20.0,
    )
    tuned = tiny_config(
        tmp_path, corpus, init=str(tiny_model_dir), architecture=changes, max_steps=2
    )
    tuned.out = tmp_path / "tuned"
    assert load_model(train(tuned)).config == load_model(tiny_model_dir).config
    with pytest.raises(TrainingError, match="invalid architecture"):
        train(tiny_config(tmp_path, corpus, architecture={"position": "sinusoid"}))


def test_finetune_starts_from_the_given_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    corpus = make_corpus(tmp_path / "notes")
    out = train(tiny_config(tmp_path, corpus, init=str(tiny_model_dir), max_steps=10, log_every=1))
    first = metrics(out)[0]
    # from scratch the first loss is ~ln(256) = 5.5; the prose model already knows this text
    assert first["event"] == "step" and first["train_loss"] < 3.0
    model = load_model(out)
    assert model.config == load_model(tiny_model_dir).config
    assert model.card["init"] == str(tiny_model_dir) and model.card["learning_rate"] == 3e-4


def test_time_budget_stops_the_run(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "notes")
    out = train(tiny_config(tmp_path, corpus, max_minutes=0.04, eval_every=10_000))
    card = load_model(out).card
    # No step or epoch limit was given: returning at all means the time budget ended the run.
    # (How many steps fit depends on the machine's load, so the test does not count them.)
    assert card["steps"] >= 1
    assert card["tokens_seen"] == card["steps"] * card["batch_size"] * 64


def test_eval_reports_bits_per_char_and_word_accuracy(tmp_path: Path, tiny_model_dir: Path) -> None:
    seen = tmp_path / "seen.txt"
    seen.write_text(PROSE * 2)
    other = tmp_path / "other.txt"
    other.write_text("Zebras quickly vex jumpy wizards; quartz glyphs blink.\n" * 3)
    command = [sys.executable, "-m", "ghostwrite.server.cli", "eval", "--json", seen, other]
    done = subprocess.run(
        [*command, "--model", str(tiny_model_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = {Path(r["file"]).name: r for r in json.loads(done.stdout)["results"]}
    assert set(results) == {"seen.txt", "other.txt", "total"}
    # the model was fitted to PROSE: far better there than on unseen words
    assert results["seen.txt"]["bits_per_char"] < 1.5 < results["other.txt"]["bits_per_char"]
    assert results["seen.txt"]["next_word_accuracy"] > 0.3
    assert results["other.txt"]["next_word_accuracy"] < results["seen.txt"]["next_word_accuracy"]
    assert results["seen.txt"]["chars"] == len(PROSE * 2) - 1


def test_eval_scores_every_position_with_its_context(tiny_model_dir: Path) -> None:
    import mlx.core as mx
    import mlx.nn as nn

    from ghostwrite.model import tokenizer
    from ghostwrite.training.evaluate import load_mlx_model, predictions

    model = load_mlx_model(load_model(tiny_model_dir))
    tokens = tokenizer.encode(PROSE[:200])
    nll, best = predictions(model, tokens, batch=3)
    # within one window, the first window's scores equal a direct forward pass
    ctx = model.cfg.ctx_len
    logits = model(mx.array(tokens[None, :ctx].astype(np.int32)))
    targets = mx.array(tokens[None, 1:ctx])
    direct = nn.losses.cross_entropy(logits[:, :-1], targets, reduction="none")
    assert np.allclose(nll[1:ctx], np.array(direct)[0], atol=1e-5)
    assert np.array_equal(best[1:ctx], np.array(mx.argmax(logits[0, :-1], axis=-1)))
    assert np.all(nll[1:] > 0)  # every later position was scored too


@pytest.mark.parametrize("n", [2, 3, 64, 129, 130, 1000, 1001])
def test_scoring_windows_cover_each_position_once_with_context(n: int) -> None:
    from ghostwrite.training.evaluate import scoring_windows

    length, windows = scoring_windows(n, ctx_len=128)
    covered = []
    for start, first_col in windows:
        assert start >= 0 and start + length <= n - 1
        targets = list(range(start + 1 + first_col, start + length + 1))
        covered += targets
        # a scored target sees half a window of context, or everything before it
        assert all(t - start >= min(t, length // 2) for t in targets)
    assert covered == list(range(1, n))
