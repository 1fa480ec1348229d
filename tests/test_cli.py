"""The ghostwrite command: exit codes, one-line errors, complete and info on a scripted model,
and the train flags generated from ``TrainConfig``."""

import importlib
import json
import os
import re
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import pytest

from ghostwrite.model.config import PRESETS
from ghostwrite.training.cli import FLAG_GROUPS, config_from_args, train_flags, train_parser
from ghostwrite.training.config import TrainConfig


def ghostwrite(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GHOSTWRITE_MODEL": "/nonexistent/ghostwrite-model"}
    return subprocess.run(
        [sys.executable, "-m", "ghostwrite.server.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--no-such-flag"],
        ["complete"],
        ["complete", "--max-chars", "0", "x"],
        ["complete", "--stop", "sentence", "x"],
        ["frobnicate"],
    ],
)
def test_bad_flags_exit_2_with_a_one_line_reason(args):
    result = ghostwrite(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "error:" in result.stderr


def test_help_on_each_command():
    for args in (["--help"], ["complete", "--help"], ["info", "--help"]):
        result = ghostwrite(*args)
        assert result.returncode == 0 and "usage:" in result.stdout


def test_missing_model_is_one_clear_error():
    result = ghostwrite("complete", "hello")
    assert result.returncode == 1
    assert "cannot load model" in result.stderr and "/nonexistent" in result.stderr


def test_complete_prints_the_same_continuation_as_the_library(scripted_model_dir):
    from ghostwrite.model import Completer, SearchOptions, load_model
    from tests.helpers.scripted import LAZY_TEXT

    completer = Completer(load_model(scripted_model_dir))
    expected = completer.complete(LAZY_TEXT, SearchOptions(candidates=2))
    assert len(expected) == 2 and expected[0].text == "zy"
    result = ghostwrite(
        "complete", "--model", str(scripted_model_dir), "--json", "--candidates", "2", LAZY_TEXT
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert [c["text"] for c in printed] == [c.text for c in expected]
    plain = ghostwrite("complete", "--model", str(scripted_model_dir), "-", stdin=LAZY_TEXT)
    assert plain.stdout.rstrip("\n") == "zy"


def test_info_prints_the_card(scripted_model_dir):
    from ghostwrite.model.files import parameter_count
    from tests.helpers.scripted import CONFIG

    result = ghostwrite("info", str(scripted_model_dir), "--json")
    assert result.returncode == 0
    info = json.loads(result.stdout)
    assert info["config"] == CONFIG.to_dict()
    assert info["card"]["parameters"] == parameter_count(CONFIG)


def test_a_reader_that_goes_away_ends_the_command_quietly(scripted_model_dir):
    """``ghostwrite info | head``: the pipe closes before the card is printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ghostwrite.server.cli", "info", str(scripted_model_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.close()  # before the interpreter has even started
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 141
    assert errors == ""


# ---- ghostwrite train's flags, generated from TrainConfig ---------------------------------------

# Each flag of `ghostwrite train`: the words that give it, and the setting's value they make.
TRAIN_FLAG_VALUES: dict[str, tuple[list[str], object]] = {
    "paths": (["notes", "more/*.md"], ["notes", "more/*.md"]),
    "out": (["--out", "models/mine"], Path("models/mine")),
    "preset": (["--preset", "tiny"], "tiny"),
    "init": (["--init"], "bundled"),
    "ctx_len": (["--ctx-len", "64"], 64),
    "n_emb": (["--n-emb", "32"], 32),
    "n_heads": (["--n-heads", "2"], 2),
    "n_layers": (["--n-layers", "1"], 1),
    "max_minutes": (["--max-minutes", "1.5"], 1.5),
    "max_steps": (["--max-steps", "7"], 7),
    "epochs": (["--epochs", "0.5"], 0.5),
    "resume": (["--resume"], True),
    "include": (["--include", "*.md", "--include", "*.txt"], ["*.md", "*.txt"]),
    "exclude": (["--exclude", "drafts"], ["drafts"]),
    "seed": (["--seed", "3"], 3),
    "progress": (["--progress", "json"], "json"),
    "optimizer": (["--optimizer", "adamw"], "adamw"),
    "batch_size": (["--batch-size", "4"], 4),
    "learning_rate": (["--lr", "0.01"], 0.01),
    "warmup_steps": (["--warmup-steps", "0"], 0),
    "weight_decay": (["--weight-decay", "0"], 0.0),
    "grad_clip": (["--grad-clip", "0.5"], 0.5),
    "dropout": (["--dropout", "0.2"], 0.2),
    "val_fraction": (["--val-fraction", "0.2"], 0.2),
    "hold_out": (["--hold-out", "a*", "--hold-out", "b"], ["a*", "b"]),
    "eval_every": (["--eval-every", "5"], 5),
    "eval_windows": (["--eval-windows", "6"], 6),
    "log_every": (["--log-every", "7"], 7),
    "checkpoint_every": (["--checkpoint-every", "8"], 8),
    "checkpoint_dir": (["--checkpoint-dir", "/tmp/c"], Path("/tmp/c")),
    "token_cache": (["--token-cache", "/tmp/t"], Path("/tmp/t")),
    "streams": (["--streams", "2"], 2),
    "blas_threads": (["--blas-threads", "3"], 3),
    "compile": (["--no-compile"], False),
}


def test_every_training_setting_says_whether_ghostwrite_train_has_a_flag_for_it():
    undecided = [f.name for f in fields(TrainConfig) if "flag" not in f.metadata]
    assert not undecided, (
        f"TrainConfig fields without CLI metadata in training/config.py: {undecided}; give each "
        "metadata=flag(help=...) for a `ghostwrite train` flag, or metadata=NO_FLAG for none"
    )
    groups = {f.metadata["flag"].get("group") for f in train_flags()} - {None}
    assert groups <= set(FLAG_GROUPS), f"unknown --help groups: {groups - set(FLAG_GROUPS)}"


def test_train_flags_default_to_the_dataclass_and_each_sets_its_own_setting():
    def parse(words: list[str]) -> TrainConfig:
        return config_from_args(train_parser().parse_args(words))

    assert parse([]) == TrainConfig()
    assert set(TRAIN_FLAG_VALUES) == {f.name for f in train_flags()}, (
        "a flag was added or removed: update TRAIN_FLAG_VALUES"
    )
    for name, (words, value) in TRAIN_FLAG_VALUES.items():
        assert parse(words) == replace(TrainConfig(), **{name: value}), (name, words)


def test_train_help_groups_its_flags():
    result = ghostwrite("train", "--help")
    assert result.returncode == 0, result.stderr
    sections = re.split(r"\n(?=\S)", result.stdout)
    heading = {section.split(":")[0]: section for section in sections}
    for title, _ in FLAG_GROUPS.values():
        assert title in heading, result.stdout
    assert "--ctx-len N" in heading["model shape"] and "--lr LR" in heading["optimisation"]
    assert "none given: 10 minutes" in heading["budget"]
    assert "(default 0.003, fine-tuning 0.0003)" in result.stdout
    assert f"--preset {{{','.join(PRESETS)}}}" in result.stdout


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        ("ghostwrite.training.cli", ["notes", "--seed", "3"]),
        ("ghostwrite.server.cli", ["train", "notes", "--seed", "3"]),
    ],
)
def test_the_card_records_the_command_line_main_was_given(module, argv, monkeypatch):
    from ghostwrite.training import train

    given: list[TrainConfig] = []
    monkeypatch.setattr(train, "train", given.append)
    monkeypatch.setattr(sys, "argv", ["ghostwrite", "train", "--other", "words"])
    assert importlib.import_module(module).main(argv) == 0
    assert [cfg.command for cfg in given] == ["ghostwrite train notes --seed 3"]
