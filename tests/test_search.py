"""Samplers on hand-made logits; beam search on a real tiny model."""

import numpy as np
import pytest

from ghostwrite.model import Completer, SearchOptions, load_model, make_sampler


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


@pytest.fixture(scope="module")
def completer(tiny_model_dir):
    return Completer(load_model(tiny_model_dir))


def test_beam_search_returns_candidates_best_first(completer):
    results = completer.complete("The fox looks at the ", SearchOptions(candidates=3))
    assert len(results) == 3
    probabilities = [r.probability for r in results]
    assert probabilities == sorted(probabilities, reverse=True)
    assert len({r.text for r in results}) == 3
    assert all(0 < p <= 1 for p in probabilities)


def test_word_stop_ends_before_the_boundary(completer):
    [best] = completer.complete("The fox goes home to the for", SearchOptions(stop="word"))
    assert best.text.isalpha()


def test_phrase_stop_includes_punctuation_and_line_stop_excludes_newline(completer):
    [phrase] = completer.complete("The sea is wide and", SearchOptions(stop="phrase", max_chars=64))
    assert phrase.text[-1] in ".,;:!?" and phrase.text.count(",") + phrase.text.count(".") == 1
    [line] = completer.complete("The sea is", SearchOptions(stop="line", max_chars=20))
    assert "\n" not in line.text and len(line.text.encode()) <= 20


def test_search_is_deterministic_and_the_best_beam_beats_greedy(completer):
    text = "In the forest the fox finds a "
    options = SearchOptions(stop="none", max_chars=12, candidates=1, beam_width=4)
    first = completer.complete(text, options)
    again = completer.complete(text, options)  # from the warm cache: same text, same probability
    assert [c.text for c in again] == [c.text for c in first]
    assert again[0].probability == pytest.approx(first[0].probability, rel=1e-4)
    greedy = completer.complete(text, SearchOptions(stop="none", max_chars=12, beam_width=1))
    assert first[0].probability >= greedy[0].probability * (1 - 1e-5)  # float32 noise


def test_should_stop_cuts_the_search_short(completer):
    options = SearchOptions(stop="none", max_chars=30)
    assert completer.complete("The dog", options, should_stop=lambda: True) == []


def test_typing_along_a_suggestion_reuses_it_with_renormalised_probability(tiny_model_dir):
    from ghostwrite.model.inference import log_softmax
    from ghostwrite.model.tokenizer import encode

    completer = Completer(load_model(tiny_model_dir))
    text = "The fox goes home to the "
    [first] = completer.complete(text, SearchOptions())
    assert len(first.text) > 1
    searches = completer.searches
    [followed] = completer.complete(text + first.text[0], SearchOptions())
    assert completer.searches == searches  # no new search: the rest of the suggestion stands
    assert followed.text == first.text[1:]
    fresh = Completer(load_model(tiny_model_dir))
    logits = fresh.prepare(encode(text), room=32)[-1]
    p_typed = np.exp(log_softmax(logits)[ord(first.text[0])])
    assert followed.probability == pytest.approx(min(1.0, first.probability / p_typed), rel=1e-4)
    completer.complete(text + "x", SearchOptions())  # diverging from the suggestion searches again
    assert completer.searches == searches + 1


def test_a_line_suggestion_is_beam_searched_to_its_first_word_then_greedy(completer):
    text = "The sea is"  # short: neither search below slides the tiny model's 64-byte window
    [line] = completer.complete(text, SearchOptions(stop="line", max_chars=24))
    data = line.text.encode()
    first_word_end = next(
        i + 1
        for i in range(1, len(data))
        if chr(data[i - 1]).isalnum() and not (chr(data[i]).isalnum() or data[i] == ord("'"))
    )
    head, rest = line.text[:first_word_end], line.text[first_word_end:]
    greedy = completer.complete(
        text + head, SearchOptions(stop="line", max_chars=24 - first_word_end, beam_width=1)
    )
    assert rest and greedy[0].text == rest


def test_a_spent_time_budget_ends_a_line_suggestion_at_its_last_whole_word(completer):
    text = "The sea is"
    [full] = completer.complete(text, SearchOptions(stop="line", max_chars=24))
    hurried = SearchOptions(stop="line", max_chars=24, time_budget_s=1e-9)
    [cut] = completer.complete(text, hurried)
    assert full.text.startswith(cut.text) and len(cut.text) < len(full.text)
    assert cut.text.strip() and cut.text == cut.text.rstrip()
    following = full.text[len(cut.text)]
    assert not (following.isalnum() or following == "'")  # the cut is at a word's end
    assert cut.probability >= full.probability
    with pytest.raises(ValueError):
        SearchOptions(time_budget_s=0)
