"""The adaptive byte n-gram and the mixer: distributions that sum to 1 and never rule a byte out,
whatever the weights, and weights that learn to trust the model that predicts better."""

from __future__ import annotations

import numpy as np
import pytest

from ghostwrite.model.adaptive import ByteNgram, Mixer
from ghostwrite.model.inference import log_softmax


@pytest.mark.parametrize("context", [b"", b"t", b"the c", b"zzzzzzz", "caf\u00e9 ".encode()])
def test_ngram_distribution_sums_to_one_and_is_never_zero(context):
    ngram = ByteNgram(order=4)
    ngram.update(b"the cat sat on the mat. the cat ate. ")
    ngram.update("caf\u00e9 au lait".encode())
    p, longest = ngram.distribution(context)
    assert p.shape == (256,)
    assert p.sum() == pytest.approx(1.0)
    assert p.min() > 0
    assert -1 <= longest <= min(4, len(context))


def test_ngram_knows_a_phrase_as_soon_as_it_is_written():
    ngram = ByteNgram(order=3)
    p, longest = ngram.distribution(b"the")
    assert longest == -1 and p.max() == pytest.approx(1 / 256)
    ngram.update(b"Zanzibar, Zanzibar")
    p, longest = ngram.distribution(b"Zan")
    assert longest == 3
    assert int(p.argmax()) == ord("z")
    # Counting in pieces is counting at once: the history carries over.
    whole = ByteNgram(order=3)
    whole.update(b"Zanzibar, Zanzibar")
    pieces = ByteNgram(order=3)
    for chunk in (b"Zan", b"zibar, Za", b"nzibar"):
        pieces.update(chunk)
    assert np.array_equal(whole.distribution(b"zib")[0], pieces.distribution(b"zib")[0])


@pytest.mark.parametrize("weights", [(1.0, 0.0), (0.0, 1.0), (0.3, 0.9), (-2.0, 5.0), (40.0, 40.0)])
def test_mixture_sums_to_one_and_is_never_zero_for_any_weights(weights):
    rng = np.random.default_rng(0)
    gpt = log_softmax(rng.normal(0, 8, 256))
    ngram = np.log(rng.dirichlet(np.full(256, 0.1)) * 0.99 + 0.01 / 256)
    mixer = Mixer(order=2)
    mixer.weights[:] = weights
    for context in (-1, 0, 2):
        p = np.exp(mixer.mix(gpt, ngram, context))
        assert p.sum() == pytest.approx(1.0)
        assert p.min() > 0


def test_mixer_starts_as_the_model_and_learns_to_trust_the_better_predictor():
    vague = log_softmax(np.zeros(256))  # the "model" knows nothing
    mixer = Mixer(order=1, learning_rate=0.05)
    sharp = np.full(256, 0.001 / 255)
    sharp[ord("a")] = 0.999
    assert np.allclose(mixer.mix(vague, np.log(sharp), 1), vague)
    before = -mixer.learn(vague, np.log(sharp), 1, ord("a"))
    for _ in range(50):
        mixer.learn(vague, np.log(sharp), 1, ord("a"))
    after = -mixer.mix(vague, np.log(sharp), 1)[ord("a")]
    assert after < before
    assert mixer.weights[2, 1] > 0  # the n-gram's weight for this context grew
    assert np.array_equal(mixer.weights[0], [1.0, 0.0])  # other contexts untouched
