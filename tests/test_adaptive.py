"""The adaptive byte n-gram and the mixer: distributions that sum to 1 and never rule a byte out,
whatever the weights, and weights that learn to trust the model that predicts better."""

from __future__ import annotations

import numpy as np
import pytest

from ghostwrite.model.adaptive import ByteNgram, Mixer
from ghostwrite.model.inference import log_softmax
from ghostwrite.server.dictionary import WordStats


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


def test_batched_distributions_equal_one_at_a_time():
    ngram = ByteNgram(order=3)
    ngram.update(b"the cat sat on the mat. the cat ate. " * 3)
    contexts = [b"", b"t", b"the c", b"zz", b"at. t", b"qqqq"]
    p, longest = ngram.distributions(contexts)
    for row, context in enumerate(contexts):
        one, seen = ngram.distribution(context)
        assert np.allclose(p[row], one)
        assert longest[row] == seen
    mixer = Mixer(order=3)
    mixer.weights[:] = np.random.default_rng(2).normal(1, 1, mixer.weights.shape)
    gpt = log_softmax(np.random.default_rng(3).normal(0, 4, (len(contexts), 256)))
    many = mixer.mix_many(gpt, np.log(p), longest)
    for row in range(len(contexts)):
        assert np.allclose(many[row], mixer.mix(gpt[row], np.log(p[row]), int(longest[row])))
    assert np.allclose(np.exp(many).sum(axis=1), 1.0)


def test_mixed_word_probabilities_are_the_models_while_the_mixer_trusts_only_it(
    scripted_model_dir,
):
    from ghostwrite.server.loaded_model import LoadedModel
    from ghostwrite.server.suggester import Suggester, SuggestOptions
    from tests.helpers.scripted import LAZY_TEXT

    suggester = Suggester(LoadedModel.load(scripted_model_dir))
    options = SuggestOptions(adaptive=True)
    suggester.candidates(LAZY_TEXT, options, WordStats())
    texts = ["zy", "z", "zzz q", "nope"]
    # The mixer starts with all its weight on the model: the mixture is the model (up to the
    # mixture's uniform sliver).
    assert suggester.mixed_word_probabilities(texts) == pytest.approx(
        suggester.word_probabilities(texts), rel=1e-4
    )


def test_the_document_model_follows_typing_and_moves_with_the_cursor(scripted_model_dir):
    from ghostwrite.server.loaded_model import LoadedModel
    from ghostwrite.server.suggester import Suggester, SuggestOptions

    suggester = Suggester(LoadedModel.load(scripted_model_dir))
    options = SuggestOptions(adaptive=True)
    text = "Zanzibar and Zanzibar and Zanz"
    stats = WordStats()
    suggester.candidates(text[:-1], options, stats)
    adaptive = suggester.adaptive
    assert adaptive is not None and adaptive.seen == text[:-1].encode()
    before = adaptive.mixer.weights.copy()
    suggester.candidates(text, options, stats)  # one character typed: the mixer learns from it
    assert not np.array_equal(adaptive.mixer.weights, before)
    assert adaptive.ngram.distribution(b"Zanz")[1] == 4
    suggester.candidates("Zebra", options, stats)  # an edit: the counts stay, the cursor moves
    assert adaptive.seen == b"Zebra"
    assert adaptive.ngram.distribution(b"Zanz")[1] == 4
    suggester.candidates("Zebras", options, stats)  # counted after the new cursor's text
    assert adaptive.ngram.distribution(b"Zebra")[1] == 5
    probabilities = suggester.mixed_word_probabilities(["ebra", "q"])
    assert all(0 < p < 1 for p in probabilities)
