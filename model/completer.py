"""Continuations of a text, reusing the KV cache across calls.

One ``Completer`` per document: when the next request's text extends (or shares a prefix with)
the previous one, only the new characters go through the model. Texts longer than the context
slide a window; it is re-prefilled only every ``slack`` characters, never indexed past the end.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import tokenizer
from .files import ModelFiles
from .inference import Decoder
from .search import Completion, SearchOptions, search


def common_prefix_length(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


class Completer:
    def __init__(self, model: ModelFiles | Decoder) -> None:
        self.decoder = model if isinstance(model, Decoder) else Decoder(model)
        self.cache = self.decoder.new_cache()
        self.window_start = 0
        self.window = np.empty(0, dtype=np.uint8)  # tokens in the cache
        self.tokens_computed = 0  # positions run through the model (for tests and benchmarks)

    @property
    def config(self):
        return self.decoder.config

    def prepare(self, tokens: np.ndarray, room: int) -> np.ndarray | None:
        """Make the cache hold the end of ``tokens`` with ``room`` positions free for the
        continuation; return the next-token logits (None for an empty text)."""
        n = len(tokens)
        if n == 0:
            return None
        ctx = self.config.ctx_len
        room = min(room, ctx // 2)
        limit = ctx - room
        start = self.window_start
        keep = -1
        if start <= n and n - start <= limit:
            common = common_prefix_length(self.window[: self.cache.length], tokens[start:])
            if common > 0 or start == 0:
                keep = min(common, n - start - 1)  # always run >= 1 token: we need its logits
        if keep < 0:
            slack = min(limit // 4, 64)
            start = max(0, n - (limit - slack))
            keep = 0
        self.cache.truncate(keep)
        new = tokens[start + keep :].astype(np.int64)
        logits = self.decoder.forward(self.cache, new)
        self.tokens_computed += len(new)
        self.window_start = start
        self.window = tokens[start:].copy()
        return logits

    def complete(
        self,
        text: str,
        options: SearchOptions | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Completion]:
        options = options or SearchOptions()
        logits = self.prepare(tokenizer.encode(text), room=options.max_chars)
        if logits is None:
            return []
        return search(self.decoder, self.cache, logits, options, should_stop)
