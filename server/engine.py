"""The server's suggestion state and the one thread that runs the model: the loaded model, the
dictionary (open documents and the workspace index), a ``Suggester`` per document, and the jobs
that a newer request, a newer document version or $/cancelRequest stops, so the event loop never
waits on the model."""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from .calibration import OnlineCalibration
from .dictionary import WordStats, WorkspaceIndex, index_workspace
from .loaded_model import LoadedModel
from .ranking import Suggestion, WordScoring
from .suggester import Suggester, SuggestOptions

# Model caches (one context window of keys and values each, plus the last suggestion) are kept
# for this many documents, the most recently completed in.
CACHED_DOCUMENTS = 8


@dataclass
class Job:
    """One request's work: cancelled by $/cancelRequest, a newer request or a newer version."""

    uri: str
    version: int
    current_version: Callable[[], int | None]
    cancelled: threading.Event = field(default_factory=threading.Event)

    def should_stop(self) -> bool:
        return self.cancelled.is_set() or self.current_version() != self.version


def fresh_calibration() -> OnlineCalibration | None:
    """The calibration a writer's word suggestions start from (None: the fixed one, or none)."""
    scoring = WordScoring()
    if scoring.calibration is None or not scoring.learns_calibration:
        return None
    return OnlineCalibration(scoring.calibration)


class Engine:
    """The loaded model, a ``Suggester`` per document and the one thread that runs the model."""

    def __init__(self) -> None:
        self.model: LoadedModel | None = None
        self.stats = WordStats()
        # Most recently used last; touched only by the worker thread.
        self._suggesters: OrderedDict[str, Suggester] = OrderedDict()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="ghostwrite-model")
        self._jobs: list[Job] = []
        self._answered: str | None = None  # the document answered last, until it is warmed
        self.workspace: WorkspaceIndex | None = None
        self._indexing = threading.Lock()
        self.calibration = fresh_calibration()

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
        """Switch models atomically: running jobs finish on the old one, new jobs use this
        (and a calibration of its own, which starts again from the fitted one)."""
        self.model = model
        self.calibration = fresh_calibration()

    def supersede(self, job: Job) -> None:
        """Make ``job`` the current request: older ones, waiting or running, stop (one cursor)."""
        for old in self._jobs:
            if old is not job:
                old.cancelled.set()
        self._jobs = [job]

    def submit(
        self, job: Job, before: str, after: str, options: SuggestOptions
    ) -> Future[list[Suggestion]]:
        self.supersede(job)
        return self._worker.submit(self._run, job, before, after, options)

    def answer_sent(self) -> None:
        """Call once an answer is on its way to the client: the worker then prefills the next
        window of the document it was for, before the next keystroke. Queued behind the answer
        itself, that work would hold the interpreter while the answer is sent."""
        if self._answered is not None:
            self._worker.submit(self._warm_ahead)

    def _run(self, job: Job, before: str, after: str, options: SuggestOptions) -> list[Suggestion]:
        model = self.model
        if model is None or job.should_stop():
            return []
        suggester = self._suggesters.pop(job.uri, None)
        if suggester is None or suggester.model is not model:
            suggester = Suggester(model, calibration=self.calibration, warms_later=True)
        self._suggesters[job.uri] = suggester
        while len(self._suggesters) > CACHED_DOCUMENTS:
            self._suggesters.popitem(last=False)  # its next request re-reads its context
        answer = suggester.suggest(before, after, options, self.stats, job.should_stop)
        self._answered = job.uri
        return answer

    def _warm_ahead(self) -> None:
        uri, self._answered = self._answered, None
        suggester = self._suggesters.get(uri) if uri is not None else None
        if suggester is not None:
            suggester.completer.warm_ahead()

    @property
    def cached_documents(self) -> int:
        return len(self._suggesters)

    def forget(self, uri: str) -> None:
        self._worker.submit(self._suggesters.pop, uri, None)

    def forget_all(self) -> None:
        """Drop every document's cache and the dictionary: the next client starts afresh."""
        self.stats = WordStats()
        self.workspace = None
        self.calibration = fresh_calibration()
        self._worker.submit(self._suggesters.clear)

    def cancel_all(self) -> None:
        for job in self._jobs:
            job.cancelled.set()

    def close(self) -> None:
        self.cancel_all()
        self._worker.shutdown(wait=False, cancel_futures=True)
