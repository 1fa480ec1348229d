"""Held-out loss of models side by side, on classic and modern writing none of them trained on.

    python bench/heldout.py --models OLD model/bundled

Text sets (each character predicted once, from up to a full context of the text before it: the
measure ``ghostwrite eval`` reports):
- held out: the files the last model's card names (``--hold-out`` at training), found by name
  under ``../shared/data`` and grouped by the prefix of their names (the folder's own naming of
  its kinds of source: ``SOURCES.tsv`` there says what each file is);
- outside the corpus: the long descriptions (markdown or reStructuredText, prose mixed with code)
  in the ``*.dist-info/METADATA`` files of the packages installed beside ghostwrite.
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


def held_out_sets(names: list[str]) -> dict[str, list[str]]:
    """The held-out files, found under ``DATA`` by name, read and grouped by name prefix."""
    found = {path.name: path for path in sorted(DATA.rglob("*.txt"))}
    missing = [name for name in names if name not in found]
    if missing:
        raise SystemExit(f"held-out files not found under {DATA}: {', '.join(missing)}")
    groups: dict[str, list[Path]] = {}
    for name in sorted(names):
        groups.setdefault(name.split("-")[0], []).append(found[name])
    sets = {}
    for prefix, paths in groups.items():
        folder = paths[0].parent.relative_to(DATA.parent)
        count = f"{len(paths)} file" + "s" * (len(paths) > 1)
        sets[f"held out: {prefix}-* in {folder}/ ({count})"] = [
            normalise(path.read_bytes())[0] for path in paths
        ]
    return sets


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
    loaded = [files.load_model(files.resolve_model_dir(name)) for name in args.models]
    names = next(
        (m.card["corpus"]["val_file_names"] for m in reversed(loaded)
         if m.card.get("corpus", {}).get("val_file_names")),
        None,
    )  # fmt: skip
    if names is None:
        raise SystemExit("no model's card names its held-out files (train with --hold-out)")
    sets = held_out_sets(names)
    descriptions = package_descriptions()
    sets[f"modern, outside the corpus ({len(descriptions)} package descriptions)"] = descriptions
    labels = [f"{name} ({sum(w.size for w in m.weights.values()) / 1e6:.2f}M)" for name, m in
             zip(args.models, loaded, strict=True)]  # fmt: skip
    print("| text | characters | " + " | ".join(labels) + " |")
    print("|---|---|" + "---|" * len(labels))
    for label, texts in sets.items():
        results = [evaluate(load_mlx_model(m), texts) for m in loaded]
        cells = [f"{r.bits_per_char:.3f} bits ({r.bits_per_char * math.log(2):.3f} nats)" for r in
                 results]  # fmt: skip
        print(f"| {label} | {results[0].chars:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
