"""Sampling and search over the decoder: samplers in mlx-lm's ``make_sampler`` style, and a beam
search that returns the most likely continuations up to a stop rule, with their probabilities."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from . import tokenizer
from .inference import BeamCache, Decoder, KVCache, log_softmax
from .words import ends_word, is_word_byte

STOP_RULES = ("word", "phrase", "line", "none")
PHRASE_END = frozenset(b".,;:!?")
NEWLINE = ord("\n")
# A word suggestion's search goes at most this many bytes (the word and what comes before it).
# Beams past it are runs of spaces, blank lines or rules that make the latency tail; among the
# 59,899 beam candidates of bench/keystrokes.py's 21,000 keystrokes, none longer than 12 bytes
# was right unless the dictionary, which offers its words whole, also knew the word.
WORD_MAX_BYTES = 16


@dataclass(frozen=True)
class SearchOptions:
    """How a continuation is chosen. The defaults are the product's defaults (CLI and server)."""

    max_chars: int = 32
    stop: str = "word"
    candidates: int = 1
    beam_width: int = 4
    temperature: float = 0.0  # 0 = deterministic beam search
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    # Past this many seconds of searching, a multi-word suggestion that has narrowed to one beam
    # ends at its last whole word, and a word search that has finished a word goes on only with
    # the beams that could still beat it (None: no limit). Bounds the latency tail on a slow or
    # busy machine.
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        if self.stop not in STOP_RULES:
            raise ValueError(f"stop must be one of {', '.join(STOP_RULES)}; got {self.stop!r}")
        if self.max_chars < 1:
            raise ValueError("max_chars must be at least 1")
        if self.candidates < 1 or self.beam_width < 1:
            raise ValueError("candidates and beam_width must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError("need temperature >= 0, 0 < top_p <= 1, top_k >= 0")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError("time_budget_s must be positive")

    @property
    def beams(self) -> int:
        """Beams a deterministic search keeps: ``beam_width``, and at least one per candidate."""
        return max(self.beam_width, self.candidates)

    def every_beam(self) -> SearchOptions:
        """The same search returning a candidate per beam (for a reranker to choose among)."""
        return replace(self, candidates=self.beams)


@dataclass(frozen=True)
class Completion:
    text: str
    probability: float  # model probability of this continuation (including its stop boundary)


def make_sampler(
    temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, seed: int | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """Logits (B, V) -> token ids (B,). Temperature 0 is greedy (argmax)."""
    rng = np.random.default_rng(seed)

    def sample(logits: np.ndarray) -> np.ndarray:
        logits = np.atleast_2d(logits).astype(np.float64)
        if temperature == 0:
            return logits.argmax(axis=-1)
        logits = logits / temperature
        if top_k:
            kth = np.sort(logits, axis=-1)[:, -min(top_k, logits.shape[-1]), None]
            logits = np.where(logits < kth, -np.inf, logits)
        probs = np.exp(log_softmax(logits))
        if top_p < 1.0:
            order = np.argsort(-probs, axis=-1)
            sorted_probs = np.take_along_axis(probs, order, axis=-1)
            # keep the smallest set whose mass reaches top_p (always at least the top token)
            drop_sorted = np.cumsum(sorted_probs, axis=-1) - sorted_probs >= top_p
            drop = np.zeros_like(drop_sorted)
            np.put_along_axis(drop, order, drop_sorted, axis=-1)
            probs = np.where(drop, 0.0, probs)
            probs /= probs.sum(axis=-1, keepdims=True)
        return np.array([rng.choice(len(p), p=p) for p in probs])

    return sample


@dataclass
class _Beam:
    data: bytes
    logp: float
    pending: int  # UTF-8 continuation bytes still owed
    has_word: bool


def _finish(beam: _Beam, token: int, stop: str) -> bytes | None:
    """If appending ``token`` ends the suggestion under ``stop``, the suggestion's bytes."""
    if beam.pending or stop == "none":
        return None
    if stop == "word":
        if beam.has_word and ends_word(token):
            return beam.data
        return None
    if stop == "phrase":
        if beam.has_word and token in PHRASE_END:
            return beam.data + bytes([token])
        if beam.has_word and token == NEWLINE:
            return beam.data
        return None
    if token == NEWLINE and beam.data.strip():
        return beam.data
    return None


def _first_word_done(beam: _Beam) -> bool:
    last = beam.data[-1]
    return beam.has_word and not beam.pending and ends_word(last)


def _whole_words(beam: _Beam) -> bytes:
    """The beam's text up to the end of its last whole word (no broken UTF-8 sequence)."""
    data = beam.data[: tokenizer.complete_prefix_length(beam.data)]
    if beam.pending == 0 and data and not is_word_byte(data[-1]):
        return data.rstrip()
    cut = max((i for i, b in enumerate(data) if ends_word(b)), default=0)
    return data[:cut].rstrip()


def search(
    decoder: Decoder,
    prefix: KVCache,
    logits: np.ndarray,
    options: SearchOptions,
    should_stop: Callable[[], bool] | None = None,
    deadline: float | None = None,
) -> list[Completion]:
    """Continuations of the text in ``prefix`` (whose next-token ``logits`` are given), best first.

    Deterministic beam search when temperature is 0, otherwise ``candidates`` sampled sequences.
    A suggestion ends where the stop rule says or at ``max_chars`` bytes (trimmed to whole
    characters); it never contains a broken UTF-8 sequence. ``should_stop`` is polled between
    decoding steps (cancellation); a stopped search returns what it has finished so far.

    A single multi-word suggestion (phrase or line stop, one candidate) keeps its beams only
    until the best has finished its first word, then extends that beam greedily: the beams
    choose the word a user accepts first, and one beam costs a third of four for the rest of a
    32-character line (the latency tail of bench/server_latency.py). With a time budget, that
    greedy part stops when the budget is spent (when another step like the last would end
    past it) and the suggestion ends at its last whole word;
    a word search that has finished a word then goes on only with the beams that could still
    beat it, and returns as soon as none can.
    ``deadline`` (a ``time.perf_counter()`` time) is when the caller needs the answer. A word
    search returns the words it has finished once another step like its last would end past
    it (none, if it has finished none: the caller has other candidates to score in the time
    left); any other search hurries as when its budget is spent."""
    longest = (
        min(options.max_chars, WORD_MAX_BYTES) if options.stop == "word" else options.max_chars
    )
    steps = min(longest, decoder.config.ctx_len - prefix.length)
    if steps <= 0 or prefix.length == 0:
        return []
    sampling = options.temperature > 0
    width = options.candidates if sampling else options.beams
    sampler = make_sampler(options.temperature, options.top_k, options.top_p, options.seed)
    cache = BeamCache(decoder.config, width, steps)
    beams = [_Beam(b"", 0.0, 0, False)]
    finished: dict[bytes, float] = {}
    narrow = not sampling and options.stop in ("phrase", "line") and options.candidates == 1
    live = width  # beams kept per step: 1 once narrowed
    hurry = deadline
    if options.time_budget_s is not None:
        own = time.perf_counter() + options.time_budget_s
        hurry = own if deadline is None else min(own, deadline)
    checked = time.perf_counter()
    step_logits = logits[None, :]
    for step in range(steps):
        logprobs = log_softmax(step_logits.astype(np.float64))  # (B, V)
        for row, beam in enumerate(beams):
            logprobs[row, ~tokenizer.allowed_next(beam.pending)] = -np.inf
        last_step = step == steps - 1
        if sampling:
            choices = [(row, int(t)) for row, t in enumerate(sampler(logprobs))]
        else:
            total = np.array([b.logp for b in beams])[:, None] + logprobs
            flat = np.argsort(-total, axis=None)[: 2 * width + options.candidates]
            choices = [divmod(int(i), total.shape[1]) for i in flat]
        survivors: list[_Beam] = []
        parents: list[int] = []
        for row, token in choices:
            beam = beams[row]
            score = beam.logp + float(logprobs[row, token])
            if not np.isfinite(score):
                continue
            done = _finish(beam, token, options.stop)
            if done is not None:
                if done and score > finished.get(done, -np.inf):
                    finished[done] = score
                continue
            data = beam.data + bytes([token])
            survivor = _Beam(
                data,
                score,
                tokenizer.next_pending(beam.pending, token),
                beam.has_word or is_word_byte(token),
            )
            if last_step:
                text = data[: tokenizer.complete_prefix_length(data)]
                if text.strip() and score > finished.get(text, -np.inf):
                    finished[text] = score
            elif len(survivors) < live:
                survivors.append(survivor)
                parents.append(row)
        if narrow and survivors and _first_word_done(survivors[0]):
            narrow, live = False, 1
            survivors, parents = survivors[:1], parents[:1]
        if last_step or not survivors or (should_stop is not None and should_stop()):
            break
        now = time.perf_counter()
        # When another step like this one would end: a limit is reached before it passes.
        next_end, checked = 2 * now - checked, now
        if options.stop == "word" and deadline is not None and next_end > deadline:
            break  # due: the words finished so far
        if hurry is not None and next_end > hurry:
            if options.stop == "word" and finished:
                # Only the beams that could still beat the best word found go on.
                best_word = max(finished.values())
                rivals = [i for i, b in enumerate(survivors) if b.logp > best_word]
                if not rivals:
                    break
                survivors, parents = [survivors[i] for i in rivals], [parents[i] for i in rivals]
            elif live == 1:
                words = _whole_words(survivors[0])
                if words.strip():
                    finished[words] = max(finished.get(words, -np.inf), survivors[0].logp)
                break
        if not sampling and len(finished) >= options.candidates:
            kth_best = sorted(finished.values(), reverse=True)[options.candidates - 1]
            if max(b.logp for b in survivors) < kth_best:
                break  # log-probabilities only fall: no live beam can overtake
        cache.reorder(np.array(parents))
        beams = survivors
        tokens = np.array([b.data[-1] for b in beams], dtype=np.int64)
        step_logits = decoder.step_beams(prefix, cache, tokens)
    best = sorted(finished.items(), key=lambda item: -item[1])[: options.candidates]
    return [Completion(tokenizer.decode(data), float(np.exp(logp))) for data, logp in best]
