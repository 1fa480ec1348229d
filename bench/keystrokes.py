"""Keystroke savings and precision of word suggestions on held-out text, against a word n-gram.

    python bench/keystrokes.py --model DIR [--chars 7000] [--spans 4] [--texts NAME ...]
        [--record FILE.npz | --load FILE.npz] [--fit] [--plot PNG] [--no-adaptive]
        [--no-online-calibration]

A typist writes spans of held-out texts. Each span's document before it is already written (the
model sees the end of it, the dictionary all of it), and the workspace holds related files (the
server's workspace index). Before each keystroke a completer shows a suggestion or nothing; when
the suggestion's first word (with any punctuation/space before it) is exactly what comes next,
one keystroke accepts it, otherwise one character is typed. Reported per completer, with
bootstrap 95% intervals over 250-character blocks: keystroke savings (1 - keystrokes /
characters), precision (shown suggestions that were accepted), keystrokes saved per shown
suggestion, and suggestions shown per keystroke.

The typist only ever types the text itself, so what a completer shows at a character depends
on the text before it alone. The benchmark therefore records every candidate (with the ranker's
features) at every character of the spans once, and replays the typist offline for each ranking
and each confidence threshold: the curve of savings against precision costs one pass.

Completers:
- ``n-gram``: a word bigram with unigram fallback over the same counts as the server's dictionary
  (the workspace and the document so far), which always shows its best guess;
- ``model alone``: the model's beam search, no dictionary;
- ``product``: the server's pipeline: the model's and the dictionary's candidates ranked by the
  product of their probabilities, shown when the calibrated probability reaches ``confidence``;
- ``ratio^b``: the model times (P_dict(w | previous) / P_dict(w))^b: what the dictionary adds
  beyond word frequency, which the model already counts;
- ``log-linear``: a logistic ranker over the model's and the dictionary's log-probabilities, the
  word's plain frequency, characters typed and inserted, a new-word flag, occurrences in the
  document's last 4,000 characters and whether the model's search found it;
- ``ceiling``: the typist picks the longest right word among every candidate considered.

Words are scored as the server's ``adaptive`` option (on by default) does: by the model mixed
online with an adaptive byte n-gram of the document (model/adaptive.py); ``--no-adaptive``, by
the model alone. The server's calibration goes on learning from what is typed after each
suggestion (``OnlineCalibration``); the default pipeline's row replays that as the typist goes,
``--no-online-calibration`` keeps the fitted one fixed.

``--fit`` records a text outside every evaluation set (Jekyll and Hyde: held out from the
bundled model's training, and not one of the evaluation texts) and fits on it the calibration
(server/ranking.py's ``CALIBRATION``), the log-linear ranker, and the confidence that saves the
most keystrokes at 1.5x the n-gram's precision.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ghostwrite.model.backend import limit_numpy_blas_threads
from ghostwrite.model.words import APOSTROPHE, WORD, first_word, word_start
from ghostwrite.server.calibration import Calibration, OnlineCalibration, fit_calibration
from ghostwrite.server.dictionary import WordStats
from ghostwrite.server.loaded_model import LoadedModel
from ghostwrite.server.ranking import WordCandidates, WordScoring, word_candidates
from ghostwrite.server.suggester import Suggester, SuggestOptions

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLASSIC_WORKSPACE = (
    "gutenberg-a-tale-of-two-cities.txt",
    "gutenberg-adventures-of-sherlock-holmes.txt",
    "gutenberg-moby-dick.txt",
    "gutenberg-pride-and-prejudice.txt",
)
MODERN_WORKSPACE = ("corpus/18f-blog-1.txt", "corpus/18f-handbook.txt")
# Held out from the bundled model's training: two classic books and a modern guide.
TEXTS = {
    "time-machine": ("gutenberg-the-time-machine.txt", CLASSIC_WORKSPACE),
    "alice": ("gutenberg-alice-in-wonderland.txt", CLASSIC_WORKSPACE),
    "18f": ("corpus/18f-before-you-ship.txt", MODERN_WORKSPACE),
}
FIT_TEXT = ("corpus/book-jekyll-and-hyde.txt", CLASSIC_WORKSPACE)
BLOCK_CHARS = 250
RESAMPLES = 2000
THRESHOLDS = np.round(np.arange(0.0, 0.701, 0.025), 3)


def load_text(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig").replace("\r\n", "\n")


class Bigram:
    """Word bigram with unigram fallback over a dictionary's counts. Right after a word that is
    as likely whole as not (the typist just accepted one), it suggests the next word."""

    def __init__(self, stats: WordStats) -> None:
        self.stats = stats

    def best(self, prefix: str, previous: str | None) -> str | None:
        stats = self.stats
        for word, _ in stats.followers.get(previous or "", Counter()).most_common():
            if word.startswith(prefix) and word != prefix:
                return word
        bucket = stats.by_prefix.get(prefix[:1].lower(), Counter()) if prefix else stats.words
        extending = (w for w in bucket if w.startswith(prefix) and w != prefix)
        return max(extending, key=stats.words.__getitem__, default=None)

    def best_guess(self, before: str) -> str | None:
        start = word_start(before, len(before))
        prefix = before[start:]
        if not prefix and before and not before[-1].isspace():
            # Right after a word: the next word, with its space.
            previous = WORD.findall(before[-100:])
            word = self.best("", previous[-1] if previous else None)
            return " " + word if word else None
        if prefix[:1] in ("_", APOSTROPHE):
            return None  # the baseline guesses no word behind _italics_ markup or a quote
        words = WORD.findall(before[max(0, start - 100) : start])
        previous = words[-1] if words else None
        word = self.best(prefix, previous)
        if self.is_whole(prefix, word, previous):
            following = self.best("", prefix)
            return " " + following if following else None
        return word[len(prefix) :] if word else None

    def is_whole(self, prefix: str, extension: str | None, previous: str | None) -> bool:
        """Whether the typed ``prefix`` is likelier a whole word than its best ``extension``:
        by the pair counts after ``previous`` when they know either, else by word counts."""
        words = self.stats.words
        if not words.get(prefix):
            return False
        if extension is None:
            return True
        follow = self.stats.followers.get(previous or "", Counter())
        if follow.get(prefix) or follow.get(extension):
            return follow.get(prefix, 0) >= follow.get(extension, 0)
        return words[prefix] >= words[extension]


# What the log-linear ranker sees of each candidate, in this order.
FEATURES = (
    "model",  # log P_model(text, then the end of its word)
    "dictionary",  # log P_dict(word | previous word, typed prefix)
    "background",  # log P_dict(word | typed prefix), ignoring the previous word
    "typed",  # log(1 + characters of the word typed so far)
    "new_word",  # 1 if the text starts the next word rather than finishing this one
    "seen",  # log(1 + occurrences, even inside other words, in the last RECENT_CHARS)
    "length",  # log(characters the text inserts)
    "beam",  # 1 if the model's own search found it, 0 if only the dictionary listed it
)
FLOOR = 1e-4
RECENT_CHARS = 4000


def ranker_features(before: str, candidates: WordCandidates, beam: set[str]) -> np.ndarray:
    context = candidates.context
    plain = context.unconditional()
    start = len(before) - len(context.prefix)
    recent = before[max(0, start - RECENT_CHARS) : start]
    rows = []
    for text, model in zip(candidates.texts, candidates.model, strict=True):
        p, word, new_word = context.probability(text)
        rows.append(
            (
                math.log(max(FLOOR, model)),
                math.log(max(FLOOR, p)),
                math.log(max(FLOOR, plain.probability(text)[0])),
                math.log1p(len(context.prefix)),
                float(new_word),
                math.log1p(recent.count(word)) if word else 0.0,
                math.log(len(text)),
                float(text in beam),
            )
        )
    return np.array(rows).reshape(-1, len(FEATURES))


@dataclass
class Recording:
    """Every candidate at every character of the spans. Per character: its block (for the
    bootstrap), and the n-gram's match. Per candidate: its character, how many characters the
    typist accepts with it (0: wrong), its length, the model's and the dictionary's
    probabilities, the ranker's features, and the beam search's probability (NaN: not found
    by the model's search)."""

    block: np.ndarray  # (C,) int
    ngram_shown: np.ndarray  # (C,) bool
    ngram_match: np.ndarray  # (C,) int
    position: np.ndarray  # (K,) int: index of the candidate's character
    match: np.ndarray  # (K,) int
    length: np.ndarray  # (K,) int
    model: np.ndarray  # (K,)
    dictionary: np.ndarray  # (K,)
    features: np.ndarray  # (K, F)
    beam: np.ndarray  # (K,)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, **{k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def load(cls, path: Path) -> Recording:
        with np.load(path, allow_pickle=False) as data:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    @classmethod
    def concatenate(cls, parts: Sequence[Recording]) -> Recording:
        chars = np.cumsum([0] + [len(p.block) for p in parts])
        blocks = np.cumsum([0] + [int(p.block.max()) + 1 if len(p.block) else 0 for p in parts])
        return cls(
            np.concatenate([p.block + b for p, b in zip(parts, blocks, strict=False)]),
            np.concatenate([p.ngram_shown for p in parts]),
            np.concatenate([p.ngram_match for p in parts]),
            np.concatenate([p.position + c for p, c in zip(parts, chars, strict=False)]),
            *(
                np.concatenate([getattr(p, k) for p in parts])
                for k in ("match", "length", "model", "dictionary", "features", "beam")
            ),
        )


def record(
    model: LoadedModel,
    document: str,
    workspace: Sequence[str],
    starts: Sequence[int],
    chars: int,
    adaptive: bool = False,
    limit: int = WordScoring.dictionary_candidates,
) -> Recording:
    """Type ``chars`` characters from each of ``starts`` in ``document``, recording every
    candidate at every character (the text between spans is pasted in); ``limit``: the
    dictionary's words scored per character. With ``adaptive``, the model's probabilities are
    the mixture's."""
    stats = WordStats()
    for text in workspace:
        stats.add(text)
    ngram = Bigram(stats)
    options = SuggestOptions(adaptive=adaptive)
    suggester = Suggester(model)
    word_probabilities = suggester.word_scorer(options)
    typed = ""
    block: list[int] = []
    ngram_shown: list[bool] = []
    ngram_match: list[int] = []
    rows: dict[str, list] = {k: [] for k in ("position", "match", "length", "model")}
    rows |= {k: [] for k in ("dictionary", "features", "beam")}
    for span, start in enumerate(starts):
        end = min(start + chars, len(document))
        text = document[:end]  # a word running past the span's end cannot be accepted
        for i in range(start, end):
            before = document[:i]
            stats.replace(typed, len(typed), len(typed), before[len(typed) :], before)
            typed = before
            char = len(block)
            block.append(span * (chars // BLOCK_CHARS + 1) + (i - start) // BLOCK_CHARS)
            guess = ngram.best_guess(before)
            ngram_shown.append(bool(guess))
            word = first_word(guess) if guess else ""
            ngram_match.append(len(word) if word and text.startswith(word, i) else 0)
            # The candidates the server's rescoring starts from, with no deadline: the recording
            # is what the search finds, on a slow machine or a fast one.
            found = [s for s in suggester.model_candidates(before, options, True) if s.text]
            beam_p = {s.text: s.probability for s in found}
            candidates = word_candidates(before, list(beam_p), stats, word_probabilities, limit)
            features = ranker_features(before, candidates, set(beam_p))
            for k, suggestion in enumerate(candidates.texts):
                if not suggestion.strip():
                    continue  # never shown
                word = first_word(suggestion)
                rows["position"].append(char)
                rows["match"].append(len(word) if text.startswith(word, i) else 0)
                rows["length"].append(len(suggestion))
                rows["model"].append(candidates.model[k])
                rows["dictionary"].append(candidates.dictionary[k])
                rows["features"].append(features[k])
                rows["beam"].append(beam_p.get(suggestion, math.nan))
    return Recording(
        np.array(block, dtype=np.int64),
        np.array(ngram_shown, dtype=bool),
        np.array(ngram_match, dtype=np.int64),
        np.array(rows["position"], dtype=np.int64),
        np.array(rows["match"], dtype=np.int64),
        np.array(rows["length"], dtype=np.int64),
        np.array(rows["model"], dtype=np.float64),
        np.array(rows["dictionary"], dtype=np.float64),
        np.array(rows["features"], dtype=np.float64).reshape(-1, len(FEATURES)),
        np.array(rows["beam"], dtype=np.float64),
    )


# Rankings: each gives every candidate the probability its threshold applies to, and a value
# (the order candidates are shown in).
def share(r: Recording, score: np.ndarray) -> np.ndarray:
    """``score`` renormalised at each character to the model's total for its candidates."""
    chars = len(r.block)
    model_total = np.bincount(r.position, r.model, chars)[r.position]
    total = np.bincount(r.position, score, chars)[r.position]
    return np.where(total > 0, score * model_total / np.maximum(total, 1e-300), 0.0)


def product_ranking(
    r: Recording, scoring: WordScoring, calibration: Calibration | None
) -> tuple[np.ndarray, np.ndarray]:
    """The server's: the model times the dictionary, thresholded after ``calibration``."""
    p = share(r, r.model * np.maximum(scoring.unseen_word, r.dictionary))
    return (p if calibration is None else calibration(p)), p * (r.length - 1)


def ratio_ranking(
    r: Recording, scoring: WordScoring, power: float
) -> tuple[np.ndarray, np.ndarray]:
    """The model times (P_dict(w | previous) / P_dict(w)) ** power."""
    floor = scoring.unseen_word
    background = np.exp(r.features[:, FEATURES.index("background")])
    ratio = np.maximum(floor, r.dictionary) / np.maximum(floor, background)
    p = share(r, r.model * ratio**power)
    return p, p * (r.length - 1)


def loglinear_ranking(r: Recording, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = 1 / (1 + np.exp(-np.clip(r.features @ weights[:-1] + weights[-1], -30, 30)))
    return p, p * (r.length - 1)


def model_ranking(r: Recording) -> tuple[np.ndarray, np.ndarray]:
    """The beam search's own candidates, best first (no dictionary)."""
    p = np.where(np.isnan(r.beam), -1.0, r.beam)
    return p, p


def best_per_character(r: Recording, value: np.ndarray) -> np.ndarray:
    """Index of the highest-valued candidate at each character that has one."""
    order = np.lexsort((-value, r.position))
    return order[np.r_[True, r.position[order][1:] != r.position[order][:-1]]]


def shown_match(
    r: Recording, probability: np.ndarray, value: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per character: whether a suggestion is shown (the best by value of those at or above the
    threshold) and how many characters it lets the typist accept."""
    chars = len(r.block)
    eligible = probability >= threshold
    firsts = best_per_character(r, np.where(eligible, value, -np.inf))
    shown = np.zeros(chars, dtype=bool)
    match = np.zeros(chars, dtype=np.int64)
    best = firsts[eligible[firsts]]
    shown[r.position[best]] = True
    match[r.position[best]] = r.match[best]
    return shown, match


def ceiling(r: Recording) -> tuple[np.ndarray, np.ndarray]:
    chars = len(r.block)
    shown = np.bincount(r.position, minlength=chars) > 0
    match = np.zeros(chars, dtype=np.int64)
    np.maximum.at(match, r.position, r.match)
    return shown, match


def type_it(block: np.ndarray, shown: np.ndarray, match: np.ndarray) -> np.ndarray:
    """The typist's path: per block, (characters, keystrokes, shown, accepted)."""
    stats = np.zeros((int(block.max()) + 1, 4), dtype=np.int64)
    np.add.at(stats[:, 0], block, 1)
    i, n = 0, len(block)
    while i < n:
        b = block[i]
        stats[b, 1] += 1
        if shown[i]:
            stats[b, 2] += 1
            if match[i]:
                stats[b, 3] += 1
                i += int(match[i])
                continue
        i += 1
    return stats


def type_calibrating(
    r: Recording, raw: np.ndarray, value: np.ndarray, threshold: float, prior: Calibration
) -> np.ndarray:
    """``type_it`` with the server's ``OnlineCalibration`` learning as the typist goes. At each
    character visited, the suggestion shown is the best by value of those whose probability
    (``raw`` through the calibration as it stands) reaches the threshold; the best by value at
    any threshold (what the server learns from) is judged once the typist has typed past it."""
    calibration = OnlineCalibration(prior)
    order = np.lexsort((-value, r.position))
    bounds = np.searchsorted(r.position[order], np.arange(len(r.block) + 1))
    stats = np.zeros((int(r.block.max()) + 1, 4), dtype=np.int64)
    np.add.at(stats[:, 0], r.block, 1)
    pending: list[tuple[int, float, bool]] = []  # (judged at character, raw p, right)
    i, n = 0, len(r.block)
    while i < n:
        while pending and pending[0][0] <= i:
            _, p, right = pending.pop(0)
            calibration.learn(p, right)
        b = r.block[i]
        stats[b, 1] += 1
        here = order[bounds[i] : bounds[i + 1]]
        step = 1
        if len(here):
            top = here[0]
            pending.append((i + max(1, int(r.match[top])), float(raw[top]), bool(r.match[top])))
            pending.sort()
            eligible = here[calibration(raw[here]) >= threshold]
            if len(eligible):
                stats[b, 2] += 1
                if r.match[eligible[0]]:
                    stats[b, 3] += 1
                    step = int(r.match[eligible[0]])
        i += step
    return stats


@dataclass(frozen=True)
class Figures:
    savings: float
    precision: float
    per_shown: float
    shown: float
    intervals: np.ndarray  # (3, 2): savings, precision, per shown

    def summary(self) -> dict[str, object]:
        names = ("savings", "precision", "per_shown")
        return {
            "savings": self.savings,
            "precision": self.precision,
            "per_shown": self.per_shown,
            "shown": self.shown,
            "intervals": {n: [float(x) for x in self.intervals[k]] for k, n in enumerate(names)},
        }


def figures(stats: np.ndarray, rng: np.random.Generator) -> Figures:
    def measures(s: np.ndarray) -> np.ndarray:
        chars, keys, shown, accepted = s[..., 0], s[..., 1], s[..., 2], s[..., 3]
        return np.stack(
            [
                1 - keys / chars,
                accepted / np.maximum(shown, 1),
                (chars - keys) / np.maximum(shown, 1),
            ]
        )

    blocks = stats[stats[:, 0] > 0]
    weights = rng.multinomial(len(blocks), np.full(len(blocks), 1 / len(blocks)), RESAMPLES)
    resampled = measures(weights @ blocks)  # (3, R)
    total = blocks.sum(axis=0)
    point = measures(total)
    return Figures(*point, total[2] / total[1], np.percentile(resampled, [2.5, 97.5], axis=1).T)


def fit_loglinear(r: Recording, l2: float = 1.0) -> np.ndarray:
    """Logistic regression of "the candidate is the next word" on the features (Newton's method
    with a little L2 on the weights, none on the bias): weights, then the bias."""
    x = np.hstack([r.features, np.ones((len(r.features), 1))])
    y = (r.match > 0).astype(np.float64)
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))
        gradient = x.T @ (p - y) + penalty * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def fit_server_calibration(r: Recording, scoring: WordScoring) -> Calibration:
    """The calibration of the product's probability, fitted on the suggestion each character
    would show (the best by value): what the user sees."""
    p, value = product_ranking(r, scoring, None)
    shown = best_per_character(r, value)
    return fit_calibration(p[shown], r.match[shown] > 0)


Curve = list[tuple[float, "Figures"]]


def curve(
    r: Recording, probability: np.ndarray, value: np.ndarray, rng: np.random.Generator
) -> Curve:
    return [
        (float(c), figures(type_it(r.block, *shown_match(r, probability, value, c)), rng))
        for c in THRESHOLDS
    ]


def online_curve(
    r: Recording, raw: np.ndarray, value: np.ndarray, prior: Calibration, rng: np.random.Generator
) -> Curve:
    """``curve`` with the calibration learning as the typist goes (``type_calibrating``)."""
    return [
        (float(c), figures(type_calibrating(r, raw, value, float(c), prior), rng))
        for c in THRESHOLDS
    ]


def best_savings(points: Curve, precision: float) -> tuple[float, Figures | None]:
    """The threshold saving the most keystrokes at at least this precision, and its figures."""
    reaching = [(c, f) for c, f in points if f.precision >= precision]
    return max(reaching, key=lambda cf: cf[1].savings, default=(math.nan, None))


def choose_confidence(points: Curve, ngram: Figures, ratio: float = 1.5) -> float:
    """The highest threshold at which savings and precision are both at least ``ratio`` times
    the n-gram's; failing that, the one that saves the most at that ratio of its precision."""
    both = [
        c
        for c, f in points
        if f.savings >= ratio * ngram.savings and f.precision >= ratio * ngram.precision
    ]
    return max(both) if both else best_savings(points, ratio * ngram.precision)[0]


def calibration_table(
    r: Recording, p: np.ndarray, value: np.ndarray
) -> list[tuple[str, int, float, float]]:
    """Shown suggestions (threshold 0) by stated probability: mean stated, how often right."""
    shown = best_per_character(r, value)
    stated, right = p[shown], r.match[shown] > 0
    rows = []
    edges = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.01]
    for lo, hi in itertools.pairwise(edges):
        inside = (stated >= lo) & (stated < hi)
        if inside.any():
            label = f"{lo:.1f}-{min(hi, 1):.1f}"
            rows.append(
                (
                    label,
                    int(inside.sum()),
                    float(stated[inside].mean()),
                    float(right[inside].mean()),
                )
            )
    return rows


def plot(curves: dict[str, Curve], ngram: Figures, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for name, points in curves.items():
        ax.plot(
            [f.precision * 100 for _, f in points],
            [f.savings * 100 for _, f in points],
            marker=".",
            label=name,
        )
        if name.startswith("product"):
            for c, f in points[::4]:
                ax.annotate(f"{c:g}", (f.precision * 100, f.savings * 100), fontsize=7)
    ax.plot([ngram.precision * 100], [ngram.savings * 100], "k*", markersize=10, label="n-gram")
    ax.plot(
        [ngram.precision * 150], [ngram.savings * 150], "r+", markersize=12, label="1.5x n-gram"
    )
    ax.set_xlabel("precision: shown suggestions accepted (%)")
    ax.set_ylabel("keystroke savings (%)")
    ax.set_title("Savings against precision as the threshold rises (labels: confidence)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def spans(document: str, count: int, chars: int) -> list[int]:
    """``count`` span starts spread over the document's middle (past any front matter)."""
    usable = len(document) - chars
    return [int(usable * (k + 1) / (count + 1)) for k in range(count)]


def row(name: str, f: Figures) -> str:
    (s0, s1), (p0, p1), (k0, k1) = f.intervals
    return (
        f"| {name} | {f.savings:.1%} ({s0:.1%}-{s1:.1%}) | {f.precision:.1%} ({p0:.1%}-{p1:.1%}) "
        f"| {f.per_shown:.2f} ({k0:.2f}-{k1:.2f}) | {f.shown:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--texts", nargs="+", choices=list(TEXTS), default=list(TEXTS))
    parser.add_argument("--eval-file", type=Path, help="one text instead of the built-in ones")
    parser.add_argument("--workspace", type=Path, nargs="*", default=[], help="with --eval-file")
    parser.add_argument("--chars", type=int, default=7000, help="characters typed per text")
    parser.add_argument("--spans", type=int, default=4, help="spans per text")
    parser.add_argument("--record", type=Path, help="save the recording here")
    parser.add_argument("--load", type=Path, help="replay a saved recording")
    parser.add_argument("--fit", action="store_true", help="fit on Jekyll and Hyde (see above)")
    parser.add_argument("--fit-record", type=Path, help="save/replay the fitting text's recording")
    parser.add_argument("--plot", type=Path, help="draw savings against precision here")
    parser.add_argument(
        "--dictionary-candidates",
        type=int,
        default=WordScoring.dictionary_candidates,
        help="the dictionary's words scored per character (the server's: %(default)s)",
    )
    parser.add_argument(
        "--summary-json",
        type=Path,
        help="write the n-gram's, the model's and the default's figures",
    )
    parser.add_argument(
        "--adaptive",
        action=argparse.BooleanOptionalAction,
        default=SuggestOptions.adaptive,
        help="score words by the GPT mixed with the n-gram (the server's default: %(default)s)",
    )
    parser.add_argument(
        "--online-calibration",
        action=argparse.BooleanOptionalAction,
        default=WordScoring.learns_calibration,
        help="the calibration learns from what the typist types (the server's default: "
        "%(default)s)",
    )
    args = parser.parse_args()

    limit_numpy_blas_threads(1)  # as the server does: a second thread only adds contention
    started = time.perf_counter()
    model = LoadedModel.load(Path(args.model))
    per_span = args.chars // args.spans

    def recorded(document_path: Path, workspace: Sequence[Path]) -> Recording:
        document = load_text(document_path)
        texts = [load_text(p) for p in workspace]
        starts = spans(document, args.spans, per_span)
        return record(
            model, document, texts, starts, per_span, args.adaptive, args.dictionary_candidates
        )

    if args.load:
        recording = Recording.load(args.load)
    else:
        if args.eval_file:
            sources = [(args.eval_file, args.workspace)]
        else:
            sources = [(DATA / TEXTS[n][0], [DATA / w for w in TEXTS[n][1]]) for n in args.texts]
        recording = Recording.concatenate([recorded(*s) for s in sources])
        if args.record:
            recording.save(args.record)

    rng = np.random.default_rng(0)
    scoring = WordScoring()
    calibration = scoring.calibration
    confidence = SuggestOptions.confidence
    loglinear = None
    if args.fit:
        if args.fit_record and args.fit_record.exists():
            fitting = Recording.load(args.fit_record)
        else:
            fitting = recorded(DATA / FIT_TEXT[0], [DATA / w for w in FIT_TEXT[1]])
            if args.fit_record:
                fitting.save(args.fit_record)
        calibration = fit_server_calibration(fitting, scoring)
        loglinear = fit_loglinear(fitting)
        fit_ngram = figures(type_it(fitting.block, fitting.ngram_shown, fitting.ngram_match), rng)
        if args.online_calibration:
            raw = product_ranking(fitting, scoring, None)
            fit_curve = online_curve(fitting, *raw, calibration, rng)
        else:
            fit_curve = curve(fitting, *product_ranking(fitting, scoring, calibration), rng)
        confidence = choose_confidence(fit_curve, fit_ngram)
        fitted = Calibration(round(calibration.slope, 4), round(calibration.intercept, 4))
        print(f"fitted on {FIT_TEXT[0]}: {fitted}; log-linear weights {np.round(loglinear, 3)}")
        print(
            "confidence chosen there (the most precise at 1.5x the n-gram's savings and "
            f"precision): {confidence:g}"
        )

    chars = len(recording.block)
    print(
        f"{chars} characters, {int(recording.block.max()) + 1} blocks, model {args.model} "
        f"(val loss {model.files.card.get('val_loss', '?')}); {time.perf_counter() - started:.0f} s"
    )
    ngram = figures(type_it(recording.block, recording.ngram_shown, recording.ngram_match), rng)
    product = product_ranking(recording, scoring, calibration)
    rankings = {
        "product (calibrated)": product,
        "ratio^0.5": ratio_ranking(recording, scoring, 0.5),
        "ratio^1": ratio_ranking(recording, scoring, 1.0),
    }
    if loglinear is not None:
        rankings["log-linear"] = loglinear_ranking(recording, loglinear)
    curves = {name: curve(recording, *ranking, rng) for name, ranking in rankings.items()}
    uncalibrated = product_ranking(recording, scoring, None)
    online = args.online_calibration and calibration is not None
    if online and calibration is not None:
        curves["product (calibrated online)"] = online_curve(
            recording, *uncalibrated, calibration, rng
        )

    def at(ranking: tuple[np.ndarray, np.ndarray], c: float) -> Figures:
        return figures(type_it(recording.block, *shown_match(recording, *ranking, c)), rng)

    print("| completer | savings | precision | saved per shown | shown per keystroke |")
    print("|---|---|---|---|---|")
    print(row("n-gram (bigram + unigram, same counts as the dictionary)", ngram))
    alone = at(model_ranking(recording), 0.05)
    print(row("model alone, confidence 0.05", alone))
    print(row("product, uncalibrated, confidence 0.05", at(uncalibrated, 0.05)))
    default = at(product if calibration is not None else uncalibrated, confidence)
    if calibration is not None:
        print(row(f"product, calibrated, confidence {confidence:g}", default))
    if online and calibration is not None:
        stats = type_calibrating(recording, *uncalibrated, confidence, calibration)
        default = figures(stats, rng)
        print(row(f"product, calibrated online, confidence {confidence:g}", default))
    if args.summary_json:
        summary = {"chars": chars, "n-gram": ngram, "model alone": alone, "default": default}
        args.summary_json.write_text(
            json.dumps({k: v if k == "chars" else v.summary() for k, v in summary.items()})
        )
    print(
        row("ceiling: any candidate", figures(type_it(recording.block, *ceiling(recording)), rng))
    )

    target = 1.5 * ngram.precision
    print(f"\nMost savings at precision >= 1.5x the n-gram's ({target:.1%}):")
    print("| ranking | threshold | savings | precision | saved per shown |")
    print("|---|---|---|---|---|")
    for name, points in curves.items():
        c, f = best_savings(points, target)
        if f is None:
            print(f"| {name} | - | never reaches it | | |")
        else:
            print(row(f"{name} | {c:g}", f).replace(f" | {f.shown:.2f} |", " |"))

    print("\nSavings / precision by threshold:")
    names = list(curves)
    print("| threshold | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for k, c in enumerate(THRESHOLDS):
        cells = [f"{curves[n][k][1].savings:.1%} / {curves[n][k][1].precision:.1%}" for n in names]
        print(f"| {c:g} | " + " | ".join(cells) + " |")
    for name, ranking in (
        ("product, uncalibrated", uncalibrated),
        ("product, calibrated", product),
    ):
        print(f"\nCalibration, {name} (the suggestion each character would show):")
        print("| stated probability | shown | mean stated | right |")
        print("|---|---|---|---|")
        for bin_, n, mean, right in calibration_table(recording, *ranking):
            print(f"| {bin_} | {n} | {mean:.2f} | {right:.1%} |")
    if args.plot:
        plot(curves, ngram, args.plot)


if __name__ == "__main__":
    main()
