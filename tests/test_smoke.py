"""The test suite's tiny model, trained in process and saved, loads and has learned its prose: how
well exactly depends on the machine (BLAS, CPU, threads), so only a wide margin is checked."""

import math

import numpy as np

from ghostwrite.model import load_model
from ghostwrite.model.inference import Decoder, log_softmax
from ghostwrite.model.tokenizer import encode


def test_tiny_model_learns_the_prose(tiny_model_dir, prose):
    decoder = Decoder(load_model(tiny_model_dir))
    tokens = encode(prose[: decoder.config.ctx_len]).astype(np.int64)
    logits = decoder.forward(decoder.new_cache(), tokens[:-1], all_logits=True)
    logp = log_softmax(logits.astype(np.float64))[np.arange(len(tokens) - 1), tokens[1:]]
    # Chance is ln 256 = 5.5 nats per character; 300 steps on this repeated text go far below.
    assert -logp.mean() < math.log(256) - 3
