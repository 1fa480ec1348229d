"""The bundled default model ships inside the package, loads, and documents its training."""

from ghostwrite.model import Completer, SearchOptions, files, load_model


def test_bundled_model_loads_with_its_card():
    model = load_model(files.bundled_model_dir())
    card = model.card
    assert {book["role"] for book in card["trained_on"]} == {"training", "validation"}
    assert all(book["source"].startswith("github.com/GITenberg/") for book in card["trained_on"])
    assert card["training_stages"][-1]["val_loss"] == card["val_loss"]
    assert model.config.vocab_size == 256


def test_bundled_model_completes_english():
    completer = Completer(load_model(files.bundled_model_dir()))
    results = completer.complete(
        "It was the best of times, it was the wor", SearchOptions(candidates=3)
    )
    assert len(results) == 3
    assert all(r.text and r.text.isalpha() for r in results)  # the rest of a word, stop at its end
    assert results[0].probability >= results[-1].probability


def test_the_default_model_is_the_bundled_one_without_a_personal_model(tmp_path, monkeypatch):
    monkeypatch.delenv("GHOSTWRITE_MODEL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert files.default_model_dir() == files.bundled_model_dir()
    personal = files.user_model_dir()
    model = load_model(files.bundled_model_dir())
    files.save_model(personal, model.config, model.weights, {"note": "personal"})
    assert files.default_model_dir() == personal
