"""Which shape for the bundled model: keystroke savings against completion latency.

    python bench/size_sweep.py [--minutes 48] [--shapes article,192x4,256x4] [--out DIR]
        [--chars 3000] [--compare DIR ...]

Every candidate shape trains with ``ghostwrite train`` (its default recipe) on the bundled
model's data and held-out files, all at once for the same wall time, each on one stream and one
BLAS thread: on a 2-core machine they share it evenly, and whatever else runs slows all alike.
Then each model is scored by what a user gets from the server: held-out loss, the keystroke
savings and precision of bench/keystrokes.py's typist on a classic (The Time Machine) and a
modern (18F's "Before you ship") held-out text through the default pipeline, against the word
n-gram, and the p99 round trip of word and 32-character line suggestions through ``ghostwrite
serve`` (bench/server_latency.py). The pick: the best savings within the latency targets.
Models already in ``--out`` are reused (delete one to retrain it); ``--compare`` scores other
models beside them (the bundled one, say). Writes results.json in ``--out``.
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
    DATA,
    TEXTS,
    Figures,
    Recording,
    figures,
    load_text,
    model_ranking,
    product_ranking,
    record,
    shown_match,
    spans,
    type_calibrating,
    type_it,
)
from server_latency import replay

from ghostwrite.server.loaded_model import LoadedModel
from ghostwrite.server.ranking import WordScoring
from ghostwrite.server.suggester import SuggestOptions

# The bundled model's training data and held-out files (bench/README.md, the bundled model).
CORPUS = [*sorted(DATA.glob("gutenberg-*.txt")), DATA / "corpus"]
DATA_OPTIONS = ["--exclude", "README.md", "--exclude", "SOURCES.tsv"] + [
    option
    for name in (
        "gutenberg-the-time-machine.txt",
        "gutenberg-alice-in-wonderland.txt",
        "18f-before-you-ship.txt",
        "book-jekyll-and-hyde.txt",
    )
    for option in ("--hold-out", name)
]
EVAL = TEXTS["time-machine"][0]
# Changes to the article preset (ctx 128, 128 wide, 4 heads, 3 layers).
SHAPES: dict[str, list[str]] = {
    "article": [],
    "deep": ["--n-layers", "4"],
    "192x4": ["--n-emb", "192", "--n-heads", "6", "--n-layers", "4"],  # the bundled model's
    "256x4": ["--n-emb", "256", "--n-heads", "8", "--n-layers", "4"],
    "long": ["--ctx-len", "256"],
}
RECIPE = ["--preset", "article"]  # and ghostwrite train's default optimisation
LATENCY_TARGET_MS = (20.0, 30.0)  # word and line suggestions, p99


def train_together(names: list[str], out: Path, minutes: float) -> None:
    """Train every shape not yet in ``out`` at once, each on one core's share (one stream, one
    BLAS thread), so that all of them see the same machine for the same wall time, whatever
    else it runs."""
    runs = []
    for name in names:
        if (out / name / "ghostwrite.json").exists():
            print(f"{name}: reusing {out / name}", file=sys.stderr)
            continue
        command = [
            sys.executable, "-m", "ghostwrite.training", *map(str, CORPUS), *DATA_OPTIONS,
            *RECIPE, *SHAPES[name], "--max-minutes", str(minutes), "--out", str(out / name),
            "--streams", "1", "--blas-threads", "1", "--progress", "plain", "--log-every", "200",
        ]  # fmt: skip
        print(f"{name}: {' '.join(command[3:])}", file=sys.stderr)
        out.mkdir(parents=True, exist_ok=True)
        log = (out / f"{name}.log").open("w")
        runs.append((name, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)))
    for name, run in runs:
        if run.wait() != 0:
            raise SystemExit(f"{name}: training failed (exit {run.returncode}); see its log")


def pipeline_figures(model: LoadedModel, names: list[str], chars: int) -> dict[str, Figures]:
    """Keystroke savings on the held-out texts ``names`` (bench/keystrokes.py's), typed in two
    spans each: the word n-gram, the model alone, and the server's default pipeline (adaptive
    on, the calibration learning as the typist goes, the default confidence)."""
    parts = []
    for name in names:
        document_name, workspace = TEXTS[name]
        document = load_text(DATA / document_name)
        texts = [load_text(DATA / w) for w in workspace]
        per_span = chars // 2
        parts.append(record(model, document, texts, spans(document, 2, per_span), per_span, True))
    r = Recording.concatenate(parts)
    scoring = WordScoring()
    assert scoring.calibration is not None
    rng = np.random.default_rng(0)
    raw = product_ranking(r, scoring, None)
    return {
        "n-gram": figures(type_it(r.block, r.ngram_shown, r.ngram_match), rng),
        "model alone": figures(type_it(r.block, *shown_match(r, *model_ranking(r), 0.05)), rng),
        "default": figures(
            type_calibrating(r, *raw, SuggestOptions.confidence, scoring.calibration), rng
        ),
    }


def p99_ms(model_dir: Path, stop: str, chars: int) -> float:
    """p99 round trip of ``stop`` suggestions through ``ghostwrite serve`` (confidence 0, so
    every keystroke gets one), typing ``chars`` characters of The Time Machine back to back."""
    text = load_text(DATA / EVAL)
    start = 50_000
    settings = {"maxChars": 32, "stop": stop, "confidence": 0.0}
    typing = replay(
        str(model_dir),
        text[start - 2000 : start],
        text[start : start + chars],
        settings,
        pause_s=0.0,
    )
    return float(np.percentile(typing.times_ms, 99))


def score(name: str, model_dir: Path, chars: int, latency_chars: int) -> dict[str, object]:
    model = LoadedModel.load(model_dir)
    card = model.files.card
    cfg = model.files.config
    measured = {text: pipeline_figures(model, [text], chars) for text in ("time-machine", "18f")}
    return {
        "shape": name,
        "ctx_len": cfg.ctx_len,
        "n_emb": cfg.n_emb,
        "n_layers": cfg.n_layers,
        "parameters": card.get("parameters"),
        "steps": card.get("steps"),
        "tokens": card.get("tokens_seen"),
        "val_loss": card.get("val_loss"),
        "keystrokes": {t: {k: f.summary() for k, f in m.items()} for t, m in measured.items()},
        "word_p99_ms": p99_ms(model_dir, "word", latency_chars),
        "line_p99_ms": p99_ms(model_dir, "line", latency_chars),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=48.0, help="training time per shape")
    parser.add_argument("--shapes", default="article,192x4,256x4")
    parser.add_argument("--chars", type=int, default=3000, help="characters typed per text")
    parser.add_argument("--latency-chars", type=int, default=600)
    parser.add_argument("--out", type=Path, default=Path("runs/size-sweep"))
    parser.add_argument(
        "--compare", type=Path, nargs="*", default=[], help="models scored beside the shapes"
    )
    args = parser.parse_args()
    names = args.shapes.split(",")
    unknown = set(names) - set(SHAPES)
    if unknown:
        parser.error(f"unknown shapes {sorted(unknown)}; choose from {', '.join(SHAPES)}")
    train_together(names, args.out, args.minutes)  # all training first: scoring runs alone
    models = {name: args.out / name for name in names} | {str(d): d for d in args.compare}
    rows = [score(name, d, args.chars, args.latency_chars) for name, d in models.items()]
    (args.out / "results.json").write_text(json.dumps({"minutes": args.minutes, "rows": rows}))
    print(
        f"{args.minutes:g} minutes of training each, {len(names)} at once ({' '.join(RECIPE)}); "
        f"{args.chars} characters typed of each held-out text; latency targets: word p99 "
        f"<= {LATENCY_TARGET_MS[0]:g} ms, line p99 <= {LATENCY_TARGET_MS[1]:g} ms"
    )
    print("| shape | params | steps | val loss | text | n-gram | model alone | default "
          "(precision) | vs n-gram | word p99 ms | line p99 ms |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        for text, m in r["keystrokes"].items():
            ngram, alone, default = m["n-gram"], m["model alone"], m["default"]
            print(
                f"| {r['shape']} ({r['n_emb']} x {r['n_layers']}) | {r['parameters']:,} | "
                f"{r['steps']:,} | {r['val_loss']:.4f} | {text} | {ngram['savings']:.1%} | "
                f"{alone['savings']:.1%} | {default['savings']:.1%} "
                f"({default['precision']:.1%}) | {default['savings'] / ngram['savings']:.2f}x | "
                f"{r['word_p99_ms']:.1f} | {r['line_p99_ms']:.1f} |"
            )


if __name__ == "__main__":
    main()
