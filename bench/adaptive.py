"""Bits per byte of the GPT alone, the adaptive byte n-gram alone, and their online mixture, on
spans of held-out text whose document before them the n-gram has already read.

    python bench/adaptive.py --model DIR [--chars 5000] [--spans 2] [--context 50000]

The GPT sees a sliding window (each byte predicted with at least half a window before it); the
n-gram and the mixer learn from every byte of the document as it goes, as they would while
someone types. Also reports the mixer's and the n-gram's cost per byte.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from ghostwrite.model import files
from ghostwrite.model.adaptive import ByteNgram, Mixer
from ghostwrite.model.backend import limit_numpy_blas_threads
from ghostwrite.model.inference import Decoder, log_softmax

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TEXTS = (
    "gutenberg-the-time-machine.txt",
    "gutenberg-alice-in-wonderland.txt",
    "corpus/18f-before-you-ship.txt",
)


def gpt_logprobs(decoder: Decoder, data: bytes, start: int, end: int) -> np.ndarray:
    """(end - start, 256) log P(next byte) for bytes start..end, each with at least half a
    context window before it."""
    ctx = decoder.config.ctx_len
    half = ctx // 2
    out = []
    for chunk in range(start, end, half):
        left = max(0, chunk - half)
        tokens = np.frombuffer(data[left : min(end, chunk + half)], dtype=np.uint8).astype(np.int64)
        cache = decoder.new_cache()
        logits = decoder.forward(cache, tokens, all_logits=True)  # logits[j] predicts j + 1
        # Byte b (chunk <= b) is predicted by the logits after b - 1.
        rows = np.arange(chunk - left - 1, len(tokens) - 1)
        if chunk == 0:
            rows = rows[1:]
            out.append(np.full((1, 256), -math.log(256)))
        out.append(log_softmax(logits[rows].astype(np.float64)))
    return np.concatenate(out)[: end - start]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--chars", type=int, default=5000, help="bytes scored per span")
    parser.add_argument("--spans", type=int, default=2, help="spans per text")
    parser.add_argument("--context", type=int, default=50_000, help="document bytes read before")
    parser.add_argument("--order", type=int, default=5)
    parser.add_argument("--learning-rate", type=float, default=0.02)
    args = parser.parse_args()
    limit_numpy_blas_threads(1)
    decoder = Decoder(files.load_model(Path(args.model)))
    print("| text | bytes | GPT bits/byte | n-gram | mixture | mixture / GPT | µs per byte |")
    print("|---|---|---|---|---|---|---|")
    totals = np.zeros(4)
    for name in TEXTS:
        data = (DATA / name).read_bytes().replace(b"\r\n", b"\n")
        sums = np.zeros(4)
        spent = 0.0
        for k in range(args.spans):
            start = int((len(data) - args.chars) * (k + 1) / (args.spans + 1))
            end = start + args.chars
            gpt = gpt_logprobs(decoder, data, start, end)
            ngram = ByteNgram(args.order)
            ngram.update(data[max(0, start - args.context) : start])
            mixer = Mixer(args.order, args.learning_rate)
            t0 = time.perf_counter()
            for j in range(end - start):
                byte = data[start + j]
                p, longest = ngram.distribution(data[start + j - args.order : start + j])
                logp_ngram = np.log(p)
                sums[2] -= mixer.learn(gpt[j], logp_ngram, longest, byte)
                sums[1] -= logp_ngram[byte]
                sums[0] -= gpt[j, byte]
                ngram.update(bytes([byte]))
            spent += time.perf_counter() - t0
            sums[3] += end - start
        bits = sums[:3] / sums[3] / math.log(2)
        totals += sums
        print(
            f"| {Path(name).stem} | {int(sums[3])} | {bits[0]:.3f} | {bits[1]:.3f} | "
            f"{bits[2]:.3f} | {bits[2] / bits[0]:.3f} | {spent / sums[3] * 1e6:.0f} |"
        )
    bits = totals[:3] / totals[3] / math.log(2)
    print(
        f"| all | {int(totals[3])} | {bits[0]:.3f} | {bits[1]:.3f} | {bits[2]:.3f} | "
        f"{bits[2] / bits[0]:.3f} | |"
    )


if __name__ == "__main__":
    main()
