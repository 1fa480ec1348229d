"""What the word request's time budget costs and buys, in process, side by side.

    python bench/word_budget.py --model model/bundled [--file F] [--chars 1500] [--budget-ms 15]

Two of the server's suggesters (``server/suggester.py``) follow the same typist through a
held-out span (the document before it already written, as bench/server_latency.py opens it):
one with ``word_budget_s`` (the server's default unless ``--budget-ms``), one with no limit.
They take turns at every keystroke, so a busy moment of the machine falls on both. Each
prefills its next window after answering, untimed, as the server does. Prints per suggester
p50/p95/p99 ms of a word request, suggestions shown, and suggestions right (the shown word is
what the typist types next), and how many keystrokes the two showed different suggestions.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ghostwrite.model.backend import limit_numpy_blas_threads
from ghostwrite.server.dictionary import WordStats
from ghostwrite.server.engine import fresh_calibration
from ghostwrite.server.loaded_model import LoadedModel
from ghostwrite.server.suggester import Suggester, SuggestOptions

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_FILE = DATA / "gutenberg-the-time-machine.txt"  # held out by the bundled model's training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model directory")
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="held-out text")
    parser.add_argument("--start", type=int, default=50_000, help="where the span starts")
    parser.add_argument("--chars", type=int, default=1500, help="characters to type")
    parser.add_argument("--context", type=int, default=2000, help="text already in the document")
    parser.add_argument("--budget-ms", type=float, help="the budget (default: the server's)")
    args = parser.parse_args()
    limit_numpy_blas_threads(1)  # as the server runs

    text = args.file.read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    begin, start = max(0, args.start - args.context), args.start
    budgeted = SuggestOptions()
    if args.budget_ms is not None:
        budgeted = SuggestOptions(word_budget_s=args.budget_ms / 1000)
    runs = {
        f"budget {budgeted.word_budget_s * 1000:g} ms": budgeted,
        "no limit": SuggestOptions(word_budget_s=None),
    }
    model = LoadedModel.load(args.model)
    suggesters, stats = {}, {}
    for name in runs:
        suggesters[name] = Suggester(model, calibration=fresh_calibration(), warms_later=True)
        stats[name] = WordStats()
        stats[name].add(text[begin:start])
    times: dict[str, list[float]] = {name: [] for name in runs}
    shown: dict[str, list[str | None]] = {name: [] for name in runs}
    for end in range(start, start + args.chars):
        for name, options in runs.items():
            suggester = suggesters[name]
            began = time.perf_counter()
            found = suggester.suggest(text[begin:end], "", options, stats[name])
            times[name].append((time.perf_counter() - began) * 1000)
            suggester.completer.warm_ahead()
            shown[name].append(found[0].text if found else None)

    print(f"model {args.model}; {args.chars} keystrokes of {args.file.name}, taking turns")
    print("| word request | p50 ms | p95 ms | p99 ms | shown | right |")
    print("|---|---|---|---|---|---|")
    for name in runs:
        p50, p95, p99 = np.percentile(times[name], [50, 95, 99])
        words = shown[name]
        right = sum(
            1 for i, w in enumerate(words) if w is not None and text.startswith(w, start + i)
        )
        shown_n = sum(w is not None for w in words)
        print(f"| {name} | {p50:.2f} | {p95:.2f} | {p99:.2f} | {shown_n} | {right} |")
    first, second = shown.values()
    differ = sum(a != b for a, b in zip(first, second, strict=True))
    print(f"\nkeystrokes where the two showed different suggestions: {differ} of {args.chars}")


if __name__ == "__main__":
    main()
