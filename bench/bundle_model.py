"""Package a trained model as ghostwrite's bundled default (``model/bundled``).

    python bench/bundle_model.py TRAINED_MODEL_DIR BOOK... [--out model/bundled]

Stores the weights as float16 (half the size; the bundled model's predictions barely move, which
this script measures on the held-out books and prints), and adds to the card what a reader of
``ghostwrite info`` wants to know: each book, whether it was trained on or held out, and where it
came from (``SOURCES.tsv`` beside the books).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from ghostwrite.model import files, tokenizer
from ghostwrite.training.corpus import choose_validation, normalise, scan
from ghostwrite.training.evaluate import evaluate_tokens, load_mlx_model

ROOT = Path(__file__).resolve().parents[1]


def training_stages(model_dir: Path) -> list[dict[str, object]]:
    """The chain of runs behind a model (each ``--init`` names the one before), oldest first."""
    stages: list[dict[str, object]] = []
    current: Path | None = model_dir
    while current is not None and len(stages) < 10:
        card = files.read_meta(current).get("card", {})
        keys = ("command", "steps", "tokens_seen", "wall_time_s", "val_loss", "machine")
        stages.insert(0, {key: card.get(key) for key in keys})
        init = card.get("init")
        current = Path(init) if init and Path(init).is_dir() else None
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trained", type=Path)
    parser.add_argument("books", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "model" / "bundled")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    args = parser.parse_args()

    trained = files.load_model(args.trained)
    corpus = scan(args.books)
    held_out = {f.sha256 for f in choose_validation(corpus.files, args.val_fraction) or []}
    sources_path = args.books[0].parent / "SOURCES.tsv"
    sources = {}
    if sources_path.exists():
        with sources_path.open(encoding="utf-8") as handle:
            sources = {row["file"]: row for row in csv.DictReader(handle, delimiter="\t")}
    books = []
    for f in corpus.files:
        source = sources.get(f.path.name, {})
        books.append(
            {
                "file": f.path.name,
                "role": "validation" if f.sha256 in held_out else "training",
                "characters": f.chars,
                "source": f"github.com/{source['source_repo']}/{source['path']}"
                if source
                else "unknown",
            }
        )

    card = dict(trained.card)
    card["trained_on"] = books
    card["training_stages"] = training_stages(args.trained)
    card["bundled"] = "float16 weights; " + (trained.card.get("command") or "")
    files.save_model(args.out, trained.config, trained.weights, card, dtype=np.float16)

    bundled = files.load_model(args.out)
    for f in corpus.files:
        if f.sha256 not in held_out:
            continue
        text, _ = normalise(f.path.read_bytes())
        tokens = tokenizer.encode(text)
        full = evaluate_tokens(load_mlx_model(trained), tokens).bits_per_char
        half = evaluate_tokens(load_mlx_model(bundled), tokens).bits_per_char
        print(f"{f.path.name}: {full:.4f} bits/char float32, {half:.4f} float16")
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {args.out} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
