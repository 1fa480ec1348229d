from ghostwrite.model import Completer, SearchOptions, load_model


def test_tiny_model_learns_the_prose(tiny_model_dir):
    completer = Completer(load_model(tiny_model_dir))
    [best] = completer.complete("The quick brown fox jumps over the la", SearchOptions())
    assert best.text == "zy"
