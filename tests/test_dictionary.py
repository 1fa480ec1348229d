"""The personal dictionary: workspace indexing (training's walking rules, bounds, no escaping
symlinks), merging counts in and out, word rescoring, the completer's prefilled next window, and
the popup replacing the same prefix the dictionary completes."""

from __future__ import annotations

import numpy as np
import pytest

from ghostwrite.model import Completer, SearchOptions, load_model
from ghostwrite.model.inference import Decoder, log_softmax
from ghostwrite.model.tokenizer import encode
from ghostwrite.model.words import WORD_END_BYTES
from ghostwrite.server.dictionary import WordStats, WorkspaceLimits, index_workspace
from ghostwrite.server.engine import Engine, Job
from ghostwrite.server.loaded_model import LoadedModel
from ghostwrite.server.ranking import Suggestion, WordScoring, rescore_with_dictionary
from ghostwrite.server.suggester import Suggester, SuggestOptions


def test_workspace_index_walks_like_training_and_stays_inside(tmp_path):
    root = tmp_path / "workspace"
    outside = tmp_path / "outside"
    (root / "notes").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "node_modules").mkdir()
    outside.mkdir()
    (root / "notes" / "a.md").write_text("Zanzibar harbour\r\nZanzibar spice\n")
    (root / ".git" / "config").write_text("gitword")
    (root / "node_modules" / "x.js").write_text("vendorword")
    (root / "blob.bin").write_bytes(b"\0binaryword")
    (root / "big.txt").write_text("hugeword " * 100)
    (outside / "secret.txt").write_text("secretword")
    (outside / "inner").mkdir()
    (outside / "inner" / "deep.txt").write_text("deepword")
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "leakdir").symlink_to(outside / "inner")
    (root / "alias.md").symlink_to(root / "notes" / "a.md")  # inside: counted once

    index = index_workspace([root], WorkspaceLimits(max_file_bytes=200))
    assert index.stats.words == {"Zanzibar": 2, "harbour": 1, "spice": 1}
    assert index.files == 1
    assert index.skipped["links leading out of the folder"] == 1
    assert index.skipped["files past the size limits"] == 1
    assert index.skipped["binary files"] == 1
    assert index_workspace([root], WorkspaceLimits(max_files=0)).stats.words == {}
    assert index_workspace([tmp_path / "missing"]).files == 0


def test_merge_adds_and_takes_away_counts():
    live = WordStats()
    live.add("the cat sat")
    workspace = WordStats()
    workspace.add("the cat ran and the cat sat")
    live.merge(workspace)
    assert live.words["cat"] == 3
    assert live.candidates("", "cat", 5).keys() == {"sat", "ran"}
    live.merge(workspace, -1)
    only = WordStats()
    only.add("the cat sat")
    assert (live.words, live.followers, live.by_prefix) == (
        only.words,
        only.followers,
        only.by_prefix,
    )


def test_rescoring_multiplies_model_and_dictionary_and_ranks_by_saving():
    stats = WordStats()
    stats.add("the Zanzibar coast, the Zanzibar harbour, the zebra")

    def flat_model(texts: list[str]) -> np.ndarray:
        return np.full(len(texts), 0.1)

    completed = rescore_with_dictionary("near the Z", [], stats, WordScoring(), flat_model)
    assert [s.text for s in completed] == ["anzibar"]  # the only word the dictionary knows
    # Equally likely to the model: the word the dictionary knows goes first.
    found = [Suggestion("ulu", 0.1), Suggestion("ebra", 0.1)]
    by_probability = WordScoring(by_savings=False, calibration=None)
    both = rescore_with_dictionary("near the z", found, stats, by_probability, flat_model)
    assert [s.text for s in both] == ["ebra", "ulu"]
    # The model's total for the candidates, shared out in proportion to the products.
    assert sum(s.probability for s in both) == pytest.approx(0.2)
    assert both[0].probability / both[1].probability == pytest.approx(1 / WordScoring.unseen_word)
    # After punctuation, dictionary words come with their space; of two equally likely words,
    # ranking by saving puts the longer first.
    pairs = WordStats()
    pairs.add("a Zanzibar. a zebra.")
    after = rescore_with_dictionary("see a,", [], pairs, WordScoring(), flat_model)
    assert [s.text for s in after] == [" Zanzibar", " zebra"]
    assert after[0].probability == pytest.approx(after[1].probability)


@pytest.mark.parametrize(
    ("prefix", "previous"), [("", None), ("", "the"), ("Z", "the"), ("z", "a"), ("c", "cat")]
)
def test_word_distribution_sums_to_one_over_the_words_extending_the_prefix(prefix, previous):
    stats = WordStats()
    stats.add("the Zanzibar coast, the Zanzibar harbour, the zebra. a cat, a zebra, a Zanzibar")
    distribution = stats.distribution(prefix, previous)
    extending = [w for w in stats.words if w.startswith(prefix)]
    assert sum(distribution.probability(w) for w in extending) == pytest.approx(1.0)
    assert distribution.probability("nowhere") == 0.0
    listed = stats.candidates(prefix, previous, 3)
    assert all(p == distribution.probability(w) for w, p in listed.items())
    assert list(listed.values()) == sorted(listed.values(), reverse=True)


def test_after_a_whole_word_the_next_words_come_with_their_space():
    stats = WordStats()
    stats.add("the Zanzibar coast, the Zanzibar harbour, the zebra")

    def flat_model(texts: list[str]) -> np.ndarray:
        return np.full(len(texts), 0.1)

    scoring = WordScoring(by_savings=False, calibration=None)
    after = rescore_with_dictionary("near the Zanzibar", [], stats, scoring, flat_model)
    assert {s.text for s in after} == {" coast", " harbour"}
    # "Zanzibar" is only ever whole, and its two followers are equally likely.
    assert after[0].probability == pytest.approx(after[1].probability)
    # A model suggestion that goes on with punctuation gets P(word ends) * P(next word).
    found = [Suggestion(", the", 0.1), Suggestion(" zebra", 0.1)]
    with_model = rescore_with_dictionary("near the Zanzibar", found, stats, scoring, flat_model)
    probability = {s.text: s.probability for s in with_model}
    ends = stats.distribution("Zanzibar", "the").probability("Zanzibar")
    following = stats.distribution("", "Zanzibar")
    assert ends == 1.0
    assert probability[", the"] / probability[" coast"] == pytest.approx(
        max(WordScoring.unseen_word, following.probability("the")) / following.probability("coast")
    )


def test_word_probabilities_score_each_word_and_its_end(tiny_model_dir):
    model = LoadedModel.load(tiny_model_dir)
    suggester = Suggester(model)
    before = "the quick brown "
    suggester.completer.complete(before)
    words = [
        w * (1 + i % 3)
        for i, w in enumerate(
            ["fox", "dog", "the", "cat", "quick", "jumps", "a", "lazy", "over", "x"]
        )
    ]
    probabilities = suggester.word_probabilities(words)
    decoder = model.decoder
    for word, p in zip(words, probabilities, strict=True):
        cache = decoder.new_cache()
        logits = decoder.forward(cache, encode(before + word).astype(np.int64), all_logits=True)
        steps = logits[len(before) - 1 :]  # before each letter of the word, then after it
        logp = sum(log_softmax(steps[i].astype(np.float64))[b] for i, b in enumerate(word.encode()))
        ends = np.exp(log_softmax(steps[-1].astype(np.float64)))[WORD_END_BYTES].sum()
        assert p == pytest.approx(np.exp(logp) * ends, rel=1e-3)


@pytest.mark.parametrize("room", [8, 32])
def test_sliding_window_is_prefilled_ahead(tiny_model_dir, room):
    model = load_model(tiny_model_dir)
    completer = Completer(model)
    reference = Decoder(model)
    text = ("The quick brown fox jumps over the lazy dog. " * 12)[:400]
    completer.prepare(encode(text[:10]), room=room)
    most = 0
    for end in range(11, len(text)):
        tokens = encode(text[:end])
        before = completer.tokens_computed
        logits = completer.prepare(tokens, room=room)[-1]
        completer.warm_ahead()
        most = max(most, completer.tokens_computed - before)
        assert completer.cache.length <= model.config.ctx_len - min(room, model.config.ctx_len // 2)
    assert completer.window_start > 0  # the window slid
    expected = reference.forward(reference.new_cache(), tokens[completer.window_start :])
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    # A typed character costs the new token plus a few of the next window, never a re-prefill.
    assert most <= 8


def test_an_answer_costs_the_typed_character_alone_when_the_warming_comes_after(tiny_model_dir):
    text = ("The quick brown fox jumps over the lazy dog. " * 12)[:400]
    options = SearchOptions(max_chars=8)

    def answer_costs(warm_after: bool) -> list[int]:
        completer = Completer(load_model(tiny_model_dir))
        completer.complete(text[:10], options)
        costs = []
        for end in range(11, len(text)):
            before = completer.tokens_computed
            completer.complete(text[:end], options, ahead=False)
            costs.append(completer.tokens_computed - before)
            if warm_after:
                completer.warm_ahead()
        assert completer.window_start > 0  # the window slid
        return costs

    assert set(answer_costs(warm_after=True)) == {1}
    assert max(answer_costs(warm_after=False)) > 8  # never warmed: each slide re-prefills


def test_the_engine_warms_the_next_window_once_its_answer_is_sent(tiny_model_dir):
    engine = Engine()
    model = LoadedModel.load(tiny_model_dir)
    engine.set_model(model)
    uri = "file:///a.txt"
    suggester = Suggester(model, calibration=engine.calibration, warms_later=True)
    engine._suggesters[uri] = suggester  # the one the engine will use, to watch its completer
    completer = suggester.completer
    prepare = completer.prepare
    costs = []

    def watched(tokens, room):
        before = completer.tokens_computed
        logits = prepare(tokens, room)
        costs.append(completer.tokens_computed - before)
        return logits

    completer.prepare = watched
    text = ("The quick brown fox jumps over the lazy dog. " * 12)[:400]
    try:
        for end in range(10, len(text)):
            job = Job(uri, end, lambda end=end: end)
            engine.submit(job, text[:end], "", SuggestOptions()).result()
            engine.answer_sent()
    finally:
        engine.close()
    assert completer.window_start > 0  # the window slid
    assert set(costs[1:]) == {1}  # and no answer paid for a prefill


@pytest.mark.parametrize(
    "line", ["I don'", "l'amour", "naïve", "x_1", "say 'hel", "top_", "end. ", "tab\tna"]
)
def test_the_popup_replaces_the_prefix_the_dictionary_completes(line):
    from ghostwrite.server.completion import Found, popup_items
    from ghostwrite.server.documents import Document
    from ghostwrite.server.ranking import WordContext

    text = "first line\n" + line
    found = Found(Document("u", text, 0), len(text), [Suggestion("x", 0.5)], "utf-16")
    [item] = popup_items(found).items
    prefix = WordContext.at(text, WordStats()).prefix
    assert item.text_edit.new_text == prefix + "x"
    assert item.text_edit.range.start.character == len(line) - len(prefix)
