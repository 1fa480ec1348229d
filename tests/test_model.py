"""The GPT, its numpy decoder and KV cache, and the model files."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_unflatten

from ghostwrite.model import PRESETS, Completer, GPTConfig, load_model, save_model
from ghostwrite.model.gpt import GPT, load_weights, weights_to_numpy
from ghostwrite.model.inference import BeamCache, Decoder, log_softmax
from ghostwrite.model.tokenizer import encode

CFG = GPTConfig(ctx_len=32, n_emb=32, n_heads=4, n_layers=2, dropout=0.0)
# Every architecture option away from GPT-2's at once (a cap as small as the initial logits,
# so that it bends them): the decoder must match MLX with each.
SPEEDRUN = CFG.with_changes(
    position="rope", qk_norm=True, activation="relu2", value_embeds=True, logit_cap=0.1
)


@pytest.fixture(scope="module", params=[CFG, SPEEDRUN], ids=["gpt2", "speedrun"])
def random_model(request: pytest.FixtureRequest) -> GPT:
    mx.random.seed(1)
    model = GPT(request.param)
    # Gains away from their initial ones, so that a gain applied in the wrong place shows.
    gains = [
        (name, mx.random.uniform(0.5, 1.5, value.shape))
        for name, value in tree_flatten(model.parameters())
        if name.endswith("_norm.weight")
    ]
    model.update(tree_unflatten(gains))
    model.eval()
    return model


@pytest.fixture(scope="module")
def random_model_dir(random_model: GPT, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("random") / "model"
    save_model(directory, random_model.cfg, weights_to_numpy(random_model), {"note": "random"})
    return directory


def mlx_logits(model: GPT, tokens: np.ndarray) -> np.ndarray:
    return np.array(model(mx.array(tokens[None].astype(np.int32))))[0]


def test_forward_shapes_and_parameter_count(random_model):
    logits = random_model(mx.zeros((3, 7), dtype=mx.int32))
    assert logits.shape == (3, 7, CFG.vocab_size)
    from ghostwrite.model.files import expected_shapes, parameter_count

    assert random_model.num_params() == parameter_count(random_model.cfg)
    shapes = {name: value.shape for name, value in tree_flatten(random_model.parameters())}
    assert shapes == expected_shapes(random_model.cfg)


def test_gpt2_init_scales_residual_projections():
    mx.random.seed(0)
    cfg = PRESETS["article"]
    weights = weights_to_numpy(GPT(cfg))
    residual = weights["blocks.0.mlp.proj.weight"].std()
    assert residual == pytest.approx(0.02 / np.sqrt(2 * cfg.n_layers), rel=0.05)
    assert weights["wte.weight"].std() == pytest.approx(0.02, rel=0.05)
    assert not weights["blocks.1.attn.qkv.bias"].any()
    assert np.all(weights["blocks.1.ln1.weight"] == 1)


def test_rejects_sequences_past_the_context(random_model):
    with pytest.raises(ValueError, match="context length"):
        random_model(mx.zeros((1, random_model.cfg.ctx_len + 1), dtype=mx.int32))


def test_cached_decoding_equals_full_forward(random_model, random_model_dir):
    tokens = encode("Ca\u00eft 😀 caches\r\n equal the full pass!")[: CFG.ctx_len]
    decoder = Decoder(load_model(random_model_dir))
    cache = decoder.new_cache()
    prefill = decoder.forward(cache, tokens[:9].astype(np.int64), all_logits=True)
    steps = [
        decoder.forward(cache, tokens[i : i + 1].astype(np.int64)) for i in range(9, len(tokens))
    ]
    cached = np.concatenate([prefill, np.stack(steps)])
    np.testing.assert_allclose(cached, mlx_logits(random_model, tokens), atol=1e-4)


def test_beam_steps_over_a_shared_prefix_equal_full_forward(random_model, random_model_dir):
    decoder = Decoder(load_model(random_model_dir))
    prefix_tokens = encode("shared prefix ")
    cache = decoder.new_cache()
    decoder.forward(cache, prefix_tokens.astype(np.int64))
    beams = BeamCache(random_model.cfg, beams=2, steps=4)
    branch_a, branch_b = encode("ab"), encode("xy")
    decoder.step_beams(cache, beams, np.array([branch_a[0], branch_b[0]]))
    logits = decoder.step_beams(cache, beams, np.array([branch_a[1], branch_b[1]]))
    for row, branch in enumerate((branch_a, branch_b)):
        full = mlx_logits(random_model, np.concatenate([prefix_tokens, branch]))[-1]
        np.testing.assert_allclose(logits[row], full, atol=1e-4)


def test_scoring_continuations_equals_full_forward(random_model, random_model_dir):
    decoder = Decoder(load_model(random_model_dir))
    prefix_tokens = encode("shared prefix ")
    cache = decoder.new_cache()
    next_logits = decoder.forward(cache, prefix_tokens.astype(np.int64))
    # Shared beginnings, a repeat and a prefix of another: one prefix-tree pass scores them all.
    continuations = [b"word", " é".encode(), b"x", b"words", b"wo", b"word", b"xylophone"]
    logp, after = decoder.score(cache, next_logits, continuations)
    tokens, lengths, along = decoder.logits_along(cache, continuations)
    assert cache.length == len(prefix_tokens)
    for row, data in enumerate(continuations):
        full = mlx_logits(random_model, np.concatenate([prefix_tokens, encode(data.decode())]))
        steps = full[len(prefix_tokens) - 1 :]  # logits before each continuation token, then after
        expected = sum(
            float(log_softmax(steps[t].astype(np.float64))[byte]) for t, byte in enumerate(data)
        )
        assert logp[row] == pytest.approx(expected, abs=1e-3)
        np.testing.assert_allclose(after[row], steps[-1], atol=1e-4)
        assert lengths[row] == len(data) and bytes(tokens[row, : len(data)].tolist()) == data
        np.testing.assert_allclose(along[row, : len(data)], steps[1:], atol=1e-4)


def test_cache_rollback_and_extension_equal_fresh_prefill(random_model, random_model_dir):
    model_files = load_model(random_model_dir)
    warm = Completer(model_files)
    warm.prepare(encode("hello world"), room=8)
    computed = warm.tokens_computed
    extended = warm.prepare(encode("hello world!"), room=8)[-1]
    assert warm.tokens_computed - computed == 1  # one typed character, one model step
    edited = warm.prepare(encode("hello there"), room=8)[-1]  # rolled back to "hello "
    fresh = Completer(model_files)
    np.testing.assert_allclose(edited, fresh.prepare(encode("hello there"), room=8)[-1], atol=1e-5)
    np.testing.assert_allclose(
        extended, fresh.prepare(encode("hello world!"), room=8)[-1], atol=1e-5
    )


def test_long_texts_slide_the_window_without_passing_the_context(random_model, random_model_dir):
    completer = Completer(load_model(random_model_dir))
    text = "".join(chr(ord("a") + i % 26) for i in range(200))
    for end in range(1, len(text)):
        logits = completer.prepare(encode(text[:end]), room=8)[-1]
        assert completer.cache.length <= CFG.ctx_len - 8
        assert np.all(np.isfinite(logits))
    window = encode(text)[completer.window_start : len(text) - 1]
    expected = mlx_logits(random_model, window)[-1]
    np.testing.assert_allclose(logits, expected, atol=1e-4)


def test_float16_round_trip_keeps_predictions(random_model, tmp_path):
    weights = weights_to_numpy(random_model)
    save_model(tmp_path / "half", random_model.cfg, weights, dtype=np.float16)
    loaded = load_model(tmp_path / "half")
    assert loaded.weights["wte.weight"].dtype == np.float32
    np.testing.assert_allclose(loaded.weights["wte.weight"], weights["wte.weight"], atol=1e-3)
    reloaded = load_weights(GPT(random_model.cfg), loaded.weights)
    tokens = encode("round trip")
    np.testing.assert_allclose(
        mlx_logits(reloaded, tokens), mlx_logits(random_model, tokens), atol=1e-2
    )


def test_a_config_without_architecture_options_is_gpt2():
    old = {k: v for k, v in CFG.to_dict().items() if k in ("ctx_len", "n_emb", "n_heads")}
    cfg = GPTConfig.from_dict(old)
    assert (cfg.position, cfg.qk_norm, cfg.activation) == ("learned", False, "gelu")
    assert (cfg.value_embeds, cfg.logit_cap) == (False, 0.0)
