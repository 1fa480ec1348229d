"""Package a trained model as ghostwrite's bundled default (``model/bundled``).

    python bench/bundle_model.py TRAINED_MODEL_DIR PATH... [--exclude GLOB] [--licence GLOB=TEXT]
        [--out model/bundled]

PATH... and --exclude are the ones the model was trained with. Stores the weights as float16
(half the size; this script measures on the held-out files that predictions barely move, and
prints it), and adds to the card what a reader of ``ghostwrite info`` wants to know: every file,
whether it was trained on or held out (the training run's card names the held-out files), where
it came from and under which licence (the ``SOURCES.tsv`` beside the files, or ``--licence`` for
the files whose ``SOURCES.tsv`` has no licence column), and the attribution a licence asks for.
A file whose licence is not known is refused: the card must name every source's licence.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import re
from pathlib import Path

import numpy as np

from ghostwrite.model import backend, files, tokenizer

backend.setup_mlx()  # before mlx.core (imported by evaluate): the fast BLAS
from ghostwrite.training.corpus import normalise, scan
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


# A corpus README states each attribution its licences ask for as a quoted sentence after
# "CC-BY-4.0:"; it is read from there, never copied here.
ATTRIBUTION = re.compile(r'CC-BY-4\.0: "([^"]+)"')


def read_attributions(folders: set[Path]) -> list[str]:
    """The attribution sentences the README.md files of the given folders ask for."""
    found: list[str] = []
    for folder in sorted(folders):
        readme = folder / "README.md"
        if readme.is_file():
            text = " ".join(readme.read_text(encoding="utf-8").split())
            found += [m for m in ATTRIBUTION.findall(text) if m not in found]
    return found


def read_sources(folders: set[Path], licences: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each file's source and licence from the SOURCES.tsv files of the given folders; a row
    without a licence takes the one whose glob (in ``licences``) matches its file name."""
    sources: dict[str, dict[str, str]] = {}
    for folder in folders:
        path = folder / "SOURCES.tsv"
        if not path.is_file():
            continue
        with path.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                repo = row.get("source_repository") or row.get("source_repo") or ""
                where = row.get("paths") or row.get("path") or ""
                licence = row.get("licence") or next(
                    (text for glob, text in licences.items() if fnmatch.fnmatch(row["file"], glob)),
                    "",
                )
                sources[row["file"]] = {"source": f"github.com/{repo}/{where}", "licence": licence}
    return sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trained", type=Path)
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    parser.add_argument(
        "--licence",
        action="append",
        default=[],
        metavar="GLOB=TEXT",
        help="the licence of the files matching GLOB whose SOURCES.tsv does not state one",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "model" / "bundled")
    args = parser.parse_args()
    if not all("=" in given for given in args.licence):
        parser.error("--licence takes GLOB=TEXT")
    licences = dict(given.split("=", 1) for given in args.licence)

    trained = files.load_model(args.trained)
    corpus = scan(args.paths, exclude=args.exclude)
    held_out = set(trained.card.get("corpus", {}).get("val_file_names", []))
    if not held_out:
        raise SystemExit(f"{args.trained}'s card names no held-out files (train with --hold-out)")
    sources = read_sources({f.path.parent for f in corpus.files}, licences)
    unlicensed = sorted(
        f.path.name for f in corpus.files if not sources.get(f.path.name, {}).get("licence")
    )
    if unlicensed:
        raise SystemExit(f"no licence known for {', '.join(unlicensed)} (give --licence GLOB=TEXT)")
    trained_on = []
    for f in sorted(corpus.files, key=lambda f: f.path.name):
        source = sources[f.path.name]
        trained_on.append(
            {
                "file": f.path.name,
                "role": "validation" if f.path.name in held_out else "training",
                "characters": f.chars,
                **source,
            }
        )

    card = dict(trained.card)
    card["trained_on"] = trained_on
    card["attribution"] = read_attributions({f.path.parent for f in corpus.files})
    card["training_stages"] = training_stages(args.trained)
    card["bundled"] = "float16 weights; " + (trained.card.get("command") or "")
    files.save_model(args.out, trained.config, trained.weights, card, dtype=np.float16)

    bundled = files.load_model(args.out)
    for f in corpus.files:
        if f.path.name not in held_out:
            continue
        text, _ = normalise(f.path.read_bytes())
        tokens = tokenizer.encode(text)
        full = evaluate_tokens(load_mlx_model(trained), tokens)
        half = evaluate_tokens(load_mlx_model(bundled), tokens)
        print(
            f"{f.path.name}: {full.bits_per_char:.4f} bits/char float32, "
            f"{half.bits_per_char:.4f} float16, {half.chars} chars"
        )
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {args.out} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
