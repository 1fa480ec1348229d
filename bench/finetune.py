"""Does fine-tuning the bundled model beat training from scratch on a small personal corpus?

    python bench/finetune.py [--book ../shared/data/gutenberg-the-time-machine.txt]
        [--minutes 3 | --steps N] [--lrs 0.0003,0.001]

The "personal corpus" is one book the bundled model never trained on (its validation book),
without the Gutenberg header and licence: its first 90% is the training text, its last 10% the
held-out test. Runs of ``ghostwrite
train`` with the same budget (minutes, or steps: the same work on a busy machine as on a quiet
one), one from scratch (the bundled model's shape) and one with ``--init bundled`` at each of
``--lrs`` (default: train's fine-tuning rate), then ``ghostwrite eval`` of each (and of the
bundled model untouched) on the held-out 10%. Prints a table of bits per character and next-word
accuracy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from ghostwrite.model import files

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT.parent / "shared" / "data" / "gutenberg-the-time-machine.txt"


def story(text: str) -> str:
    """The book without the Gutenberg header and licence (the licence alone is most of a
    short book's last 10%, and the bundled model has read it four times)."""
    start = text.find("\n", text.find("*** START OF")) + 1
    end = text.find("*** END OF")
    return text[start : end if end > 0 else len(text)].strip() + "\n"


def ghostwrite(*args: str) -> str:
    command = [sys.executable, "-m", "ghostwrite.server.cli", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--book", type=Path, default=BOOK)
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=3.0)
    budget.add_argument("--steps", type=int, help="training steps instead of minutes")
    parser.add_argument("--lrs", help="fine-tuning learning rates, comma-separated")
    parser.add_argument("--blas-threads", default="1")
    args = parser.parse_args()

    shape = files.load_model(files.bundled_model_dir()).config
    same_shape = ["--ctx-len", str(shape.ctx_len), "--n-emb", str(shape.n_emb)]
    same_shape += ["--n-heads", str(shape.n_heads), "--n-layers", str(shape.n_layers)]
    text = story(args.book.read_bytes().decode("utf-8-sig").replace("\r\n", "\n"))
    cut = int(len(text) * 0.9)
    work = Path(tempfile.mkdtemp(prefix="ghostwrite-finetune-"))
    train_file, test_file = work / "train.txt", work / "test.txt"
    train_file.write_text(text[:cut])
    test_file.write_text(text[cut:])

    budget = (
        ["--max-steps", str(args.steps)] if args.steps else ["--max-minutes", str(args.minutes)]
    )
    spent = f"{args.steps} steps" if args.steps else f"{args.minutes:g} min"
    runs = [("from scratch", same_shape)]
    for lr in args.lrs.split(",") if args.lrs else [""]:
        label = f"fine-tuned from bundled, lr {lr}" if lr else "fine-tuned from bundled"
        runs.append((label, ["--init", "bundled", *(["--lr", lr] if lr else [])]))
    rows = [("bundled model, untouched", files.bundled_model_dir())]
    for n, (label, extra) in enumerate(runs):
        out = work / f"run-{n}"
        ghostwrite(
            "train", str(train_file), "--out", str(out), *budget,
            "--blas-threads", args.blas_threads, "--progress", "plain", *extra,
        )  # fmt: skip
        rows.append((f"{label}, {spent}", out))

    print(f"corpus: first 90% of {args.book.name} ({cut:,} chars), test: the last 10%")
    print("| model | bits/char | next-word accuracy |")
    print("|---|---|---|")
    for label, model_dir in rows:
        [result] = json.loads(
            ghostwrite("eval", "--model", str(model_dir), "--json", str(test_file))
        )["results"]
        print(f"| {label} | {result['bits_per_char']:.3f} | {result['next_word_accuracy']:.1%} |")


if __name__ == "__main__":
    main()
