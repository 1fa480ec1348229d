"""Model files: round trip, and every corrupt-file case gives one clear error naming the file."""

import json
import shutil

import numpy as np
import pytest

from ghostwrite.model import ModelFileError, load_model, save_model
from ghostwrite.model.files import META_FILE, WEIGHTS_FILE


@pytest.fixture
def model_dir(tiny_model_dir, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    return copy


def test_save_load_round_trip(model_dir, tmp_path):
    model = load_model(model_dir)
    again = save_model(tmp_path / "again", model.config, model.weights, model.card)
    reloaded = load_model(again)
    assert reloaded.config == model.config
    assert reloaded.card == model.card
    for name, value in model.weights.items():
        np.testing.assert_array_equal(reloaded.weights[name], value)


def test_save_replaces_an_existing_model_atomically(model_dir):
    model = load_model(model_dir)
    save_model(model_dir, model.config, model.weights, {"note": "second"})
    assert load_model(model_dir).card["note"] == "second"
    assert sorted(p.name for p in model_dir.parent.iterdir()) == ["model"]  # no leftovers


def test_save_refuses_weights_that_do_not_match_the_config(model_dir, tmp_path):
    model = load_model(model_dir)
    broken = dict(model.weights)
    broken.pop("wte.weight")
    with pytest.raises(ModelFileError, match="missing"):
        save_model(tmp_path / "broken", model.config, broken)
    assert not (tmp_path / "broken").exists()


def corrupt_truncated(d):
    data = (d / WEIGHTS_FILE).read_bytes()
    (d / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])


def corrupt_garbage(d):
    (d / WEIGHTS_FILE).write_bytes(b"\x00garbage" * 100)


def corrupt_json(d):
    (d / META_FILE).write_text("{not json")


def wrong_format(d):
    (d / META_FILE).write_text(json.dumps({"format": "something-else"}))


def mismatched_config(d):
    meta = json.loads((d / META_FILE).read_text())
    meta["config"]["n_emb"] *= 2
    (d / META_FILE).write_text(json.dumps(meta))


def unknown_config_key(d):
    meta = json.loads((d / META_FILE).read_text())
    meta["config"]["n_experts"] = 8
    (d / META_FILE).write_text(json.dumps(meta))


def pickle_instead(d):
    (d / WEIGHTS_FILE).write_bytes(b"\x80\x04\x95" + b"\x00" * 64)  # a pickle header


@pytest.mark.parametrize(
    ("damage", "file", "message"),
    [
        (lambda d: (d / WEIGHTS_FILE).unlink(), WEIGHTS_FILE, "missing"),
        (lambda d: (d / META_FILE).unlink(), META_FILE, "missing"),
        (corrupt_truncated, WEIGHTS_FILE, "corrupt or truncated"),
        (corrupt_garbage, WEIGHTS_FILE, "corrupt or truncated"),
        (pickle_instead, WEIGHTS_FILE, "corrupt or truncated"),
        (corrupt_json, META_FILE, "not valid JSON"),
        (wrong_format, META_FILE, "not a ghostwrite-model file"),
        (mismatched_config, WEIGHTS_FILE, "has shape"),
        (unknown_config_key, META_FILE, "unknown config keys"),
    ],
)
def test_each_corrupt_file_gives_one_clear_error(model_dir, damage, file, message):
    damage(model_dir)
    with pytest.raises(ModelFileError, match=message) as caught:
        load_model(model_dir)
    assert caught.value.path.name == file


def test_missing_directory_and_file_instead_of_directory(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelFileError, match="not a directory"):
        load_model(tmp_path / "file")


def test_non_finite_weights_are_refused(model_dir, tmp_path):
    model = load_model(model_dir)
    model.weights["ln_f.weight"][0] = np.nan
    with pytest.raises(ModelFileError, match="NaN"):
        save_model(tmp_path / "nan", model.config, model.weights)
