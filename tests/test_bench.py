"""The benchmark scripts run end to end on a real tiny model (their figures live in the README,
so they must keep working; the numbers themselves are not checked here)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from ghostwrite.server.dictionary import WordStats
from ghostwrite.training.harness import PROSE, make_corpus

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


def test_word_budget_types_with_and_without_the_budget(tiny_model_dir, tmp_path):
    text = tmp_path / "held-out.txt"
    text.write_text(PROSE * 4, encoding="utf-8")
    out = run_bench(
        "word_budget.py", "--model", tiny_model_dir, "--file", text,
        "--start", "300", "--context", "200", "--chars", "30", "--budget-ms", "15",
    )  # fmt: skip
    rows = [line for line in out.splitlines() if line.startswith("| budget") or "no limit" in line]
    assert [row.split("|")[1].strip() for row in rows] == ["budget 15 ms", "no limit"]
    for row in rows:
        p50, p95, p99, shown, right = (float(c) for c in row.strip("|").split("|")[1:])
        assert 0 < p50 <= p95 <= p99 and 0 <= right <= shown <= 30


def test_keystrokes_compares_the_server_pipeline_with_the_bigram(tiny_model_dir, tmp_path):
    text = tmp_path / "held-out.txt"
    text.write_text(PROSE * 4, encoding="utf-8")
    recording = tmp_path / "recording.npz"
    out = run_bench(
        "keystrokes.py", "--model", tiny_model_dir, "--eval-file", text, "--workspace", text,
        "--chars", "120", "--spans", "2", "--record", recording,
    )  # fmt: skip
    first_table = out.split("\n\n")[0]
    rows = [line for line in first_table.splitlines() if line.startswith("| ") and "%" in line]
    names = [row.split("|")[1].strip().split(",")[0] for row in rows]
    assert names[:3] == ["n-gram (bigram + unigram", "model alone", "product"]
    assert names[-1] == "ceiling: any candidate"
    savings = [float(row.split("|")[2].split("%")[0]) for row in rows]
    assert all(0 <= s < 100 for s in savings)
    assert savings[-1] >= savings[2]  # picking from all candidates never does worse here
    # A replay of the recording gives the same figures.
    again = run_bench("keystrokes.py", "--model", tiny_model_dir, "--load", recording)
    assert [line for line in again.splitlines() if line.startswith("| ")] == [
        line for line in out.splitlines() if line.startswith("| ")
    ]


def test_bigram_suggests_the_next_word_after_a_whole_word(monkeypatch):
    spec = importlib.util.spec_from_file_location("keystrokes", BENCH / "keystrokes.py")
    keystrokes = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "keystrokes", keystrokes)  # for its dataclasses
    spec.loader.exec_module(keystrokes)
    stats = WordStats()
    stats.add("an offer of the cat, of the dog, of a cat")
    ngram = keystrokes.Bigram(stats)
    assert ngram.best_guess("one of") == " the"  # "of" is likelier whole than "offer"
    assert ngram.best_guess("one off") == "er"
    assert ngram.best_guess("one of the c") == "at"
    assert ngram.best_guess("the cat") == " of"  # "cat" is only ever whole


def test_personal_scenario_compares_both_models_with_the_ngram(tiny_model_dir, tmp_path):
    folder = make_corpus(tmp_path / "notes", 10)
    out = run_bench(
        "personal.py", "--folder", folder, "--model", tiny_model_dir, "--steps", "3",
        "--chars", "120", "--spans", "2", "--adaptive", "--record", tmp_path / "recordings",
    )  # fmt: skip
    recordings = {p.name for p in (tmp_path / "recordings").iterdir()}
    assert recordings == {f"{tiny_model_dir.name}.npz", "fine-tuned.npz"}
    rows = [line for line in out.splitlines() if line.startswith("| ") and "%" in line]
    names = [row.split("|")[1].strip() for row in rows]
    assert names[0].startswith("word n-gram")
    assert [n.split(":")[1].strip() for n in names[1:]] == ["model alone", "default pipeline"] * 2
    assert rows[0].split("|")[4].strip() == "1.00x"  # the n-gram against itself
