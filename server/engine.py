"""Suggestions for a cursor in a document: the model's beam search, rescored with the personal
dictionary, filtered so the editor only shows confident text that is not already there.

``Suggester`` is the whole per-document pipeline (the language server and bench/keystrokes.py
share it); ``Engine`` owns the model, one ``Suggester`` per document, and the single worker
thread that runs them so the event loop never waits on the model.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ghostwrite.model import files
from ghostwrite.model.adaptive import AdaptiveModel
from ghostwrite.model.completer import Completer
from ghostwrite.model.inference import Decoder, log_softmax
from ghostwrite.model.search import is_word_byte

from .dictionary import WordStats, WorkspaceIndex, index_workspace
from .options import ServerOptions
from .ranking import CALIBRATION, Calibration, product, word_candidates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WordScoring:
    """How word suggestions are rescored with the dictionary (bench/keystrokes.py measures it)."""

    dictionary_candidates: int = 16
    # The least the dictionary gives a text: the model's own words can be names it never saw.
    unseen_word: float = 1e-3
    # Rank by expected keystrokes saved (probability x characters inserted) instead of by
    # probability: on two spans of The Time Machine it saved 25.3% and 26.2% of keystrokes,
    # against 25.1% and 25.1% by probability (bench/keystrokes.py, confidence 0.05).
    by_savings: bool = True
    # What a word suggestion's probability means (None: the renormalised product itself).
    calibration: Calibration | None = CALIBRATION


# Bytes after which a word is over (the word stop rule's boundary).
WORD_END_BYTES = np.array([not is_word_byte(b) and b != ord("'") for b in range(256)])

# Candidate words scored by the model in one batched pass (padded to the longest of them).
SCORED_PER_PASS = 8

# Text given to the model starts at a multiple of this many characters, so the start only moves
# now and then: each move re-prefills the window at once (a latency spike), while a longer text
# only costs a cheap encode and compare per keystroke.
ANCHOR_CHARS = 1 << 16

# Model caches (one context window of keys and values each, plus the last suggestion) are kept
# for this many documents, the most recently completed in.
CACHED_DOCUMENTS = 8

Signature = tuple[tuple[int, int, int], ...]


def model_signature(directory: Path) -> Signature | None:
    """What changes when a model directory's files are replaced (None: no model there)."""
    try:
        stats = [(directory / name).stat() for name in (files.META_FILE, files.WEIGHTS_FILE)]
    except OSError:
        return None
    return tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in stats)


@dataclass(frozen=True)
class LoadedModel:
    files: files.ModelFiles
    decoder: Decoder
    path: Path
    signature: Signature | None

    @classmethod
    def load(cls, directory: Path) -> LoadedModel:
        signature = model_signature(directory)
        model_files = files.load_model(directory)
        return cls(model_files, Decoder(model_files), directory, signature)

    def summary(self) -> dict[str, Any]:
        return {**self.files.card, "path": str(self.path), "config": self.files.config.to_dict()}


@dataclass(frozen=True)
class Suggestion:
    text: str
    probability: float


def is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class Suggester:
    """Suggestions for one document, reusing the model's cache from keystroke to keystroke."""

    def __init__(self, model: LoadedModel, scoring: WordScoring | None = None) -> None:
        self.model = model
        self.scoring = scoring or WordScoring()
        # The completer reuses its cache, and its last suggestion when the user types along it.
        self.completer = Completer(model.decoder)
        self.adaptive: AdaptiveModel | None = None  # made on the first request that asks for it

    def suggest(
        self,
        before: str,
        after: str,
        options: ServerOptions,
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
        ][: options.candidates]

    def candidates(
        self,
        before: str,
        options: ServerOptions,
        stats: WordStats | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Suggestion]:
        """Every continuation considered, best first, before filtering and cutting to the
        number of candidates wanted."""
        anchor = max(0, (len(before) - ANCHOR_CHARS) // ANCHOR_CHARS * ANCHOR_CHARS)
        rescore = stats is not None and options.dictionary and options.stop == "word"
        search = options.search_options()
        if rescore:
            wanted = max(search.candidates, search.beam_width)
            search = dataclasses.replace(search, candidates=wanted)
        mixing = rescore and options.adaptive
        if mixing:
            if self.adaptive is None:
                self.adaptive = AdaptiveModel()
            # Before the completer moves on: its logits are still those after the previous text.
            self.adaptive.observe(before.encode(), self.completer.next_logits)
        completions = self.completer.complete(before[anchor:], search, should_stop)
        found = [Suggestion(c.text, c.probability) for c in completions]
        if rescore and stats is not None:
            scorer = self.mixed_word_probabilities if mixing else self.word_probabilities
            found = rescore_with_dictionary(before, found, stats, self.scoring, scorer)
        return found

    def word_probabilities(self, texts: list[str]) -> np.ndarray:
        """P(text, then a character that ends the word) after the last completed text, by the
        model: (N,), 0 for texts that do not fit in the context window."""
        completer = self.completer
        next_logits = completer.next_logits
        probabilities = np.zeros(len(texts))
        if next_logits is None:
            return probabilities
        data = [t.encode() for t in texts]
        room = completer.config.ctx_len - completer.cache.length
        fits = sorted(
            (i for i, d in enumerate(data) if 0 < len(d) <= room), key=lambda i: len(data[i])
        )
        # Shortest first, a few per pass: each pass pads its texts to its longest.
        for group in (fits[i : i + SCORED_PER_PASS] for i in range(0, len(fits), SCORED_PER_PASS)):
            logp, after = self.model.decoder.score(
                completer.cache, next_logits, [data[i] for i in group]
            )
            ends = np.exp(log_softmax(after.astype(np.float64)))[:, WORD_END_BYTES].sum(axis=1)
            probabilities[group] = np.exp(logp) * ends
        return probabilities

    def mixed_word_probabilities(self, texts: list[str]) -> np.ndarray:
        """``word_probabilities`` by the GPT mixed with the document's adaptive byte n-gram."""
        completer, adaptive = self.completer, self.adaptive
        next_logits = completer.next_logits
        probabilities = np.zeros(len(texts))
        if next_logits is None or adaptive is None:
            return probabilities
        data = [t.encode() for t in texts]
        room = completer.config.ctx_len - completer.cache.length
        fits = sorted(
            (i for i, d in enumerate(data) if 0 < len(d) <= room), key=lambda i: len(data[i])
        )
        for group in (fits[i : i + SCORED_PER_PASS] for i in range(0, len(fits), SCORED_PER_PASS)):
            along = self.model.decoder.logits_along(completer.cache, [data[i] for i in group])
            probabilities[group] = adaptive.word_probabilities(next_logits, *along, WORD_END_BYTES)
        return probabilities


def repeats(suggestion: Suggestion, after: str) -> bool:
    """Whether the suggestion only retypes the text right after the cursor."""
    text = suggestion.text.strip()
    return bool(text) and after.lstrip().startswith(text)


def rescore_with_dictionary(
    before: str,
    found: list[Suggestion],
    stats: WordStats,
    scoring: WordScoring,
    word_probabilities: Callable[[list[str]], np.ndarray],
) -> list[Suggestion]:
    """Rescore the model's words and the dictionary's (a cache language model) by the product of
    the two: P_model(text) * P_dictionary(word | previous word, typed prefix). The model judges
    the context, the dictionary which words this writer uses; their product favours words both
    expect. The model scores every candidate exactly (``word_probabilities``). The products are
    renormalised to the model's total for the candidates, then calibrated (``scoring``) into how
    often such a suggestion was the next word on held-out text, which the confidence threshold
    applies to."""
    candidates = word_candidates(
        before, [s.text for s in found], stats, word_probabilities, scoring.dictionary_candidates
    )
    model = candidates.model
    if not candidates.texts:
        return []
    if model.sum() <= 0:
        return found  # nothing fits in the model's window
    both = product(model, candidates.dictionary, scoring.unseen_word)
    shown = both if scoring.calibration is None else scoring.calibration(both)
    # Ranked by the product, whose order the calibration keeps.
    saved = np.array([len(t) - 1 for t in candidates.texts]) if scoring.by_savings else 1
    order = np.argsort(-(both * saved), kind="stable")
    return [Suggestion(candidates.texts[i], float(shown[i])) for i in order]


@dataclass
class Job:
    """One request's work: cancelled by $/cancelRequest, a newer request or a newer version."""

    uri: str
    version: int
    current_version: Callable[[], int | None]
    cancelled: threading.Event = field(default_factory=threading.Event)

    def should_stop(self) -> bool:
        return self.cancelled.is_set() or self.current_version() != self.version


class Engine:
    """The loaded model, a ``Suggester`` per document and the one thread that runs the model."""

    def __init__(self) -> None:
        self.model: LoadedModel | None = None
        self.stats = WordStats()
        # Most recently used last; touched only by the worker thread.
        self._suggesters: OrderedDict[str, Suggester] = OrderedDict()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="ghostwrite-model")
        self._jobs: list[Job] = []
        self.workspace: WorkspaceIndex | None = None
        self._indexing = threading.Lock()

    def index_workspace(self, folders: list[str]) -> WorkspaceIndex:
        """Replace the workspace's words in the dictionary with a fresh index of ``folders``
        (slow: call it off the event loop)."""
        with self._indexing:
            index = index_workspace(folders)
            if self.workspace is not None:
                self.stats.merge(self.workspace.stats, -1)
            self.stats.merge(index.stats)
            self.workspace = index
            # Hundreds of thousands of long-lived counters: keep the collector from walking
            # them in every full collection (a pause in some keystroke's answer).
            gc.freeze()
            return index

    def set_model(self, model: LoadedModel | None) -> None:
        """Switch models atomically: running jobs finish on the old one, new jobs use this."""
        self.model = model

    def supersede(self, job: Job) -> None:
        """Make ``job`` the current request: older ones, waiting or running, stop (one cursor)."""
        for old in self._jobs:
            if old is not job:
                old.cancelled.set()
        self._jobs = [job]

    def submit(
        self, job: Job, before: str, after: str, options: ServerOptions
    ) -> Future[list[Suggestion]]:
        self.supersede(job)
        return self._worker.submit(self._run, job, before, after, options)

    def _run(self, job: Job, before: str, after: str, options: ServerOptions) -> list[Suggestion]:
        model = self.model
        if model is None or job.should_stop():
            return []
        suggester = self._suggesters.pop(job.uri, None)
        if suggester is None or suggester.model is not model:
            suggester = Suggester(model)
        self._suggesters[job.uri] = suggester
        while len(self._suggesters) > CACHED_DOCUMENTS:
            self._suggesters.popitem(last=False)  # its next request re-reads its context
        return suggester.suggest(before, after, options, self.stats, job.should_stop)

    @property
    def cached_documents(self) -> int:
        return len(self._suggesters)

    def forget(self, uri: str) -> None:
        self._worker.submit(self._suggesters.pop, uri, None)

    def forget_all(self) -> None:
        """Drop every document's cache and the dictionary: the next client starts afresh."""
        self.stats = WordStats()
        self.workspace = None
        self._worker.submit(self._suggesters.clear)

    def cancel_all(self) -> None:
        for job in self._jobs:
            job.cancelled.set()

    def close(self) -> None:
        self.cancel_all()
        self._worker.shutdown(wait=False, cancel_futures=True)
