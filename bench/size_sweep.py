"""Which shape for the bundled model: keystroke savings against completion latency.

    python bench/size_sweep.py [--minutes 8] [--shapes article,deep,wide,long] [--out DIR]

Each candidate shape trains with ``ghostwrite train`` (its default optimisation) on the shared
Gutenberg books for the same wall time, with the bundled model's split (The Time Machine and
Alice held out). Then, on a held-out span of The Time Machine, each model is scored by what a
user gets from the server:
held-out loss, the keystroke savings of bench/keystrokes.py's typist (the server's pipeline with
the workspace dictionary holding the training books, against the word n-gram), and the round
trip of 32-character line suggestions through ``ghostwrite serve`` (bench/server_latency.py).
The pick: the best savings whose latency meets the server targets (p50 < 10 ms, p99 < 30 ms).
Models already in ``--out`` are reused (delete one to retrain it). Writes results.json there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from keystrokes import (
    CLASSIC_WORKSPACE,
    DATA,
    TEXTS,
    figures,
    load_text,
    product_ranking,
    record,
    shown_match,
    type_it,
)
from server_latency import replay

from ghostwrite.model import load_model
from ghostwrite.server.loaded_model import LoadedModel
from ghostwrite.server.ranking import WordScoring
from ghostwrite.server.suggester import SuggestOptions

BOOKS = sorted(DATA.glob("gutenberg-*.txt"))
EVAL = TEXTS["time-machine"][0]
# Changes to the article preset (ctx 128, 128 wide, 4 heads, 3 layers).
SHAPES: dict[str, list[str]] = {
    "article": [],
    "deep": ["--n-layers", "4"],
    "wide": ["--n-emb", "192", "--n-heads", "6"],
    "long": ["--ctx-len", "256"],
    "small": ["--ctx-len", "256", "--n-emb", "192", "--n-heads", "6", "--n-layers", "4"],
}
RECIPE = ["--preset", "article"]  # and ghostwrite train's default optimisation
LATENCY_TARGET_MS = (10.0, 30.0)  # p50, p99


def train(name: str, out: Path, minutes: float) -> None:
    if (out / "ghostwrite.json").exists():
        print(f"{name}: reusing {out}", file=sys.stderr)
        return
    command = [
        sys.executable, "-m", "ghostwrite.training", *map(str, BOOKS), *RECIPE, *SHAPES[name],
        "--max-minutes", str(minutes), "--out", str(out), "--progress", "plain",
        "--log-every", "200",
    ]  # fmt: skip
    print(f"{name}: {' '.join(command[3:])}", file=sys.stderr)
    subprocess.run(command, check=True)


def score(name: str, model_dir: Path, chars: int, latency_chars: int) -> dict[str, object]:
    text = load_text(DATA / EVAL)
    start = 60_000
    context, span = text[start - 2000 : start], text[start : start + chars]
    model = LoadedModel.load(model_dir)
    workspace = [load_text(DATA / book) for book in CLASSIC_WORKSPACE]
    typed = record(model, text, workspace, [start], chars)
    scoring = WordScoring()
    ranking = product_ranking(typed, scoring, scoring.calibration)
    shown = shown_match(typed, *ranking, SuggestOptions.confidence)
    rng = np.random.default_rng(0)
    savings = figures(type_it(typed.block, *shown), rng).savings
    bigram = figures(type_it(typed.block, typed.ngram_shown, typed.ngram_match), rng).savings
    settings = {"maxChars": 32, "stop": "line", "confidence": 0.0}
    typing = replay(str(model_dir), context, span[:latency_chars], settings)
    card = load_model(model_dir).card
    cfg = model.files.config
    return {
        "shape": name,
        "ctx_len": cfg.ctx_len,
        "n_emb": cfg.n_emb,
        "n_layers": cfg.n_layers,
        "parameters": card.get("parameters"),
        "steps": card.get("steps"),
        "val_loss": card.get("val_loss"),
        "savings": savings,
        "bigram_savings": bigram,
        "p50_ms": float(np.percentile(typing.times_ms, 50)),
        "p99_ms": float(np.percentile(typing.times_ms, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="training time per shape")
    parser.add_argument("--shapes", default="article,deep,wide,long")
    parser.add_argument("--chars", type=int, default=1500, help="held-out characters typed")
    parser.add_argument("--latency-chars", type=int, default=600)
    parser.add_argument("--out", type=Path, default=Path("runs/size-sweep"))
    args = parser.parse_args()
    names = args.shapes.split(",")
    unknown = set(names) - set(SHAPES)
    if unknown:
        parser.error(f"unknown shapes {sorted(unknown)}; choose from {', '.join(SHAPES)}")
    for name in names:  # all training first: scoring shares the machine with nothing
        train(name, args.out / name, args.minutes)
    rows = [score(name, args.out / name, args.chars, args.latency_chars) for name in names]
    bigram_savings = rows[0]["bigram_savings"]  # the same text and counts for every shape
    (args.out / "results.json").write_text(
        json.dumps({"minutes": args.minutes, "bigram_savings": bigram_savings, "rows": rows})
    )
    print(
        f"{args.minutes:g} minutes of training each ({' '.join(RECIPE)}); {args.chars} held-out "
        f"characters of {EVAL}; word bigram saves {bigram_savings:.1%}"
    )
    print("| shape | ctx | width x layers | params | steps | val loss | savings | vs bigram "
          "| p50 ms | p99 ms | meets latency |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ok = r["p50_ms"] < LATENCY_TARGET_MS[0] and r["p99_ms"] < LATENCY_TARGET_MS[1]
        print(
            f"| {r['shape']} | {r['ctx_len']} | {r['n_emb']} x {r['n_layers']} | "
            f"{r['parameters']} | {r['steps']} | {r['val_loss']:.3f} | {r['savings']:.1%} | "
            f"{r['savings'] / bigram_savings:.2f}x | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{'yes' if ok else 'no'} |"
        )


if __name__ == "__main__":
    main()
