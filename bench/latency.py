"""Completion latency at batch 1 on this CPU: the article's generate loop against cached decoding.

    python bench/latency.py [--preset article] [--repeats 50]

(a) the article's loop: full MLX forward over the whole context for every new character;
(b) prefill the context into the numpy KV cache, then 32 cached decode steps;
(c) one more typed character into a warm cache, then 32 decode steps;
(e) the typed character is the first of the previous suggestion: ``Completer`` returns the rest
    of it after one model step, with no search;
(d) what the server answers per keystroke: ``Completer`` typing along text, 4-beam search stopping
    at the end of a word (a mix of (c)-like searches and (e)-like follow-ups), the next window
    prefilled after each answer, untimed, as the server does.
Weights are random (latency does not depend on them); (a)-(c) and (e) make exactly 32 characters.
Prints p50/p95/p99 in ms, side by side from one run.
"""

from __future__ import annotations

import argparse
import time

# isort: off
from ghostwrite.model import backend

backend.setup_mlx()  # before mlx.core: the fast BLAS, one thread
backend.limit_numpy_blas_threads(1)
import mlx.core as mx

# isort: on
import numpy as np

from ghostwrite.model import PRESETS, Completer, SearchOptions
from ghostwrite.model.files import ModelFiles, parameter_count
from ghostwrite.model.gpt import GPT, weights_to_numpy
from ghostwrite.model.inference import BeamCache, Decoder
from ghostwrite.model.tokenizer import encode

CONTEXT = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    "age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the "
    "season of Light, it was the season of Darkness, it was the spring of hope."
)


def article_generate(model: GPT, tokens: np.ndarray, new: int, ctx: int) -> list[int]:
    """The article's loop: recompute the (cropped) context for every character, greedy."""
    seq = mx.array(tokens[None].astype(np.int32))
    out = []
    for _ in range(new):
        logits = model(seq[:, -ctx:])[:, -1, :]
        nxt = mx.argmax(logits, axis=-1, keepdims=True)
        seq = mx.concatenate([seq, nxt.astype(mx.int32)], axis=1)
        out.append(nxt)
    mx.eval(seq)
    return [int(t.item()) for t in out]


def greedy_decode(decoder: Decoder, cache, logits: np.ndarray, new: int) -> list[int]:
    beams = BeamCache(decoder.config, 1, new)
    out = []
    for _ in range(new):
        token = int(np.argmax(logits))
        out.append(token)
        logits = decoder.step_beams(cache, beams, np.array([token]))[0]
    return out


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    p50, p95, p99 = np.percentile(np.array(samples) * 1000, [50, 95, 99])
    return float(p50), float(p95), float(p99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="article", choices=sorted(PRESETS))
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--chars", type=int, default=32)
    args = parser.parse_args()

    cfg = PRESETS[args.preset].with_changes(dropout=0.0)
    mx.random.seed(0)
    model = GPT(cfg)
    model.eval()
    files = ModelFiles(cfg, weights_to_numpy(model))
    decoder = Decoder(files)
    context = encode(CONTEXT * 4)[: min(128, cfg.ctx_len - args.chars)]
    new = args.chars
    times: dict[str, list[float]] = {k: [] for k in ("a", "b", "c", "e", "d")}

    article_generate(model, context, 2, cfg.ctx_len)  # warm-up
    for i in range(args.repeats):
        start = time.perf_counter()
        article_generate(model, context, new, cfg.ctx_len)
        times["a"].append(time.perf_counter() - start)

        start = time.perf_counter()
        cache = decoder.new_cache()
        logits = decoder.forward(cache, context[:-1].astype(np.int64))
        greedy_decode(decoder, cache, logits, new)
        times["b"].append(time.perf_counter() - start)

        # (c) the cache already holds the context; the user types one more character
        cache.truncate(len(context) - 1 - 1 - (i % 2))
        typed = context[cache.length :].astype(np.int64)
        start = time.perf_counter()
        logits = decoder.forward(cache, typed)
        greedy_decode(decoder, cache, logits, new)
        times["c"].append(time.perf_counter() - start)

    follow = Completer(decoder)
    exact = SearchOptions(max_chars=new, stop="none", beam_width=1)
    for i in range(args.repeats):
        text = CONTEXT[: 60 + i % 60]
        [suggestion] = follow.complete(text, exact)
        start = time.perf_counter()
        follow.complete(text + suggestion.text[0], exact)
        times["e"].append(time.perf_counter() - start)

    completer = Completer(decoder)
    completer.complete(CONTEXT[:100], SearchOptions())
    for i in range(args.repeats):
        start = time.perf_counter()
        completer.complete(CONTEXT[: 101 + i % 60], SearchOptions(max_chars=new), ahead=False)
        times["d"].append(time.perf_counter() - start)
        completer.warm_ahead()  # the server does this after answering

    labels = {
        "a": f"(a) article's generate loop, full recompute, {new} chars",
        "b": f"(b) prefill {len(context)} chars + {new} cached steps",
        "c": f"(c) one typed char into a warm cache + {new} steps",
        "e": f"(e) typed char follows the previous {new}-char suggestion",
        "d": "(d) server path: typing along, 4-beam search to end of word",
    }
    print(
        f"model: preset {args.preset}, {parameter_count(cfg) / 1e6:.2f}M parameters, "
        f"ctx {cfg.ctx_len}; {args.repeats} repeats; batch 1, 1 BLAS thread"
    )
    print("| case | p50 ms | p95 ms | p99 ms | speed-up vs (a), p50 |")
    print("|---|---|---|---|---|")
    base = percentiles(times["a"])[0]
    for key, label in labels.items():
        p50, p95, p99 = percentiles(times[key])
        print(f"| {label} | {p50:.2f} | {p95:.2f} | {p99:.2f} | {base / p50:.0f}x |")


if __name__ == "__main__":
    main()
