"""Samplers on hand-made logits; beam search on scripted models (tests/scripted.py), whose
suggestions and their probabilities are known exactly, and the time limits a search keeps."""

import importlib
from dataclasses import replace

import numpy as np
import pytest

from ghostwrite.model import Completer, SearchOptions, make_sampler
from ghostwrite.model.inference import log_softmax
from ghostwrite.model.search import WORD_MAX_BYTES
from ghostwrite.model.tokenizer import encode
from ghostwrite.server.dictionary import WordStats
from ghostwrite.server.loaded_model import LoadedModel
from ghostwrite.server.suggester import Suggester, SuggestOptions
from tests.helpers.scripted import (
    LAZY,
    LAZY_TEXT,
    Successors,
    log_probabilities,
    save_scripted_model,
    scripted_model,
)

# The modules (``ghostwrite.model.search`` is also the name of its function).
search_module = importlib.import_module("ghostwrite.model.search")
completer_module = importlib.import_module("ghostwrite.model.completer")


def test_greedy_sampler_takes_the_argmax():
    logits = np.array([[0.1, 3.0, 0.2], [5.0, 0.0, 1.0]])
    assert make_sampler()(logits).tolist() == [1, 0]


def test_top_k_never_samples_outside_the_k_best():
    logits = np.array([2.0, 1.9, -1.0, -1.5])
    sampler = make_sampler(temperature=5.0, top_k=2, seed=0)
    assert {int(sampler(logits)[0]) for _ in range(200)} == {0, 1}


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = np.log(np.array([0.6, 0.3, 0.05, 0.05]))
    sampler = make_sampler(temperature=1.0, top_p=0.8, seed=0)
    assert {int(sampler(logits)[0]) for _ in range(300)} == {0, 1}


def test_seeded_sampling_repeats():
    logits = np.zeros(50)
    first = [int(make_sampler(1.0, seed=7)(logits)[0]) for _ in range(5)]
    again = [int(make_sampler(1.0, seed=7)(logits)[0]) for _ in range(5)]
    assert first == again


def test_invalid_options_are_refused():
    with pytest.raises(ValueError, match="stop"):
        SearchOptions(stop="sentence")
    with pytest.raises(ValueError):
        SearchOptions(max_chars=0)


def completer(successors: Successors) -> Completer:
    return Completer(scripted_model(successors))


def test_a_scripted_model_predicts_the_next_byte_from_its_table():
    tokens = encode(LAZY_TEXT + "\nlazy")
    logits = completer(LAZY).prepare(tokens, room=8)
    np.testing.assert_allclose(
        log_softmax(logits.astype(np.float64)), log_probabilities(LAZY)[tokens], atol=1e-5
    )


def test_beam_search_returns_candidates_best_first():
    script = {
        " ": {"c": 0.5, "d": 0.3, "f": 0.15},
        "c": {" ": 0.9},
        "d": {" ": 0.9},
        "f": {" ": 0.9},
    }
    results = completer(script).complete("The fox looks at the ", SearchOptions(candidates=3))
    assert [r.text for r in results] == ["c", "d", "f"]
    assert [r.probability for r in results] == pytest.approx([0.45, 0.27, 0.135], rel=1e-4)


def test_word_stop_ends_before_the_boundary():
    script = {"r": {"e": 0.9}, "e": {"s": 0.9}, "s": {"t": 0.9}, "t": {",": 0.9}}
    options = SearchOptions(stop="word")
    [best] = completer(script).complete("The fox goes home to the for", options)
    assert best.text == "est"
    assert best.probability == pytest.approx(0.9**4, rel=1e-4)  # the comma that ends it counts


def test_a_word_search_goes_no_further_than_a_word_can():
    endless = {"s": {"a": 0.9}, "a": {"a": 0.9}}  # after "is", a word that never ends
    model = completer(endless)
    [word] = model.complete("The sea is", SearchOptions(stop="word", max_chars=64))
    assert word.text == "a" * WORD_MAX_BYTES
    [line] = model.complete("The sea is", SearchOptions(stop="none", max_chars=40))
    assert line.text == "a" * 40


# After "the ", a short word ends at once and a long one goes on for a while before it ends.
SHORT_FIRST = {" ": {"a": 0.6, "b": 0.3}, "a": {" ": 0.9}, "b": {"c": 0.9}, "c": {"d": 0.9}}
SHORT_FIRST |= {"d": {"e": 0.9}, "e": {" ": 0.9}}
LONG_FIRST = SHORT_FIRST | {" ": {"b": 0.6, "a": 0.3}}
WORDS = SearchOptions(stop="word", candidates=4)
SPENT = replace(WORDS, time_budget_s=1e-9)


def search_beams(successors: Successors, options: SearchOptions, **kwargs) -> tuple[list, list]:
    """The words found after "Look at the " and the beams decoded at each step."""
    model = completer(successors)
    step_beams = model.decoder.step_beams
    beams: list[int] = []

    def counting(prefix, cache, tokens):
        beams.append(len(tokens))
        return step_beams(prefix, cache, tokens)

    model.decoder.step_beams = counting
    return [c.text for c in model.complete("Look at the ", options, **kwargs)], beams


def test_a_spent_budget_ends_a_word_search_once_its_likeliest_word_is_finished():
    unhurried, _ = search_beams(SHORT_FIRST, WORDS)
    assert unhurried[:2] == ["a", "bcde"]
    hurried, beams = search_beams(SHORT_FIRST, SPENT)
    assert hurried == ["a"] and beams == [4]  # no beam left could beat "a"


def test_a_spent_budget_lets_only_the_beams_that_could_win_go_on():
    unhurried, beams = search_beams(LONG_FIRST, WORDS)
    assert unhurried[:2] == ["bcde", "a"] and max(beams[1:]) > 1
    hurried, beams = search_beams(LONG_FIRST, SPENT)
    assert hurried[:2] == ["bcde", "a"] and beams[0] > 1 and set(beams[1:]) == {1}


class StepClock:
    """A clock for ``search`` that moves one second per decoding step."""

    def __init__(self, model: Completer) -> None:
        self.now = 0.0
        step_beams = model.decoder.step_beams

        def stepping(prefix, cache, tokens):
            self.now += 1.0
            return step_beams(prefix, cache, tokens)

        model.decoder.step_beams = stepping

    def perf_counter(self) -> float:
        return self.now


def test_a_word_search_past_its_deadline_returns_the_words_it_has_finished(monkeypatch):
    # Unhurried, or past its own budget, the search goes on to "bcde" (above); due, it stops.
    model = completer(LONG_FIRST)
    clock = StepClock(model)
    monkeypatch.setattr(search_module, "time", clock)
    monkeypatch.setattr(completer_module, "time", clock)
    generous = replace(WORDS, time_budget_s=60.0)
    due = [c.text for c in model.complete("Look at the ", generous, budget_s=1.5)]
    assert due[0] == "a" and "bcde" not in due  # stopped after the step that finished "a"
    clock.now = 0.0
    model.complete("Look at the ", replace(generous, max_chars=20), budget_s=2.5)
    assert clock.now == 2.0  # a third step would have ended at 3 s, past the deadline


def test_a_deadline_hurries_a_line_like_its_own_budget():
    line = SearchOptions(stop="line", max_chars=24)
    model = completer(SHORT_FIRST)
    hurried = model.complete("Look at the ", replace(line, time_budget_s=1e-9))
    due = model.complete("Look at the ", line, budget_s=1e-9)
    assert [c.text for c in due] == [c.text for c in hurried] == ["a"]


def test_a_word_request_leaves_its_scoring_pass_the_time_the_last_one_took(tmp_path):
    suggester = Suggester(LoadedModel.load(save_scripted_model(tmp_path, SHORT_FIRST)))
    options = SuggestOptions(search=SearchOptions(stop="word"), confidence=0.0, word_budget_s=60.0)

    def words() -> set[str]:
        return {s.text for s in suggester.candidates("Look at the ", options, WordStats())}

    assert "bcde" in words()
    assert suggester.scoring_s > 0 and suggester.node_s > 0  # measured
    suggester.scoring_s = 61.0  # the search gets half the budget, 30 s
    assert "bcde" in words()
    options = replace(options, word_budget_s=1e-6)
    suggester.scoring_s = 1e-6 / 2  # the search's half is spent before it starts
    assert words() == set()


def test_a_documents_first_word_request_is_not_cut_short(tmp_path):
    suggester = Suggester(LoadedModel.load(save_scripted_model(tmp_path, SHORT_FIRST)))
    options = SuggestOptions(search=SearchOptions(stop="word"), confidence=0.0, word_budget_s=1e-9)

    def words() -> set[str]:
        return {s.text for s in suggester.candidates("Look at the ", options, WordStats())}

    assert {"a", "bcde"} <= words()  # nothing timed yet: no limit
    assert words() == set()  # timed: the budget is spent before the search starts


def test_a_word_request_scores_the_dictionary_words_its_time_left_allows(tmp_path):
    suggester = Suggester(LoadedModel.load(save_scripted_model(tmp_path, SHORT_FIRST)))
    options = SuggestOptions(search=SearchOptions(stop="word"), confidence=0.0, word_budget_s=60.0)
    stats = WordStats()
    stats.add("the zebra, the zebra, the aardvark")

    def words() -> set[str]:
        return {s.text for s in suggester.candidates("Look at the ", options, stats)}

    assert {"a", "bcde", "zebra", "aardvark"} <= words()
    suggester.node_s = 1e-9  # time for any number of nodes (each request measures it anew)
    assert {"zebra", "aardvark"} <= words()
    suggester.node_s = 1e6  # time for none: the search's words are scored all the same
    scored = words()
    assert {"a", "bcde"} <= scored and not {"zebra", "aardvark"} & scored


def test_phrase_stop_includes_punctuation_and_line_stop_excludes_newline():
    blue = {"d": {" ": 0.9}, " ": {"b": 0.9}, "b": {"l": 0.9}, "l": {"u": 0.9}, "u": {"e": 0.9}}
    blue["e"] = {",": 0.9}
    [phrase] = completer(blue).complete("The sea is wide and", SearchOptions(stop="phrase"))
    assert phrase.text == " blue,"
    blue["e"] = {"\n": 0.9}
    [line] = completer(blue).complete("The sea is wide and", SearchOptions(stop="line"))
    assert line.text == " blue"
    endless = {"s": {"a": 0.9}, "a": {"b": 0.9}, "b": {"a": 0.9}}
    [line] = completer(endless).complete("The sea is", SearchOptions(stop="line", max_chars=20))
    assert line.text == "ab" * 10


# From "... a ", greedy takes "p" (0.6) into a byte that any byte may follow; the beams find
# "q" (0.4), after which "r" and "q" follow each other almost surely.
GREEDY_TRAP = {" ": {"p": 0.6, "q": 0.4}, "q": {"r": 0.99}, "r": {"q": 0.99}}


def test_search_is_deterministic_and_the_best_beam_beats_greedy():
    model = completer(GREEDY_TRAP)
    text = "In the forest the fox finds a "
    options = SearchOptions(stop="none", max_chars=12, candidates=1, beam_width=4)
    [first] = model.complete(text, options)
    assert first.text == "qr" * 6
    assert first.probability == pytest.approx(0.4 * 0.99**11, rel=1e-4)
    [again] = model.complete(text, options)  # from the warm cache: same text, same probability
    assert again.text == first.text
    assert again.probability == pytest.approx(first.probability, rel=1e-4)
    [greedy] = model.complete(text, SearchOptions(stop="none", max_chars=12, beam_width=1))
    assert greedy.text.startswith("p") and greedy.probability < first.probability


def test_should_stop_cuts_the_search_short():
    options = SearchOptions(stop="none", max_chars=30)
    assert completer(GREEDY_TRAP).complete("The dog ", options, should_stop=lambda: True) == []


def test_typing_along_a_suggestion_reuses_it_with_renormalised_probability():
    model = completer(LAZY)
    [first] = model.complete(LAZY_TEXT, SearchOptions())
    assert first.text == "zy"
    assert first.probability == pytest.approx(0.9**3, rel=1e-4)
    searches = model.searches
    [followed] = model.complete(LAZY_TEXT + "z", SearchOptions())
    assert model.searches == searches  # no new search: the rest of the suggestion stands
    assert followed.text == "y"
    assert followed.probability == pytest.approx(0.9**2, rel=1e-4)  # P("zy ") / P("z")
    fresh = completer(LAZY)
    logits = fresh.prepare(encode(LAZY_TEXT), room=32)[-1]
    p_typed = np.exp(log_softmax(logits)[ord("z")])
    assert followed.probability == pytest.approx(first.probability / p_typed, rel=1e-4)
    model.complete(LAZY_TEXT + "x", SearchOptions())  # diverging from the suggestion searches again
    assert model.searches == searches + 1


# After "The sea is": a space, then the beams' first word "qr" (0.4, against "p" at 0.6 and
# then "o" and "p" in turn at 0.5 each), then greedily "p" and "o" and "p"... The rest of each
# row's mass goes to a control byte, which the search never emits: no line ends early.
NARROWING = {
    "s": {" ": 0.9, "\x00": 0.1},
    " ": {"p": 0.6, "q": 0.4},
    "q": {"r": 1.0},
    "r": {" ": 1.0},
    "p": {"o": 0.5, "\x00": 0.5},
    "o": {"p": 0.5, "\x00": 0.5},
}


def test_a_line_suggestion_is_beam_searched_to_its_first_word_then_greedy():
    model = completer(NARROWING)
    [line] = model.complete("The sea is", SearchOptions(stop="line", max_chars=24))
    assert line.text == " qr " + "po" * 10  # a search that kept four beams would go on "qr qr"
    [greedy] = model.complete(
        "The sea is qr ", SearchOptions(stop="line", max_chars=20, beam_width=1)
    )
    assert greedy.text == "po" * 10


def test_a_spent_time_budget_ends_a_line_suggestion_at_its_last_whole_word():
    model = completer(NARROWING)
    [full] = model.complete("The sea is", SearchOptions(stop="line", max_chars=24))
    hurried = SearchOptions(stop="line", max_chars=24, time_budget_s=1e-9)
    [cut] = model.complete("The sea is", hurried)
    assert cut.text == " qr"
    assert cut.probability == pytest.approx(0.9 * 0.4, rel=1e-4)  # " qr "
    assert cut.probability > full.probability
    with pytest.raises(ValueError):
        SearchOptions(time_budget_s=0)
