"""The numpy decoder's step time by model shape: one sequence at batch 1, and a beam batch.

    python bench/decoder_step.py --repeats 300

Each shape (GPT-2 blocks; ``bundled``: the bundled model's shape and architecture) gets random
weights (the step's cost does not depend on their values), a 64-character prefix in its KV
cache, then ``--repeats`` single-token steps (``Decoder.forward``) and as many 4-beam steps
(``Decoder.step_beams``), the caches rolled back after each so every step sees the same context
length. One BLAS thread, as the server runs. Prints medians, p90s and the batch-1
median per million parameters (the figure that says what a bigger model will cost).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ghostwrite.model import backend

backend.setup_mlx()  # before mlx.core: GPT builds the random weights
backend.limit_numpy_blas_threads(1)

from ghostwrite.model import files
from ghostwrite.model.config import GPTConfig
from ghostwrite.model.files import ModelFiles
from ghostwrite.model.gpt import GPT, weights_to_numpy
from ghostwrite.model.inference import BeamCache, Decoder

SHAPES = {  # name: (width, layers, heads)
    "article": (128, 3, 4),
    "160x4": (160, 4, 5),
    "192x4": (192, 4, 6),
    "256x4": (256, 4, 8),
}
PREFIX = 64
BEAMS = 4


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1e3, q))


def measure(cfg: GPTConfig, repeats: int) -> tuple[int, list[float], list[float]]:
    model = ModelFiles(cfg, weights_to_numpy(GPT(cfg)))
    decoder = Decoder(model)
    cache = decoder.new_cache()
    decoder.forward(cache, np.arange(PREFIX, dtype=np.int64) % 256)
    single, beams = [], []
    for i in range(repeats):
        start = time.perf_counter()
        decoder.forward(cache, np.array([i % 256]))
        single.append(time.perf_counter() - start)
        cache.truncate(PREFIX)
        beam_cache = BeamCache(cfg, BEAMS, 1)
        tokens = np.arange(BEAMS, dtype=np.int64) + i % 200
        start = time.perf_counter()
        decoder.step_beams(cache, beam_cache, tokens)
        beams.append(time.perf_counter() - start)
    parameters = sum(w.size for w in model.weights.values())
    return parameters, single, beams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument(
        "--shapes",
        default=",".join([*SHAPES, "bundled"]),
        help="comma-separated names; bundled: the bundled model's shape and architecture",
    )
    args = parser.parse_args()
    print(f"ctx 128, {PREFIX} characters cached, {args.repeats} steps, 1 BLAS thread\n")
    print(
        "| shape | parameters | batch 1 p50 ms | batch 1 p90 ms | 4 beams p50 ms | "
        "4 beams p90 ms | batch 1 ms per M parameters |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.shapes.split(","):
        if name == "bundled":  # its own architecture, not only its shape
            cfg = files.load_model(files.bundled_model_dir()).config
        else:
            width, layers, heads = SHAPES[name]
            cfg = GPTConfig(ctx_len=128, n_emb=width, n_heads=heads, n_layers=layers, dropout=0.0)
        parameters, single, beams = measure(cfg, args.repeats)
        p50 = percentile(single, 50)
        print(
            f"| {name} | {parameters:,} | {p50:.3f} | {percentile(single, 90):.3f} | "
            f"{percentile(beams, 50):.3f} | {percentile(beams, 90):.3f} | "
            f"{p50 / (parameters / 1e6):.3f} |"
        )


if __name__ == "__main__":
    main()
