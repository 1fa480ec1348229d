"""``ghostwrite eval``: how well a model predicts held-out text.

Bits per character: the model's cross-entropy over the text (each position sees up to a full
context: windows overlap by half and each position is scored once), per character.

Top-1 next-word accuracy: a word counts as predicted when greedy decoding from the text before
it would write exactly that word and then end it. Greedy decoding feeds back its own argmax, so
that is the same as: the argmax is right at every byte of the word, and at the byte after it
the argmax is not a word byte. One forward pass over the text gives both. The words scored are
the runs of word bytes (``model.words``): the figure counts "don't" as the two words either side
of its apostrophe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ghostwrite.model import tokenizer
from ghostwrite.model.files import ModelFiles
from ghostwrite.model.gpt import GPT, load_weights
from ghostwrite.model.words import WORD_BYTES


def bits_per_char(nats: float, chars: int) -> float:
    """A text's total loss in nats as bits per character (NaN for no characters)."""
    return nats / chars / math.log(2) if chars else math.nan


@dataclass
class EvalResult:
    chars: int = 0  # characters predicted (the first one of a text has no context)
    nats: float = 0.0
    words: int = 0
    words_correct: int = 0

    @property
    def bits_per_char(self) -> float:
        return bits_per_char(self.nats, self.chars)

    @property
    def word_accuracy(self) -> float:
        return self.words_correct / self.words if self.words else math.nan

    def __add__(self, other: EvalResult) -> EvalResult:
        return EvalResult(
            self.chars + other.chars,
            self.nats + other.nats,
            self.words + other.words,
            self.words_correct + other.words_correct,
        )


def load_mlx_model(model_files: ModelFiles) -> GPT:
    model = GPT(model_files.config)
    load_weights(model, model_files.weights)
    model.eval()
    return model


def scoring_windows(n: int, ctx_len: int) -> tuple[int, list[tuple[int, int]]]:
    """Windows over a text of ``n`` tokens that score every target position 1..n-1 once, each
    from as much context as they can: windows of ``length`` inputs overlap by half. Returns
    ``length`` and, per window, its start and the first of its columns to score."""
    length = min(ctx_len, n - 1)
    stride = max(1, length // 2)
    starts = list(range(0, n - length, stride))
    if starts[-1] != n - 1 - length:
        starts.append(n - 1 - length)
    windows, scored_until = [], 0  # targets 1..scored_until are covered
    for start in starts:
        first = max(scored_until + 1, start + 1)  # target index of the first new position
        windows.append((start, first - start - 1))
        scored_until = start + length
    return length, windows


def predictions(model: GPT, tokens: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Per position t >= 1: the loss (nats) of tokens[t] and the argmax byte, each from a
    context of up to ``ctx_len`` tokens before t."""
    n = len(tokens)
    length, windows = scoring_windows(n, model.cfg.ctx_len)
    nll = np.zeros(n, dtype=np.float64)
    best = np.zeros(n, dtype=np.int64)
    data = tokens.astype(np.int32)

    @partial(mx.compile, inputs=[model.state])
    def forward(x: mx.array, y: mx.array) -> tuple[mx.array, mx.array]:
        logits = model(x)
        return nn.losses.cross_entropy(logits, y, reduction="none"), mx.argmax(logits, axis=-1)

    for i in range(0, len(windows), batch):
        chunk = windows[i : i + batch]
        idx = np.array([start for start, _ in chunk])[:, None] + np.arange(length + 1)
        x, y = mx.array(data[idx[:, :-1]]), mx.array(data[idx[:, 1:]])
        losses, argmax = forward(x, y)
        mx.eval(losses, argmax)
        losses_np, argmax_np = np.array(losses), np.array(argmax)
        for row, (start, first_col) in enumerate(chunk):
            targets = slice(start + 1 + first_col, start + length + 1)
            nll[targets] = losses_np[row, first_col:]
            best[targets] = argmax_np[row, first_col:]
    return nll, best


def evaluate_tokens(model: GPT, tokens: np.ndarray) -> EvalResult:
    if len(tokens) < 2:
        return EvalResult()
    nll, best = predictions(model, tokens)
    result = EvalResult(chars=tokenizer.count_chars(tokens[1:]), nats=float(nll[1:].sum()))
    word = WORD_BYTES[tokens]
    starts = np.flatnonzero(word & ~np.concatenate([[False], word[:-1]]))
    ends = np.flatnonzero(word & ~np.concatenate([word[1:], [False]])) + 1
    right = best == tokens
    for start, end in zip(starts, ends, strict=True):
        if start == 0 or end >= len(tokens):
            continue  # no context before it, or nothing after it to end the word
        result.words += 1
        if right[start:end].all() and not WORD_BYTES[best[end]]:
            result.words_correct += 1
    return result
