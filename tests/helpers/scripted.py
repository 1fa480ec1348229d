"""Models whose behaviour a test defines: real GPT weights (the project's shapes, files and
inference) set by hand so that the next byte's distribution depends only on the previous byte,
as a table the test writes. Their suggestions are the same on every machine, so tests can assert
exact texts and probabilities.

How the weights do it: attention and MLP weights are zero, so every block passes its input
through unchanged; position embeddings are zero; each byte's embedding is its one-hot vector
(``n_emb`` = 256), which the final LayerNorm's gain and shift map back to that one-hot vector
exactly; the head's column for a byte then holds the log-probabilities of its successors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ghostwrite.model import GPTConfig, ModelFiles, save_model
from ghostwrite.model.files import expected_shapes
from ghostwrite.model.inference import LN_EPS

VOCAB = 256
CONFIG = GPTConfig(vocab_size=VOCAB, ctx_len=128, n_emb=VOCAB, n_heads=1, n_layers=1, dropout=0.0)
# The log-probability of every byte a fully scripted row leaves out: rounds to nothing.
NEVER = math.log(1e-12)

Successors = Mapping[str, Mapping[str, float]]


def byte_of(char: str) -> int:
    data = char.encode()
    if len(data) != 1:
        raise ValueError(f"scripted models map single bytes; {char!r} is {len(data)} bytes")
    return data[0]


def log_probabilities(successors: Successors) -> np.ndarray:
    """(previous byte, next byte) log-probabilities: each listed previous byte gets its listed
    successors' probabilities and spreads what is left evenly over every other byte; any other
    previous byte is followed by all 256 bytes alike."""
    table = np.full((VOCAB, VOCAB), -math.log(VOCAB))
    for previous, row in successors.items():
        total = sum(row.values())
        if not 0 < total <= 1 + 1e-9 or min(row.values()) <= 0:
            raise ValueError(f"successors of {previous!r} must be positive and sum to at most 1")
        rest = 1.0 - total
        others = VOCAB - len(row)
        table[byte_of(previous)] = math.log(rest / others) if rest > 1e-9 else NEVER
        for following, probability in row.items():
            table[byte_of(previous), byte_of(following)] = math.log(probability)
    return table


def scripted_weights(successors: Successors) -> dict[str, np.ndarray]:
    shapes = expected_shapes(CONFIG)
    weights = {name: np.zeros(shape, dtype=np.float32) for name, shape in shapes.items()}
    for name in weights:
        if name.endswith(("ln1.weight", "ln2.weight")):
            weights[name][:] = 1.0
    weights["wte.weight"] = np.eye(VOCAB, dtype=np.float32)
    # A one-hot vector has mean 1/256 and variance (1/256)(1 - 1/256): undo LayerNorm's scaling.
    mean = 1.0 / VOCAB
    weights["ln_f.weight"][:] = math.sqrt(mean * (1.0 - mean) + LN_EPS)
    weights["ln_f.bias"][:] = mean
    weights["lm_head.weight"] = log_probabilities(successors).T.astype(np.float32)
    return weights


def scripted_model(successors: Successors) -> ModelFiles:
    """The model in memory (for the completer and search)."""
    return ModelFiles(config=CONFIG, weights=scripted_weights(successors))


def save_scripted_model(directory: Path, successors: Successors) -> Path:
    """The model as a model directory, written by the project's own save path."""
    card = {"corpus": {"note": "tests/scripted.py: successors set by hand"}}
    return save_model(directory, CONFIG, scripted_weights(successors), card)


# The script the server tests serve: after "...the la" the one confident suggestion is "zy"
# (probability 0.9 ** 3: "z", "y", then the space that ends the word), and at the start of a
# line "lazy" (0.9 ** 5).
LAZY_TEXT = "The quick brown fox jumps over the la"
LAZY = {"\n": {"l": 0.9}, "l": {"a": 0.9}, "a": {"z": 0.9}, "z": {"y": 0.9}, "y": {" ": 0.9}}
