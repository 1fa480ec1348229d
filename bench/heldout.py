"""Held-out loss of models side by side, on classic and modern writing none of them trained on.

    python bench/heldout.py --models bundled runs/bundled-4

Text sets (each character predicted once, from up to a full context of the text before it: the
measure ``ghostwrite eval`` reports):
- classic: *The Time Machine* + *Alice's Adventures in Wonderland* (the bundled model's held-out
  books, with their Project Gutenberg header and licence, as the shared files have them);
- held-out book: *The Strange Case of Dr Jekyll and Mr Hyde* (from the corpus);
- modern, held out: 18F's "Before you ship" guide (from the corpus);
- modern, outside the corpus: the long descriptions (markdown or reStructuredText, prose mixed
  with code) in the ``*.dist-info/METADATA`` files of the packages installed beside ghostwrite.
"""

from __future__ import annotations

import argparse
import math
import sys
from email.parser import Parser
from pathlib import Path

from ghostwrite.model import backend, files, tokenizer

backend.setup_mlx()  # before mlx.core (imported by evaluate): the fast BLAS

from ghostwrite.training.corpus import normalise
from ghostwrite.training.evaluate import EvalResult, evaluate_tokens, load_mlx_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MIN_DESCRIPTION_CHARS = 1000  # shorter ones are mostly a title and a link


def book_sets() -> dict[str, list[str]]:
    corpus = DATA / "corpus"
    return {
        "classic (Time Machine + Alice)": [
            normalise((DATA / name).read_bytes())[0]
            for name in ("gutenberg-the-time-machine.txt", "gutenberg-alice-in-wonderland.txt")
        ],
        "held-out book (Jekyll and Hyde)": [
            normalise((corpus / "book-jekyll-and-hyde.txt").read_bytes())[0]
        ],
        "modern, held out (18F Before you ship)": [
            normalise((corpus / "18f-before-you-ship.txt").read_bytes())[0]
        ],
    }


def package_descriptions() -> list[str]:
    """The long description of every installed distribution but ghostwrite, once each."""
    seen: set[str] = set()
    texts = []
    for site in map(Path, sys.path):
        for metadata in sorted(site.glob("*.dist-info/METADATA")):
            message = Parser().parsestr(metadata.read_text(encoding="utf-8", errors="replace"))
            if (message.get("Name") or "").lower() == "ghostwrite":
                continue
            body = message.get_payload()
            text = body.strip() if isinstance(body, str) else ""
            if len(text) >= MIN_DESCRIPTION_CHARS and text not in seen:
                seen.add(text)
                texts.append(normalise(text.encode("utf-8"))[0])
    return texts


def evaluate(model: object, texts: list[str]) -> EvalResult:
    total = EvalResult()
    for text in texts:
        total += evaluate_tokens(model, tokenizer.encode(text))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["bundled"], help="dirs or bundled/personal")
    args = parser.parse_args()
    sets = book_sets()
    descriptions = package_descriptions()
    sets[f"modern, outside the corpus ({len(descriptions)} package descriptions)"] = descriptions
    loaded = [files.load_model(files.resolve_model_dir(name)) for name in args.models]
    names = [f"{name} ({sum(w.size for w in m.weights.values()) / 1e6:.2f}M)" for name, m in
             zip(args.models, loaded, strict=True)]  # fmt: skip
    print("| text | characters | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for label, texts in sets.items():
        results = [evaluate(load_mlx_model(m), texts) for m in loaded]
        cells = [f"{r.bits_per_char:.3f} bits ({r.bits_per_char * math.log(2):.3f} nats)" for r in
                 results]  # fmt: skip
        print(f"| {label} | {results[0].chars:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
