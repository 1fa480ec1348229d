"""The calibration that learns from the writer: it starts as the fitted one, moves to how often
this writer's suggestions are right, judges a suggestion only by what is typed after it, and
the suggester feeds it from the words it would show."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from ghostwrite.model.words import first_word
from ghostwrite.server.calibration import Calibration, OnlineCalibration, Outcomes
from ghostwrite.server.dictionary import WordStats
from ghostwrite.server.loaded_model import LoadedModel
from ghostwrite.server.suggester import Suggester, SuggestOptions

PRIOR = Calibration(0.75, -0.25)
STATED = np.array([0.05, 0.2, 0.5, 0.8])


class Recorded(OnlineCalibration):
    """An online calibration that also lists the outcomes it was taught."""

    def __init__(self) -> None:
        super().__init__(PRIOR)
        self.taught: list[tuple[float, bool]] = []

    def learn(self, p: float, right: bool) -> None:
        self.taught.append((p, right))
        super().learn(p, right)


def test_it_starts_as_the_fitted_calibration_and_moves_to_the_writers():
    online = OnlineCalibration(PRIOR, prior_weight=300, window=3000)
    assert online(STATED) == pytest.approx(PRIOR(STATED))
    rng = np.random.default_rng(0)
    writer = Calibration(1.0, 1.0)  # this writer's suggestions are right far more often
    for p in rng.uniform(0.01, 0.99, 3000):
        online.learn(float(p), bool(rng.uniform() < writer(np.array(p))))
    assert online(STATED) == pytest.approx(writer(STATED), abs=0.05)
    assert np.all(online(STATED) > PRIOR(STATED))


def test_a_few_outcomes_barely_move_it():
    online = OnlineCalibration(PRIOR, prior_weight=300, refit_every=1)
    for _ in range(10):
        online.learn(0.5, True)
    moved = online(STATED) - PRIOR(STATED)
    assert np.all(moved > 0) and np.all(moved < 0.05)


def test_a_suggestion_is_judged_by_what_is_typed_after_it():
    calibration = Recorded()
    outcomes = Outcomes(calibration)
    outcomes.expect("the quick ", "brown fox", 0.6)  # one keystroke would accept "brown"
    outcomes.typed("the quick ")  # the same cursor asked again: nothing decided
    outcomes.typed("the quick br")  # on the way
    assert calibration.taught == []
    outcomes.typed("the quick brown")
    assert calibration.taught == [(0.6, True)]

    outcomes.expect("a lazy ", "dog", 0.3)
    outcomes.typed("a lazy c")
    assert calibration.taught[-1] == (0.3, False)

    outcomes.expect("over the ", "hill", 0.4)
    outcomes.typed("over th")  # deleted: the suggestion was never typed past
    outcomes.typed("over the hill")
    outcomes.expect("elsewhere ", "now", 0.2)
    outcomes.typed("another place in the document")
    assert len(calibration.taught) == 2


def test_the_suggester_teaches_it_the_words_it_would_show(tiny_model_dir, prose):
    stats = WordStats()
    stats.add(prose)
    calibration = Recorded()
    suggester = Suggester(LoadedModel.load(tiny_model_dir), calibration=calibration)
    options = SuggestOptions(confidence=0.0)
    text = prose[:400]
    expected = []
    for i in range(200, len(text)):
        found = suggester.suggest(text[:i], "", options, stats)
        if not found or found[0].product is None:
            continue
        word = first_word(found[0].text)
        typed = next((k for k in range(1, len(word) + 1) if text[i : i + k] != word[:k]), None)
        if i + (typed or len(word)) < len(text):  # decided while typing
            expected.append((found[0].product, typed is None))
    assert expected
    assert Counter(calibration.taught) == Counter(expected)


async def test_the_server_learns_from_typing_and_reports_it(tiny_model_dir, prose):
    from lsprotocol import types

    from tests.test_lsp import URI, inline, open_doc, serve, status

    text = " ".join(prose.split())[:300]  # one line: positions are columns
    async with serve("--model", str(tiny_model_dir)) as client:
        open_doc(client, text[:200])
        assert (await status(client))["calibration"]["outcomes"] == 0
        for i in range(200, len(text)):
            client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    types.VersionedTextDocumentIdentifier(uri=URI, version=i - 198),
                    [types.TextDocumentContentChangeWholeDocument(text[: i + 1])],
                )
            )
            await inline(client, 0, i + 1)
        learned = (await status(client))["calibration"]
    assert learned["outcomes"] > 0
    assert {"slope", "intercept"} <= learned.keys()
