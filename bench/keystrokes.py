"""Keystroke savings of a typist who accepts suggestions word by word, against a word n-gram.

    python bench/keystrokes.py --model DIR [--train-files F ...] [--eval-file F] [--chars 2000]

The typist writes a held-out span. Before each keystroke a completer shows a suggestion (or
nothing); when the suggestion's first word (with any punctuation/space before it) is exactly what
comes next, one keystroke accepts it, otherwise one character is typed. Reported per completer:
keystroke savings (1 - keystrokes / characters), suggestions shown per keystroke and the
exact-match rate (shown suggestions whose first word was accepted).

Completers: the server's pipeline (``Suggester``: beam search, confidence threshold, optional
personal dictionary fed with the document as it is typed), and a classical word bigram with
unigram fallback trained on the same files, which always shows its best guess.
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
from ghostwrite.server.engine import LoadedModel, Suggester
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
FIRST_WORD = re.compile(r"\W*\w+(?:'\w+)*|\W+")


def load_text(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig").replace("\r\n", "\n")


class Bigram:
    """Word bigram counts with unigram fallback."""

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

    def suggest(self, before: str) -> str | None:
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
        word = self.best(prefix, words[-1] if words else None)
        return word[len(prefix) :] if word else None


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


def simulate(name: str, context: str, span: str, suggest: Callable[[str], str | None]) -> Result:
    typed = context
    i = keystrokes = shown = accepted = 0
    start = time.perf_counter()
    while i < len(span):
        suggestion = suggest(typed)
        keystrokes += 1
        if suggestion:
            shown += 1
            chunk = FIRST_WORD.match(suggestion)
            word = chunk.group(0) if chunk else suggestion
            if span.startswith(word, i):
                accepted += 1
                typed += word
                i += len(word)
                continue
        typed += span[i]
        i += 1
    return Result(name, len(span), keystrokes, shown, accepted, time.perf_counter() - start)


def model_typist(
    model: LoadedModel, options: ServerOptions, dictionary: bool, context: str, seed: list[str]
):
    suggester = Suggester(model)
    stats = WordStats() if dictionary else None
    if stats is not None:
        for text in [*seed, context]:
            stats.add(text)
    last = [context]

    def suggest(before: str) -> str | None:
        if stats is not None:
            old = last[0]
            stats.replace(old, len(old), len(old), before[len(old) :], before)
            last[0] = before
        found = suggester.suggest(before, "", options, stats)
        return found[0].text if found else None

    return suggest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--train-files", type=Path, nargs="+", default=[DATA / f for f in TRAIN])
    parser.add_argument("--eval-file", type=Path, default=DATA / EVAL)
    parser.add_argument("--start", type=int, default=60_000)
    parser.add_argument("--chars", type=int, default=2000)
    parser.add_argument("--context", type=int, default=2000, help="document text before the span")
    parser.add_argument("--confidence", type=float, nargs="+", default=[0.0, 0.2])
    parser.add_argument(
        "--seed-dictionary",
        action="store_true",
        help="also put the training files in the dictionary (as if they were open documents)",
    )
    args = parser.parse_args()

    text = load_text(args.eval_file)
    context = text[max(0, args.start - args.context) : args.start]
    span = text[args.start : args.start + args.chars]
    train_texts = [load_text(p) for p in args.train_files]
    ngram = Bigram(train_texts)
    seed = train_texts if args.seed_dictionary else []
    model = LoadedModel.load(Path(args.model))
    results = [simulate("word bigram + unigram fallback", context, span, ngram.suggest)]
    for confidence in args.confidence:
        for dictionary in (False, True):
            options = ServerOptions(confidence=confidence, dictionary=dictionary)
            name = f"model, confidence {confidence}"
            if dictionary:
                name += " + dictionary" + (" seeded with the training files" if seed else "")
            typist = model_typist(model, options, dictionary, context, seed)
            results.append(simulate(name, context, span, typist))
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
