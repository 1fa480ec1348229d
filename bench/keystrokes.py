"""Keystroke savings of a typist who accepts suggestions word by word, against a word n-gram.

    python bench/keystrokes.py --model DIR [--train-files F ...] [--eval-file F] [--chars 2000]
        [--confidence C ...] [--rank savings probability] [--beam-width B]
        [--rows ngram model document workspace]

The typist writes a held-out span. Before each keystroke a completer shows a suggestion (or
nothing); when the suggestion's first word (with any punctuation/space before it) is exactly what
comes next, one keystroke accepts it, otherwise one character is typed. Reported per completer:
keystroke savings (1 - keystrokes / characters), suggestions shown per keystroke and the
exact-match rate (shown suggestions whose first word was accepted).

A ``ceiling`` row lets the typist pick from every candidate the workspace row considered (the
longest that matches): what a perfect ranking of those candidates would save.

Completers: a classical word bigram with unigram fallback trained on the training files, which
always shows its best guess (``ngram``), and the server's pipeline (``Suggester``: beam search,
word rescoring, confidence threshold) with no dictionary (``model``), with a dictionary of the
document as it is typed (``document``), and with the dictionary also holding the training files
(``workspace``: what the server's workspace index gives when those files are in the workspace;
the fair comparison, since the n-gram sees the same words).
"""

from __future__ import annotations

import argparse
import itertools
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ghostwrite.server.dictionary import WORD, WordStats, _word_start
from ghostwrite.server.engine import LoadedModel, Suggester, WordScoring
from ghostwrite.server.options import ServerOptions

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# The bundled model's training held out Alice and The Time Machine (its card: 2 val files).
TRAIN = [
    "gutenberg-a-tale-of-two-cities.txt",
    "gutenberg-adventures-of-sherlock-holmes.txt",
    "gutenberg-moby-dick.txt",
    "gutenberg-pride-and-prejudice.txt",
]
EVAL = "gutenberg-the-time-machine.txt"
ROWS = ("ngram", "model", "document", "workspace", "ceiling")
FIRST_WORD = re.compile(r"\W*\w+(?:'\w+)*|\W+")


def load_text(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig").replace("\r\n", "\n")


class Bigram:
    """Word bigram counts with unigram fallback. Right after a word that is as likely whole as
    not (the typist just accepted one), it suggests the next word."""

    def __init__(self, texts: list[str]) -> None:
        self.unigrams: Counter[str] = Counter()
        self.follow: dict[str, Counter[str]] = {}
        for text in texts:
            words = WORD.findall(text)
            self.unigrams.update(words)
            for a, b in itertools.pairwise(words):
                self.follow.setdefault(a, Counter())[b] += 1
        self._ranked = [w for w, _ in self.unigrams.most_common()]
        self._best_unigram: dict[str, str | None] = {}  # prefix -> most frequent completion

    def best(self, prefix: str, previous: str | None) -> str | None:
        follow = self.follow.get(previous or "", Counter())
        for word, _ in follow.most_common():
            if word.startswith(prefix) and word != prefix:
                return word
        if prefix not in self._best_unigram:
            self._best_unigram[prefix] = next(
                (w for w in self._ranked if w.startswith(prefix) and w != prefix),
                None,
            )
        return self._best_unigram[prefix]

    def suggest(self, before: str) -> list[str]:
        return [s] if (s := self.best_guess(before)) else []

    def best_guess(self, before: str) -> str | None:
        start = _word_start(before, len(before))
        prefix = before[start:]
        words = WORD.findall(before[max(0, start - 100) : start])
        if not prefix and before and not before[-1].isspace():
            # Right after a word: the next word, with its space.
            previous = WORD.findall(before[-100:])
            word = self.best("", previous[-1] if previous else None)
            return " " + word if word else None
        if prefix and not prefix[0].isalnum():
            return None
        previous = words[-1] if words else None
        word = self.best(prefix, previous)
        if self.is_whole(prefix, word, previous):
            # As likely to be a whole word as to go on: the next word, with its space.
            following = self.best("", prefix)
            return " " + following if following else None
        return word[len(prefix) :] if word else None

    def is_whole(self, prefix: str, extension: str | None, previous: str | None) -> bool:
        """Whether the typed ``prefix`` is likelier a whole word than its best ``extension``:
        by the pair counts after ``previous`` when they know either, else by word counts."""
        if not self.unigrams[prefix]:
            return False
        if extension is None:
            return True
        follow = self.follow.get(previous or "", Counter())
        if follow[prefix] or follow[extension]:
            return follow[prefix] >= follow[extension]
        return self.unigrams[prefix] >= self.unigrams[extension]


@dataclass
class Result:
    name: str
    characters: int
    keystrokes: int
    shown: int
    accepted: int
    seconds: float

    def row(self) -> str:
        savings = 1 - self.keystrokes / self.characters
        return (
            f"| {self.name} | {savings:.1%} | {self.shown / self.keystrokes:.2f} | "
            f"{self.accepted / max(1, self.shown):.1%} | {self.seconds:.0f} s |"
        )


def first_word(suggestion: str) -> str:
    chunk = FIRST_WORD.match(suggestion)
    return chunk.group(0) if chunk else suggestion


def simulate(
    name: str, context: str, span: str, suggest: Callable[[str], list[str]], any_of: bool = False
) -> Result:
    """The typist accepts the first suggestion's first word when it is what comes next; with
    ``any_of``, the longest such word among all the suggestions (an upper bound on ranking)."""
    typed = context
    i = keystrokes = shown = accepted = 0
    start = time.perf_counter()
    while i < len(span):
        suggestions = suggest(typed)
        keystrokes += 1
        if suggestions:
            shown += 1
            words = [first_word(s) for s in (suggestions if any_of else suggestions[:1])]
            word = max((w for w in words if span.startswith(w, i)), key=len, default="")
            if word:
                accepted += 1
                typed += word
                i += len(word)
                continue
        typed += span[i]
        i += 1
    return Result(name, len(span), keystrokes, shown, accepted, time.perf_counter() - start)


def model_typist(
    model: LoadedModel,
    options: ServerOptions,
    scoring: WordScoring,
    stats: WordStats | None,
    context: str,
    all_candidates: bool = False,
) -> Callable[[str], list[str]]:
    suggester = Suggester(model, scoring)
    if stats is not None:
        stats.add(context)
    last = [context]

    def suggest(before: str) -> list[str]:
        if stats is not None:
            old = last[0]
            stats.replace(old, len(old), len(old), before[len(old) :], before)
            last[0] = before
        if all_candidates:
            return [s.text for s in suggester.candidates(before, options, stats) if s.text.strip()]
        return [s.text for s in suggester.suggest(before, "", options, stats)]

    return suggest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--train-files", type=Path, nargs="+", default=[DATA / f for f in TRAIN])
    parser.add_argument("--eval-file", type=Path, default=DATA / EVAL)
    parser.add_argument("--start", type=int, default=60_000)
    parser.add_argument("--chars", type=int, default=2000)
    parser.add_argument("--context", type=int, default=2000, help="document text before the span")
    parser.add_argument("--confidence", type=float, nargs="+", default=[0.0])
    parser.add_argument("--beam-width", type=int, default=ServerOptions.beam_width)
    parser.add_argument(
        "--rank",
        nargs="+",
        choices=("savings", "probability"),
        default=["savings" if WordScoring.by_savings else "probability"],
        help="order suggestions by expected keystrokes saved or by probability",
    )
    parser.add_argument(
        "--rows",
        nargs="+",
        choices=ROWS,
        default=["ngram", "workspace"],
        help="ngram; model without dictionary; document dictionary; workspace dictionary "
        "(document + training files); ceiling (the workspace row, but the typist picks from all "
        "its candidates: what a perfect ranking would save)",
    )
    args = parser.parse_args()

    text = load_text(args.eval_file)
    context = text[max(0, args.start - args.context) : args.start]
    span = text[args.start : args.start + args.chars]
    train_texts = [load_text(p) for p in args.train_files]
    model = LoadedModel.load(Path(args.model))
    results = []
    if "ngram" in args.rows:
        ngram = Bigram(train_texts)
        results.append(simulate("word bigram + unigram fallback", context, span, ngram.suggest))
    for row, confidence, rank in itertools.product(
        [r for r in ROWS if r != "ngram" and r in args.rows],
        args.confidence,
        args.rank,
    ):
        if row == "model" and rank != args.rank[0]:
            continue  # without a dictionary there is nothing to rerank
        options = ServerOptions(
            confidence=confidence, dictionary=row != "model", beam_width=args.beam_width
        )
        scoring = WordScoring(by_savings=rank == "savings")
        stats = None if row == "model" else WordStats()
        name = f"model, confidence {confidence}"
        ceiling = row == "ceiling"
        if stats is not None:
            name += f", {'workspace' if ceiling else row} dictionary, by {rank}"
            name = f"ceiling: any candidate of ({name})" if ceiling else name
            for seed in train_texts if row in ("workspace", "ceiling") else []:
                stats.add(seed)
        typist = model_typist(model, options, scoring, stats, context, all_candidates=ceiling)
        results.append(simulate(name, context, span, typist, any_of=ceiling))
    print(
        f"{len(span)} characters of {args.eval_file.name} from offset {args.start}; model "
        f"{args.model} (val loss {model.files.card.get('val_loss', '?')}); n-gram trained on "
        f"{', '.join(p.name for p in args.train_files)}"
    )
    print("| completer | keystroke savings | shown per keystroke | exact-match rate | time |")
    print("|---|---|---|---|---|")
    for result in results:
        print(result.row())


if __name__ == "__main__":
    main()
