"""Word candidates and their probabilities: what the dictionary says of each candidate, the
product with the model's, and a calibration that changes what a probability means but never
the order (hand-set calibrations, whatever the fitted one happens to be)."""

from __future__ import annotations

import numpy as np
import pytest

from ghostwrite.server.calibration import Calibration, fit_calibration
from ghostwrite.server.dictionary import WordStats
from ghostwrite.server.ranking import (
    Suggestion,
    WordContext,
    WordScoring,
    product,
    rescore_with_dictionary,
    tree_size,
    word_candidates,
)


def flat_model(texts: list[str]) -> np.ndarray:
    return np.full(len(texts), 0.1)


def stats_of(text: str) -> WordStats:
    stats = WordStats()
    stats.add(text)
    return stats


def test_candidates_from_the_model_and_the_dictionary():
    stats = stats_of("the Zanzibar coast, the Zanzibar harbour, the zebra, a zebu")
    candidates = word_candidates("a zebra and the z", ["ulu"], stats, flat_model, 8)
    probability = dict(zip(candidates.texts, candidates.dictionary, strict=True))
    assert set(probability) == {"ulu", "ebra", "ebu"}
    assert probability["ulu"] == 0.0  # a word the dictionary never saw
    # After "the", "zebra" is the only z-word seen: the pair raises it above its word count.
    plain = candidates.context.unconditional()
    assert probability["ebra"] > plain.probability("ebra")[0] == pytest.approx(0.5)
    assert candidates.context.probability("ebra")[1:] == ("zebra", False)
    assert list(candidates.model) == [0.1] * 3


def test_after_a_whole_word_the_next_word_is_a_new_one():
    stats = stats_of("the Zanzibar coast, the Zanzibar harbour")
    context = WordContext.at("near the Zanzibar", stats)
    p, word, new_word = context.probability(" coast")
    assert (word, new_word) == ("coast", True)
    assert context.here.probability("Zanzibar") == 1.0  # it is only ever whole
    assert p == context.following.probability("coast") == context.following.probability("harbour")
    assert set(word_candidates("near the Zanzibar", [], stats, flat_model, 8).texts) == {
        " coast",
        " harbour",
    }


def test_a_node_budget_scores_the_models_words_then_the_likeliest_of_the_dictionarys():
    stats = stats_of("the zebra, the zebra, the zebu, the aardvark")
    everything = word_candidates("near the ", ["ox", "oxen"], stats, flat_model, 8)
    assert everything.texts == ["ox", "oxen", "zebra", "zebu", "aardvark"]

    def within(max_nodes: int) -> list[str]:
        texts = word_candidates("near the ", ["ox", "oxen"], stats, flat_model, 8, max_nodes)
        return texts.texts

    # The model's words are 4 nodes (o, ox, oxe, oxen); "zebra" is 5 more, "zebu" then 1 more
    # (z, ze and zeb are shared); "aardvark", less likely than both, 8 more.
    assert within(0) == within(8) == ["ox", "oxen"]
    assert within(9) == ["ox", "oxen", "zebra"]
    assert within(10) == within(17) == ["ox", "oxen", "zebra", "zebu"]
    assert within(18) == everything.texts
    assert tree_size(everything.texts) == 18


def test_product_is_shared_out_over_the_models_total():
    shared = product(np.array([0.2, 0.1, 0.1]), np.array([0.5, 0.0, 0.25]), unseen=0.01)
    assert shared.sum() == pytest.approx(0.4)
    assert shared[0] / shared[2] == pytest.approx(2 * 0.5 / 0.25)
    assert shared[2] / shared[1] == pytest.approx(0.25 / 0.01)


@pytest.mark.parametrize(("slope", "intercept"), [(1.0, 0.0), (0.5, -1.0), (2.0, 3.0)])
def test_calibration_keeps_the_order_and_maps_into_zero_one(slope, intercept):
    stats = stats_of("the Zanzibar coast, the Zanzibar harbour, the zebra, the zebu, the zoo")
    found = [Suggestion("ulu", 0.3), Suggestion("ebra", 0.1)]
    model = {"ulu": 0.3, "ebra": 0.1, "ebu": 0.05, "oo": 0.02}

    def scored(texts: list[str]) -> np.ndarray:
        return np.array([model.get(t, 0.001) for t in texts])

    calibration = Calibration(slope, intercept)
    raw = rescore_with_dictionary("near the z", found, stats, WordScoring(calibration=None), scored)
    calibrated = rescore_with_dictionary(
        "near the z", found, stats, WordScoring(calibration=calibration), scored
    )
    assert [s.text for s in calibrated] == [s.text for s in raw]
    expected = calibration(np.array([s.probability for s in raw]))
    assert [s.probability for s in calibrated] == pytest.approx(list(expected))
    assert all(0 < s.probability < 1 for s in calibrated)


def test_a_fitted_calibration_recovers_how_often_suggestions_were_right():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, 50_000)
    truth = Calibration(0.5, -0.5)  # suggestions stated at p were right this often
    right = rng.uniform(size=p.size) < truth(p)
    fitted = fit_calibration(p, right)
    assert fitted.slope == pytest.approx(0.5, abs=0.05)
    assert fitted.intercept == pytest.approx(-0.5, abs=0.05)
    stated = np.array([0.1, 0.4, 0.8])
    assert fitted(stated) == pytest.approx(truth(stated), abs=0.02)
