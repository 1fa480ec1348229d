"""The ghostwrite command: exit codes, one-line errors, complete and info on a real model."""

import json
import os
import subprocess
import sys

import pytest


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


def test_complete_prints_the_same_continuation_as_the_library(tiny_model_dir):
    from ghostwrite.model import Completer, SearchOptions, load_model

    text = "The quick brown fox jumps over the "
    expected = Completer(load_model(tiny_model_dir)).complete(text, SearchOptions(candidates=2))
    result = ghostwrite(
        "complete", "--model", str(tiny_model_dir), "--json", "--candidates", "2", text
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert [c["text"] for c in printed] == [c.text for c in expected]
    plain = ghostwrite("complete", "--model", str(tiny_model_dir), "-", stdin=text)
    assert plain.stdout.rstrip("\n") == expected[0].text


def test_info_prints_the_card(tiny_model_dir):
    result = ghostwrite("info", str(tiny_model_dir), "--json")
    assert result.returncode == 0
    info = json.loads(result.stdout)
    assert info["config"]["n_emb"] == 32 and info["card"]["parameters"] > 0
