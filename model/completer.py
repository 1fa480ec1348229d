"""Continuations of a text, reusing the work of previous calls.

One ``Completer`` per document. When the next request's text extends (or shares a prefix with)
the previous one, only the new characters go through the model. When the user typed the start
of the previous suggestion, its rest is still the answer: it is returned with its probability
renormalised, with no search at all (a decode step costs ~0.3 ms here; a keystroke that follows
the suggestion costs one step). Texts longer than the context slide a window every ``slack``
characters, never indexed past the end. The next window is prefilled ahead of time in a second
cache, a few tokens per call, so sliding costs about one step instead of a full prefill (a full
prefill would be the latency tail: one keystroke in ``slack`` paying ~70 positions at once).
``warm_ahead`` does that prefill; a server calls it after answering, between keystrokes, since
its few tokens cost about three times the typed character's own step.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from . import tokenizer
from .files import ModelFiles
from .inference import Decoder, log_softmax
from .search import Completion, SearchOptions, search


def common_prefix_length(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


def _reusable(start: int, window: np.ndarray, tokens: np.ndarray, limit: int) -> int:
    """How many cached positions of a window starting at ``start`` (holding ``window``) stay
    valid for ``tokens``, leaving at least one token to run (we need its logits); -1 if the
    window cannot hold the text."""
    n = len(tokens)
    if start < 0 or start > n or n - start > limit:
        return -1
    common = common_prefix_length(window, tokens[start:])
    if common == 0 and start > 0:
        return -1
    return min(common, n - start - 1)


class Completer:
    def __init__(self, model: ModelFiles | Decoder) -> None:
        self.decoder = model if isinstance(model, Decoder) else Decoder(model)
        self.cache = self.decoder.new_cache()
        self.window_start = 0
        self.window = np.empty(0, dtype=np.uint8)  # tokens in the cache
        # The next window, prefilled ahead: it starts ``slack`` tokens after the current one.
        self.shadow = self.decoder.new_cache()
        self.shadow_start = -1
        self.shadow_window = np.empty(0, dtype=np.uint8)
        self.tokens_computed = 0  # positions run through the model (for tests and benchmarks)
        self.searches = 0  # full searches run (the rest followed a previous suggestion)
        self._next_logits: np.ndarray | None = None  # after the last token in the cache
        # What ``warm_ahead`` prefills for: the last call's tokens, window start, limit, slack.
        self._ahead: tuple[np.ndarray, int, int, int] | None = None
        self._previous: tuple[np.ndarray, SearchOptions, list[Completion]] | None = None
        self.read_at = 0.0  # when the last call had read its text (``time.perf_counter()``)

    @property
    def config(self):
        return self.decoder.config

    @property
    def next_logits(self) -> np.ndarray | None:
        """Logits of the token after the text of the last call (None before any)."""
        return self._next_logits

    def prepare(self, tokens: np.ndarray, room: int) -> np.ndarray | None:
        """Make the cache hold the end of ``tokens`` with ``room`` positions free for the
        continuation. Returns logits (N, V) after each of the last N tokens the model had to run
        (N >= 1), or None for an empty text. Call ``warm_ahead`` before the next call to keep a
        sliding window from ever costing a full prefill."""
        n = len(tokens)
        if n == 0:
            return None
        ctx = self.config.ctx_len
        room = min(room, ctx // 2)
        limit = ctx - room
        slack = min(limit // 4, 64)
        start = self.window_start
        keep = _reusable(start, self.window[: self.cache.length], tokens, limit)
        if keep < 0:
            keep = _reusable(
                self.shadow_start, self.shadow_window[: self.shadow.length], tokens, limit
            )
            if keep > 0:
                start = self.shadow_start
                self.cache, self.shadow = self.shadow, self.cache
                self.shadow_start = -1
            else:
                start = max(0, n - (limit - slack))
                keep = 0
        self.cache.truncate(keep)
        new = tokens[start + keep :].astype(np.int64)
        logits = self.decoder.forward(self.cache, new, all_logits=True)
        self.tokens_computed += len(new)
        self.window_start = start
        self.window = tokens[start:].copy()
        self._next_logits = logits[-1]
        self._ahead = (tokens, start, limit, slack)
        return logits

    def warm_ahead(self) -> None:
        """Prefill a few tokens of the window after the last call's (``slack`` after it), from
        when that one is ``limit - slack`` full: enough that it is ready when that one is full.
        Once per call; the search's caches are separate, so any time before the next call."""
        if self._ahead is None:
            return
        tokens, window_start, limit, slack = self._ahead
        self._ahead = None
        if len(tokens) - window_start <= limit - slack:
            return  # short texts never pay for it
        start = window_start + slack
        if self.shadow_start != start:
            self.shadow_start = start
            self.shadow.truncate(0)
        common = common_prefix_length(self.shadow_window[: self.shadow.length], tokens[start:])
        self.shadow.truncate(common)
        per_call = -(-(limit - slack) // slack) + 1
        new = tokens[start + common : start + common + per_call].astype(np.int64)
        if len(new):
            self.decoder.forward(self.shadow, new)
            self.tokens_computed += len(new)
        self.shadow_window = tokens[start : start + self.shadow.length].copy()

    def complete(
        self,
        text: str,
        options: SearchOptions | None = None,
        should_stop: Callable[[], bool] | None = None,
        budget_s: float | None = None,
        ahead: bool = True,
    ) -> list[Completion]:
        """Continuations of ``text``, best first. ``budget_s``: seconds from reading the text
        (``read_at``) to the search's deadline (see ``search``; None: none). Reading new text
        is outside it: a prefill (a newly opened document, a jump) must not cut the search
        short. ``ahead``: then ``warm_ahead`` (False: the caller will, after answering)."""
        options = options or SearchOptions()
        tokens = tokenizer.encode(text)
        logits_before = self._next_logits
        logits = self.prepare(tokens, room=options.max_chars)
        self.read_at = time.perf_counter()
        if logits is None:
            return []
        deadline = None if budget_s is None else self.read_at + budget_s
        results = self._follow_previous(tokens, options, logits_before, logits)
        if results is None:
            self.searches += 1
            results = search(self.decoder, self.cache, logits[-1], options, should_stop, deadline)
        self._previous = (tokens, options, results)
        if ahead:
            self.warm_ahead()
        return results

    def _follow_previous(
        self,
        tokens: np.ndarray,
        options: SearchOptions,
        logits_before: np.ndarray | None,
        logits: np.ndarray,
    ) -> list[Completion] | None:
        """The previous suggestions minus what the user typed since, if they typed along them.

        P(rest | text + typed) = P(suggestion | text) / P(typed | text), exactly: the model
        just ran the typed characters, so their probabilities are at hand."""
        if self._previous is None or logits_before is None:
            return None
        old_tokens, old_options, old_results = self._previous
        typed = tokens[len(old_tokens) :]
        if (
            old_options != options
            or not 0 < len(typed) <= len(logits)
            or not np.array_equal(tokens[: len(old_tokens)], old_tokens)
        ):
            return None
        before_each = [logits_before, *logits[len(logits) - len(typed) : -1]]
        typed_logp = sum(float(log_softmax(d)[t]) for d, t in zip(before_each, typed, strict=True))
        typed_bytes = typed.tobytes()
        followed = []
        for completion in old_results:
            data = completion.text.encode()
            if data.startswith(typed_bytes) and len(data) > len(typed_bytes):
                probability = min(1.0, completion.probability / np.exp(typed_logp))
                followed.append(Completion(tokenizer.decode(data[len(typed_bytes) :]), probability))
        return followed or None
