"""The suggestion pipeline for one document: the model's beam search, rescored with the personal
dictionary, filtered so the editor only shows confident text that is not already there. The
language server (through ``engine``) and bench/keystrokes.py both run it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ghostwrite.model.adaptive import AdaptiveModel
from ghostwrite.model.completer import Completer
from ghostwrite.model.inference import log_softmax
from ghostwrite.model.search import SearchOptions
from ghostwrite.model.words import WORD_END_BYTES, is_word_char

from .calibration import OnlineCalibration, Outcomes
from .dictionary import WordStats
from .loaded_model import LoadedModel
from .ranking import Suggestion, WordScoring, rescore_with_dictionary, tree_size

# A keystroke's answer should come within 30 ms: past 20 ms of search a multi-word suggestion
# ends at its last whole word (bench/server_latency.py measures the round trip).
SEARCH_TIME_BUDGET_S = 0.02

SEARCH_DEFAULTS = SearchOptions(time_budget_s=SEARCH_TIME_BUDGET_S)

# Candidate words scored by the model in one pass over their prefix tree (shared beginnings
# computed once): the dictionary's candidates and the beams' few always fit in one.
SCORED_PER_PASS = 64

# How fast the scoring time a word request's search leaves falls back after a slow pass.
SCORING_DECAY = 0.9

# Text given to the model starts at a multiple of this many characters, so the start only moves
# now and then: each move re-prefills the window at once (a latency spike), while a longer text
# only costs a cheap encode and compare per keystroke.
ANCHOR_CHARS = 1 << 16


@dataclass(frozen=True)
class SuggestOptions:
    """What one request asks of the suggester. The defaults are the product's defaults."""

    search: SearchOptions = SEARCH_DEFAULTS
    # The most precise threshold that still saves 1.5x the keystrokes of a word n-gram at 1.5x
    # its precision, on text outside the benchmark's (bench/README.md, the curve).
    confidence: float = 0.175
    dictionary: bool = True  # rescore word suggestions with the personal dictionary
    # Words scored by the model mixed with the document's byte n-gram: on Neovim's manual as new
    # writing, 26.1% of keystrokes saved against 21.1% without (bench/README.md).
    adaptive: bool = True
    # A word request is a search, then one pass that scores the candidates (the search's and
    # the dictionary's), within this many seconds from reading the typed text however fast the
    # machine is (None: no limit; a document's first request has none either). The search
    # leaves the pass the time it lately took (up to half of this) and stops when another step
    # would end past its share, with the words it has finished (none, if none: the dictionary's
    # are still scored). The pass then scores the search's words and as many of the
    # dictionary's, likeliest first, as the time left allows at the model's measured pace.
    # The round trip's target is 20 ms (bench/server_latency.py; bench/word_budget.py prices
    # this in right suggestions).
    word_budget_s: float | None = 0.015

    @property
    def rescores(self) -> bool:
        """Whether suggestions are rescored with a dictionary, when one is given."""
        return self.dictionary and self.search.stop == "word"


class Suggester:
    """Suggestions for one document, reusing the model's cache from keystroke to keystroke."""

    def __init__(
        self,
        model: LoadedModel,
        scoring: WordScoring | None = None,
        calibration: OnlineCalibration | None = None,
        warms_later: bool = False,
    ) -> None:
        """``calibration``: the one word suggestions are shown by, learning from what is typed
        after each (shared by a writer's documents); None: ``scoring``'s fixed one.
        ``warms_later``: the caller runs ``completer.warm_ahead()`` after answering."""
        self.model = model
        self.scoring = scoring or WordScoring()
        self.calibration = calibration
        self.outcomes = Outcomes(calibration) if calibration is not None else None
        # The completer reuses its cache, and its last suggestion when the user types along it.
        self.completer = Completer(model.decoder)
        # How long a word request's scoring pass takes: the last one's time, or more after a
        # slower one (decaying by ``SCORING_DECAY`` a request), so that a pass over few
        # candidates does not starve the next, larger one.
        self.scoring_s = 0.0
        # The model's time per node of the candidates' prefix tree, over recent passes
        # (weighted by their nodes, decaying by ``SCORING_DECAY``), and the rest of the last
        # pass's time (the dictionary, the mixing, the ranking).
        self._tree_s = self._tree_nodes = 0.0
        self.node_s = 0.0
        self.overhead_s = 0.0
        self._pass_s = 0.0  # the last pass's model time
        self.warms_later = warms_later
        self.adaptive: AdaptiveModel | None = None  # made on the first request that asks for it

    def suggest(
        self,
        before: str,
        after: str,
        options: SuggestOptions,
        stats: WordStats | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Suggestion]:
        """Suggestions to insert at a cursor with ``before`` and ``after`` (the rest of the line)
        around it, best first."""
        if after[:1] and is_word_char(after[0]):
            return []  # inside a word: any continuation would split it
        candidates = self.candidates(before, options, stats, should_stop)
        return [
            s
            for s in candidates
            if s.text.strip() and s.probability >= options.confidence and not repeats(s, after)
        ][: options.search.candidates]

    def candidates(
        self,
        before: str,
        options: SuggestOptions,
        stats: WordStats | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Suggestion]:
        """Every continuation considered, best first, before filtering and cutting to the
        number of candidates wanted."""
        rescore = stats is not None and options.rescores
        budget = options.word_budget_s if rescore and self.scoring_s > 0 else None
        # (None the first time: until a pass is timed there is nothing to share the budget
        # by, and a document's first answer, in a cold process, must not come back empty.)
        search_budget = None
        if budget is not None:
            # At least half the budget searches: one slow pass (the first, a busy moment) must
            # not cut the next search short.
            search_budget = budget - min(self.scoring_s, budget / 2)
        found = self.model_candidates(before, options, rescore, should_stop, search_budget)
        if rescore and stats is not None:
            scoring_started = time.perf_counter()
            max_nodes = None
            if budget is not None and self.node_s > 0:
                due = self.completer.read_at + budget
                max_nodes = int((due - scoring_started - self.overhead_s) / self.node_s)
            scorer = self.word_scorer(options)
            self._pass_s = 0.0
            outcomes = self.outcomes
            if outcomes is not None:
                outcomes.typed(before)
            found = rescore_with_dictionary(
                before, found, stats, self.scoring, scorer, self.calibration, max_nodes
            )
            scored_s = time.perf_counter() - scoring_started
            self.scoring_s = max(scored_s, SCORING_DECAY * self.scoring_s)
            self.overhead_s = max(0.0, scored_s - self._pass_s)
            best = next((s for s in found if s.text.strip()), None)
            if outcomes is not None and best is not None and best.product is not None:
                outcomes.expect(before, best.text, best.product)
        return found

    def model_candidates(
        self,
        before: str,
        options: SuggestOptions,
        for_rescoring: bool,
        should_stop: Callable[[], bool] | None = None,
        budget_s: float | None = None,
    ) -> list[Suggestion]:
        """The model's own continuations of ``before``, best first. For rescoring, the search
        returns a candidate per beam (the dictionary may prefer any of them), and with
        ``adaptive`` the document's byte n-gram first learns the text typed since the last call.
        ``budget_s``: see ``Completer.complete``."""
        anchor = max(0, (len(before) - ANCHOR_CHARS) // ANCHOR_CHARS * ANCHOR_CHARS)
        search = options.search
        if for_rescoring:
            search = search.every_beam()
        if for_rescoring and options.adaptive:
            if self.adaptive is None:
                self.adaptive = AdaptiveModel()
            # Before the completer moves on: its logits are still those after the previous text.
            self.adaptive.observe(before.encode(), self.completer.next_logits)
        completions = self.completer.complete(
            before[anchor:], search, should_stop, budget_s, ahead=not self.warms_later
        )
        return [Suggestion(c.text, c.probability) for c in completions]

    def word_scorer(self, options: SuggestOptions) -> Callable[[list[str]], np.ndarray]:
        """How the model scores word candidates under ``options``."""
        return self.mixed_word_probabilities if options.adaptive else self.word_probabilities

    def word_probabilities(self, texts: list[str]) -> np.ndarray:
        """P(text, then a character that ends the word) after the last completed text, by the
        model: (N,), 0 for texts that do not fit in the context window."""

        def by_model(next_logits: np.ndarray, data: list[bytes]) -> np.ndarray:
            logp, after = self.model.decoder.score(self.completer.cache, next_logits, data)
            ends = np.exp(log_softmax(after.astype(np.float64)))[:, WORD_END_BYTES].sum(axis=1)
            return np.exp(logp) * ends

        return self._in_passes(texts, by_model)

    def mixed_word_probabilities(self, texts: list[str]) -> np.ndarray:
        """``word_probabilities`` by the GPT mixed with the document's adaptive byte n-gram."""
        adaptive = self.adaptive
        if adaptive is None:
            return np.zeros(len(texts))

        def mixed(next_logits: np.ndarray, data: list[bytes]) -> np.ndarray:
            along = self.model.decoder.logits_along(self.completer.cache, data)
            return adaptive.word_probabilities(next_logits, *along, WORD_END_BYTES)

        return self._in_passes(texts, mixed)

    def _in_passes(
        self, texts: list[str], score: Callable[[np.ndarray, list[bytes]], np.ndarray]
    ) -> np.ndarray:
        """``score(next_logits, texts)`` after the last completed text, for the texts that fit in
        the context window (0 for the others, and for all before any text)."""
        completer = self.completer
        next_logits = completer.next_logits
        probabilities = np.zeros(len(texts))
        if next_logits is None:
            return probabilities
        data = [t.encode() for t in texts]
        room = completer.config.ctx_len - completer.cache.length
        fits = [i for i, d in enumerate(data) if 0 < len(d) <= room]
        started = time.perf_counter()
        for group in (fits[i : i + SCORED_PER_PASS] for i in range(0, len(fits), SCORED_PER_PASS)):
            probabilities[group] = score(next_logits, [data[i] for i in group])
        self._pass_s = time.perf_counter() - started
        if fits:
            self._tree_s = SCORING_DECAY * self._tree_s + self._pass_s
            nodes = tree_size([texts[i] for i in fits])
            self._tree_nodes = SCORING_DECAY * self._tree_nodes + nodes
            self.node_s = self._tree_s / self._tree_nodes
        return probabilities


def repeats(suggestion: Suggestion, after: str) -> bool:
    """Whether the suggestion only retypes the text right after the cursor."""
    text = suggestion.text.strip()
    return bool(text) and after.lstrip().startswith(text)
