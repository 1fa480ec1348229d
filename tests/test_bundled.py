"""The bundled default model ships inside the package, loads, and documents its training."""

import string

import numpy as np

from ghostwrite.model import Completer, SearchOptions, files, load_model
from ghostwrite.model.inference import log_softmax
from ghostwrite.model.words import is_word_byte


def test_bundled_model_loads_with_its_card():
    model = load_model(files.bundled_model_dir())
    card = model.card
    assert {book["role"] for book in card["trained_on"]} == {"training", "validation"}
    # Every source is named with where it came from and its licence, and what was held out is
    # the set the card's corpus summary names.
    assert all(book["source"].startswith("github.com/") for book in card["trained_on"])
    assert all(book["licence"] and book["licence"] != "unknown" for book in card["trained_on"])
    held_out = {book["file"] for book in card["trained_on"] if book["role"] == "validation"}
    assert held_out == set(card["corpus"]["val_file_names"])
    licences = " ".join(book["licence"] for book in card["trained_on"])
    assert "CC-BY" not in licences or any("CC-BY-4.0" in a for a in card["attribution"])
    assert card["training_stages"][-1]["val_loss"] == card["val_loss"]
    assert model.config.vocab_size == 256


def is_rest_of_a_word(text: str) -> bool:
    """What the word stop rule lets through: anything up to a word's first byte, then only
    word bytes and apostrophes."""
    data = text.encode()
    first = next((i for i, b in enumerate(data) if is_word_byte(b)), None)
    return first is not None and all(is_word_byte(b) or b == ord("'") for b in data[first:])


def test_bundled_model_completes_english():
    completer = Completer(load_model(files.bundled_model_dir()))
    text = "It was the best of times, it was the wor"
    results = completer.complete(text, SearchOptions(candidates=3))
    assert len(results) == 3
    assert all(is_rest_of_a_word(r.text) for r in results)
    probabilities = [r.probability for r in results]
    assert probabilities == sorted(probabilities, reverse=True)
    # English: after "wor" a word goes on (the model gives letters 0.9996 of its mass).
    next_byte = np.exp(log_softmax(completer.next_logits.astype(np.float64)))
    assert next_byte[[ord(c) for c in string.ascii_lowercase]].sum() > 0.9


def test_the_default_model_is_the_bundled_one_without_a_personal_model(tmp_path, monkeypatch):
    monkeypatch.delenv("GHOSTWRITE_MODEL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert files.default_model_dir() == files.bundled_model_dir()
    personal = files.user_model_dir()
    model = load_model(files.bundled_model_dir())
    files.save_model(personal, model.config, model.weights, {"note": "personal"})
    assert files.default_model_dir() == personal
