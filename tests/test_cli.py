"""The ghostwrite command: exit codes, one-line errors, complete and info on a scripted model."""

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


def test_complete_prints_the_same_continuation_as_the_library(scripted_model_dir):
    from ghostwrite.model import Completer, SearchOptions, load_model
    from tests.scripted import LAZY_TEXT

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
    from tests.scripted import CONFIG

    result = ghostwrite("info", str(scripted_model_dir), "--json")
    assert result.returncode == 0
    info = json.loads(result.stdout)
    assert info["config"] == CONFIG.to_dict()
    assert info["card"]["parameters"] == parameter_count(CONFIG)
