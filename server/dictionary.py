"""A personal dictionary: word and word-pair counts of the open documents, kept up to date edit by
edit, used to rescore the model's word candidates (the way a phone keyboard learns the names and
words you type). The model sees at most its context window; this sees every open document and
the text files of the workspace folders (``index_workspace``)."""

from __future__ import annotations

import heapq
import itertools
import os
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

from ghostwrite.model.files import open_regular
from ghostwrite.model.words import WORD, is_word_char, word_end, word_start
from ghostwrite.training import corpus, walk

FOLLOWERS_SCANNED = 256


def region(text: str, a: int, b: int) -> tuple[int, int]:
    """[a, b) widened to whole words plus one more word on each side (for the pairs)."""
    a = word_start(text, a)
    b = word_end(text, b)
    left = a
    while left > 0 and not is_word_char(text[left - 1]):
        left -= 1
    right = b
    while right < len(text) and not is_word_char(text[right]):
        right += 1
    return word_start(text, left), word_end(text, right)


class WordStats:
    """Unigram and bigram counts over some texts, updatable by edits. Thread-safe: the event
    loop updates it while the model thread reads it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.words: Counter[str] = Counter()
        self.followers: dict[str, Counter[str]] = {}  # word -> the words after it
        self.by_prefix: dict[str, Counter[str]] = {}  # first character -> words (fast lookup)
        self.total = 0  # occurrences of all words

    def _count(self, text: str, sign: int) -> None:
        # Counter() tallies in C; the Python loops then run once per distinct word or pair, not
        # per occurrence (opening a 10 MB document took 21 s counting one by one).
        words = WORD.findall(text)
        self.total += sign * len(words)
        for word, n in Counter(words).items():
            self._bump(self.words, word, sign * n)
            bucket = self.by_prefix.setdefault(word[0].lower(), Counter())
            self._bump(bucket, word, sign * n)
            if not bucket:
                del self.by_prefix[word[0].lower()]
        by_first: dict[str, dict[str, int]] = {}
        for (first, second), n in Counter(itertools.pairwise(words)).items():
            by_first.setdefault(first, {})[second] = sign * n
        for first, seconds in by_first.items():
            follow = self.followers.get(first)
            if follow is None:
                follow = self.followers[first] = Counter()
            follow.update(seconds)
            if sign < 0:
                for second in [w for w in seconds if follow[w] <= 0]:
                    del follow[second]
                if not follow:
                    del self.followers[first]

    def summary(self) -> dict[str, int]:
        """Distinct words and their occurrences, for ``ghostwrite.status``."""
        with self._lock:
            return {"words": len(self.words), "occurrences": self.total}

    def add(self, text: str) -> None:
        with self._lock:
            self._count(text, 1)

    def remove(self, text: str) -> None:
        with self._lock:
            self._count(text, -1)

    def merge(self, other: WordStats, sign: int = 1) -> None:
        """Add (or, with sign -1, take away) another instance's counts."""
        with self._lock:
            self.total += sign * other.total
            for word, n in other.words.items():
                self._bump(self.words, word, sign * n)
                bucket = self.by_prefix.setdefault(word[0].lower(), Counter())
                self._bump(bucket, word, sign * n)
                if not bucket:
                    del self.by_prefix[word[0].lower()]
            for first, follow in other.followers.items():
                mine = self.followers.setdefault(first, Counter())
                for second, n in follow.items():
                    self._bump(mine, second, sign * n)
                if not mine:
                    del self.followers[first]

    @staticmethod
    def _bump(counter: Counter[str], key: str, n: int) -> None:
        counter[key] += n
        if counter[key] <= 0:
            del counter[key]

    def replace(self, old_text: str, a: int, b: int, new: str, new_text: str) -> None:
        """Account for ``old_text[a:b]`` having become ``new`` (giving ``new_text``)."""
        start, end = region(old_text, a, b)
        delta = len(new) - (b - a)
        with self._lock:
            self._count(old_text[start:end], -1)
            self._count(new_text[start : end + delta], 1)

    def candidates(self, prefix: str, previous: str | None, limit: int) -> dict[str, float]:
        """The ``limit`` likeliest words that extend ``prefix``, or are ``prefix`` itself (the
        word ends here), with their ``distribution`` probabilities, best first."""
        with self._lock:
            distribution, extending = self._distribution(prefix, previous)
            follow = distribution.follow
            # Any other word's probability follows its count alone, so the likeliest are among
            # the words seen after the previous one and the most frequent others.
            if extending is None:
                # No prefix: only the most frequent of the former. After "the" a book has
                # thousands (15 ms per keystroke); the others keep their probability for the
                # model's own suggestions.
                listed = [w for w, _ in follow.most_common(FOLLOWERS_SCANNED)]
            else:
                listed = [w for w in extending if w in follow]
                listed += heapq.nlargest(limit, extending, key=self.words.__getitem__)
            scores = {w: distribution.probability(w) for w in listed}
        best = heapq.nlargest(limit, scores.items(), key=itemgetter(1))
        return {w: p for w, p in best if p > 0}

    def distribution(self, prefix: str, previous: str | None) -> WordDistribution:
        """P(word | previous word, typed prefix) by these counts, for any word."""
        with self._lock:
            return self._distribution(prefix, previous)[0]

    def _distribution(
        self, prefix: str, previous: str | None
    ) -> tuple[WordDistribution, list[str] | None]:
        """The distribution, and the words extending a non-empty ``prefix``."""
        followers = self.followers.get(previous, Counter()) if previous else Counter()
        if not prefix:
            counts = followers.values()
            distribution = WordDistribution(
                self.words, followers, prefix, self.total, sum(counts), len(counts)
            )
            return distribution, None
        # The words starting with the prefix are fewer than those after a common word.
        extending = [w for w in self.by_prefix.get(prefix[:1].lower(), ()) if w.startswith(prefix)]
        follow = [followers[w] for w in extending if w in followers]
        total = sum(self.words[w] for w in extending)
        distribution = WordDistribution(
            self.words, followers, prefix, total, sum(follow), len(follow)
        )
        return distribution, extending


@dataclass(frozen=True)
class WordDistribution:
    """P(word | previous word, typed prefix): the word-pair estimate interpolated with the
    single-word one (Witten-Bell: the pairs weigh more the more often the previous word was
    followed, and the fewer different words followed it), both over the words extending the
    prefix. Any word gets its share, not only the ones ``WordStats.candidates`` lists."""

    words: Mapping[str, int]
    follow: Counter[str]  # the words after the previous one
    prefix: str
    total: int  # occurrences of the words extending the prefix
    follow_total: int  # how often they followed the previous word
    follow_distinct: int  # how many different ones did

    def probability(self, word: str) -> float:
        if self.total <= 0 or not word.startswith(self.prefix):
            return 0.0
        single = self.words.get(word, 0) / self.total
        if not self.follow_total:
            return single
        weight = self.follow_total / (self.follow_total + self.follow_distinct)
        pair = self.follow.get(word, 0) / self.follow_total
        return weight * pair + (1 - weight) * single


@dataclass(frozen=True)
class WorkspaceLimits:
    """Bounds on what the workspace index reads, so a huge folder cannot stall the server."""

    max_files: int = 2000
    max_file_bytes: int = 2_000_000
    # ~10 MB of counts per MB of text, and ~4 s per MB to index on a busy 2-core machine.
    max_total_bytes: int = 8_000_000


@dataclass(frozen=True)
class WorkspaceIndex:
    stats: WordStats
    files: int
    bytes: int
    skipped: dict[str, int]


def index_workspace(
    folders: Sequence[str | Path], limits: WorkspaceLimits | None = None
) -> WorkspaceIndex:
    """Word counts of the text files under ``folders``, walked with training's rules (no VCS,
    virtual-env, build or hidden folders, no binary files) and never through a symlink that
    leads out of its folder."""
    limits = limits or WorkspaceLimits()
    stats = WordStats()
    skipped: Counter[str] = Counter()
    seen: set[Path] = set()
    indexed = total = 0
    for folder in folders:
        root = Path(os.path.realpath(folder))  # a loop stays unresolved: not a folder
        if not os.path.isdir(root):  # missing or unreadable: nothing to index
            continue
        for real, _ in walk.files_under(root, (), skipped):
            if real in seen:
                continue
            seen.add(real)
            if indexed >= limits.max_files:
                skipped["files past the limit"] += 1
                continue
            try:
                size = real.stat().st_size
                if size > limits.max_file_bytes or total + size > limits.max_total_bytes:
                    skipped["files past the size limits"] += 1
                    continue
                with open_regular(real) as handle:
                    raw = handle.read(limits.max_file_bytes + 1)
            except OSError:  # NotRegularFile too: replaced by a FIFO since the walk saw it
                skipped["unreadable files"] += 1
                continue
            if corpus.looks_binary(raw[: corpus.SNIFF_BYTES]):
                skipped["binary files"] += 1
                continue
            text = corpus.normalise(raw)[0]
            stats.add(text)
            indexed += 1
            total += len(raw)
    return WorkspaceIndex(stats, indexed, total, dict(skipped))
