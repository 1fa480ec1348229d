"""Rescoring word suggestions: the model's words and the dictionary's, scored by the product of
the two, which a calibration (``calibration.py``) turns into how often such a suggestion is the
next word."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ghostwrite.model.words import WORD, word_start

from .calibration import Calibration
from .dictionary import WordDistribution, WordStats


@dataclass(frozen=True)
class Suggestion:
    text: str
    probability: float  # what the confidence threshold applies to
    # A rescored word suggestion's renormalised product, which the calibration maps to
    # ``probability`` (None for the model's own suggestions).
    product: float | None = None


@dataclass(frozen=True)
class WordContext:
    """What the dictionary knows at a cursor: the typed part of the word, the word before it,
    and the distributions of the word here and of the word after a whole typed word."""

    prefix: str
    previous: str | None
    here: WordDistribution  # P(word | previous word, typed prefix)
    following: WordDistribution  # P(next word | the typed word), once it is whole

    @classmethod
    def at(cls, before: str, stats: WordStats) -> WordContext:
        start = word_start(before, len(before))
        prefix = before[start:]
        words_before = WORD.findall(before[max(0, start - 200) : start])
        previous = words_before[-1] if words_before else None
        here = stats.distribution(prefix, previous)
        return cls(prefix, previous, here, stats.distribution("", prefix))

    def unconditional(self) -> WordContext:
        """The same cursor by word counts alone, ignoring the previous word."""

        def alone(d: WordDistribution) -> WordDistribution:
            return replace(d, follow=Counter(), follow_total=0, follow_distinct=0)

        return replace(self, previous=None, here=alone(self.here), following=alone(self.following))

    def probability(self, text: str) -> tuple[float, str, bool]:
        """P_dict of the word ``text`` types, that word, and whether it is a new word.

        Right after a whole word (where a typist who just accepted one stands), the word may go
        on or end: the next word, after a space or punctuation, gets P(the typed word ends) *
        P(next word | typed word)."""
        prefix = self.prefix
        typed = WORD.match(prefix + text)
        if prefix and typed and typed.end() > len(prefix):
            return self.here.probability(typed.group(0)), typed.group(0), False  # it goes on
        after = WORD.search(text)  # the next word, after a space, punctuation or line break
        word = after.group(0) if after else ""
        if not prefix:
            return (self.here.probability(word) if word else 0.0), word, True
        ends = self.here.probability(prefix)
        return ends * (self.following.probability(word) if word else 1.0), word, True


@dataclass(frozen=True)
class WordCandidates:
    texts: list[str]
    model: np.ndarray  # (N,) P_model(text, then the end of its word)
    dictionary: np.ndarray  # (N,) P_dict, 0 where the dictionary does not know the word
    context: WordContext


def prefixes(text: str) -> set[bytes]:
    """The text's byte prefixes: its nodes in a prefix tree of texts."""
    data = text.encode()
    return {data[:end] for end in range(1, len(data) + 1)}


def tree_size(texts: Sequence[str]) -> int:
    """Nodes of the prefix tree of the texts' bytes: what one scoring pass computes."""
    return len(set().union(*map(prefixes, texts)))


def within_nodes(
    found: Sequence[str], listed: Sequence[str], dictionary: dict[str, float], max_nodes: int
) -> set[str]:
    """The texts one scoring pass of ``max_nodes`` nodes covers: every one of the model's
    (``found``), then the dictionary's (``listed``), likeliest first, until one does not fit."""
    kept = set(found)
    nodes: set[bytes] = set().union(*map(prefixes, found))
    for text in sorted(listed, key=lambda t: -dictionary[t]):
        new = prefixes(text) - nodes
        if len(nodes) + len(new) > max_nodes:
            break
        kept.add(text)
        nodes |= new
    return kept


def word_candidates(
    before: str,
    found: Sequence[str],
    stats: WordStats,
    word_probabilities: Callable[[list[str]], np.ndarray],
    limit: int,
    max_nodes: int | None = None,
) -> WordCandidates:
    """The model's texts (``found``) and the dictionary's ``limit`` likeliest words for a cursor
    after ``before`` (and, after a whole word, its likeliest followers), scored by the model in
    one pass and by the dictionary. ``max_nodes`` bounds that pass (``within_nodes``)."""
    context = WordContext.at(before, stats)
    prefix = context.prefix
    # Between words a dictionary word needs a separating space unless one was just typed.
    gap = "" if prefix or not before or before[-1].isspace() else " "
    listed = [gap + w[len(prefix) :] for w in stats.candidates(prefix, context.previous, limit)]
    if prefix and context.here.probability(prefix):  # the typed word may be whole already
        listed += [" " + w for w in stats.candidates("", prefix, limit)]
    texts = [t for t in dict.fromkeys([*found, *listed]) if t]
    if not texts:
        return WordCandidates([], np.zeros(0), np.zeros(0), context)
    dictionary = {t: context.probability(t)[0] for t in texts}
    if max_nodes is not None:
        kept = within_nodes([t for t in found if t], texts, dictionary, max_nodes)
        texts = [t for t in texts if t in kept]
    probabilities = np.array([dictionary[t] for t in texts])
    return WordCandidates(texts, word_probabilities(texts), probabilities, context)


def product(model: np.ndarray, dictionary: np.ndarray, unseen: float) -> np.ndarray:
    """P_model * P_dict (at least ``unseen``: the model's own words can be names the dictionary
    never saw), shared out in proportion over the model's total for the candidates."""
    both = model * np.maximum(unseen, dictionary)
    total = both.sum()
    return both * (model.sum() / total) if total > 0 else both


# Fitted on Jekyll and Hyde, outside every evaluation set, with the bundled model and the
# default pipeline (python bench/keystrokes.py --model model/bundled --fit prints it).
CALIBRATION = Calibration(0.708, -0.2935)


@dataclass(frozen=True)
class WordScoring:
    """How word suggestions are rescored with the dictionary (bench/keystrokes.py measures it)."""

    # The dictionary's likeliest words scored by the model per request. 8 against 16, on 8,000
    # characters of The Time Machine and Before you ship: 28.0% of keystrokes saved at 32.5%
    # precision against 28.2% at 31.4%, in 18% less time per word request (bench/README.md).
    dictionary_candidates: int = 8
    # The least the dictionary gives a text: the model's own words can be names it never saw.
    unseen_word: float = 1e-3
    # Rank by expected keystrokes saved (probability x characters inserted) instead of by
    # probability: on two spans of The Time Machine it saved 25.3% and 26.2% of keystrokes,
    # against 25.1% and 25.1% by probability (bench/keystrokes.py, confidence 0.05).
    by_savings: bool = True
    # What a word suggestion's probability means (None: the renormalised product itself).
    calibration: Calibration | None = CALIBRATION
    # Whether the server goes on fitting that calibration to what the writer types
    # (``OnlineCalibration``), starting from the fitted one.
    learns_calibration: bool = True


def rescore_with_dictionary(
    before: str,
    found: list[Suggestion],
    stats: WordStats,
    scoring: WordScoring,
    word_probabilities: Callable[[list[str]], np.ndarray],
    calibration: Callable[[np.ndarray], np.ndarray] | None = None,
    max_nodes: int | None = None,
) -> list[Suggestion]:
    """Rescore the model's words and the dictionary's (a cache language model) by the product of
    the two: P_model(text) * P_dictionary(word | previous word, typed prefix). The model judges
    the context, the dictionary which words this writer uses; their product favours words both
    expect. The model scores every candidate exactly (``word_probabilities``). The products are
    renormalised to the model's total for the candidates, then calibrated (``calibration``, else
    ``scoring``'s) into how often such a suggestion is the next word, which the confidence
    threshold applies to. ``max_nodes``: see ``word_candidates``."""
    texts = [s.text for s in found]
    limit = scoring.dictionary_candidates
    candidates = word_candidates(before, texts, stats, word_probabilities, limit, max_nodes)
    model = candidates.model
    if not candidates.texts:
        return []
    if model.sum() <= 0:
        return found  # nothing fits in the model's window
    both = product(model, candidates.dictionary, scoring.unseen_word)
    calibrate = calibration or scoring.calibration
    shown = both if calibrate is None else calibrate(both)
    # Ranked by the product, whose order the calibration keeps.
    saved = np.array([len(t) - 1 for t in candidates.texts]) if scoring.by_savings else 1
    order = np.argsort(-(both * saved), kind="stable")
    return [Suggestion(candidates.texts[i], float(shown[i]), float(both[i])) for i in order]
