"""The benchmark scripts run end to end on a real tiny model (their figures live in the README,
so they must keep working; the numbers themselves are not checked here)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROSE

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_bench(script: str, *args: str | Path) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_server_latency_replays_typing_through_the_server(tiny_model_dir, tmp_path):
    text = tmp_path / "held-out.txt"
    text.write_text(PROSE * 4, encoding="utf-8")
    out = run_bench(
        "server_latency.py", "--model", tiny_model_dir, "--file", text,
        "--start", "300", "--context", "200", "--chars", "40",
    )  # fmt: skip
    row = next(line for line in out.splitlines() if line.startswith("| keystroke"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    p50, p95, p99, worst = map(float, cells[1:5])
    assert 0 < p50 <= p95 <= p99 <= worst


def test_keystrokes_compares_the_server_pipeline_with_the_bigram(tiny_model_dir, tmp_path):
    text = tmp_path / "held-out.txt"
    text.write_text(PROSE * 4, encoding="utf-8")
    out = run_bench(
        "keystrokes.py", "--model", tiny_model_dir, "--train-files", text, "--eval-file", text,
        "--start", "300", "--context", "200", "--chars", "80",
        "--rows", "ngram", "workspace", "ceiling",
    )  # fmt: skip
    rows = [line for line in out.splitlines() if line.startswith("| ") and "%" in line]
    assert [row.split("|")[1].strip().split(",")[0] for row in rows] == [
        "word bigram + unigram fallback",
        "model",
        "ceiling: any candidate of (model",
    ]
    savings = [float(row.split("|")[2].strip().rstrip("%")) for row in rows]
    assert all(0 <= s < 100 for s in savings)
    assert savings[2] >= savings[1]  # picking from all candidates never does worse here


def test_bigram_suggests_the_next_word_after_a_whole_word(monkeypatch):
    spec = importlib.util.spec_from_file_location("keystrokes", BENCH / "keystrokes.py")
    keystrokes = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "keystrokes", keystrokes)  # for its dataclasses
    spec.loader.exec_module(keystrokes)
    ngram = keystrokes.Bigram(["an offer of the cat, of the dog, of a cat"])
    assert ngram.best_guess("one of") == " the"  # "of" is likelier whole than "offer"
    assert ngram.best_guess("one off") == "er"
    assert ngram.best_guess("one of the c") == "at"
    assert ngram.best_guess("the cat") == " of"  # "cat" is only ever whole
