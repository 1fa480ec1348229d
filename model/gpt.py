"""The GPT of "GPT from Scratch with MLX": char-level GPT-2 blocks in MLX, for training.

Token and learned position embeddings, pre-LayerNorm blocks of causal multi-head attention and a
4x MLP, final LayerNorm, LM head. GPT-2 init: N(0, 0.02), residual projections scaled by
1/sqrt(2 * n_layers), zero biases. ``GPTConfig``'s architecture options swap in rotary positions,
QK-norm, ReLU², value embeddings and soft-capped logits. Interactive decoding uses
``inference.Decoder`` (numpy, KV cache) over the same weights.
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from .config import GPTConfig
from .inference import GELU_COEFF, GELU_CUBIC, LN_EPS, rope_tables

DROPOUT_LEVELS = 1 << 16  # dropout masks compare 16 random bits per element


GELU_SIGMOID_SCALE = 2.0 * GELU_COEFF


def _gelu_gate(x: mx.array) -> mx.array:
    return mx.sigmoid(GELU_SIGMOID_SCALE * (x + GELU_CUBIC * x * x * x))


@mx.custom_function
def gelu(x: mx.array) -> mx.array:
    """GPT-2's tanh GELU (``inference`` computes it with tanh), as x * sigmoid(2u): the two are
    the same function (0.5 (1 + tanh u) = sigmoid(2u)), but MLX's compiled CPU kernels vectorize
    the exp inside sigmoid while tanh stays a scalar libm call (16 ns an element here)."""
    return x * _gelu_gate(x)


@gelu.vjp
def _gelu_vjp(
    primals: mx.array | tuple[mx.array], cotangent: mx.array, _output: mx.array
) -> tuple[mx.array]:
    # d/dx x s(u) = s + x s (1 - s) u': one fused pass over x and the cotangent, where autograd
    # makes several (51 ms forward + backward at 8192x512, against autograd's 93).
    x = primals[0] if isinstance(primals, tuple | list) else primals  # MLX passes a lone input bare
    s = _gelu_gate(x)
    du = GELU_SIGMOID_SCALE * (1.0 + (3.0 * GELU_CUBIC) * x * x)
    return (cotangent * (s + x * s * (1.0 - s) * du),)


def relu2(x: mx.array) -> mx.array:
    """relu(x)^2 (the nanoGPT speedrun's MLP activation)."""
    r = mx.maximum(x, 0.0)
    return r * r


@mx.custom_function
def softmax(x: mx.array) -> mx.array:
    """Softmax over the last axis from ops that ``mx.compile`` fuses into vectorized kernels
    (MLX's own softmax kernel is prebuilt without FMA or SIMD: 12 ns per exp on x86)."""
    e = mx.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@softmax.vjp
def _softmax_vjp(
    _primals: tuple[mx.array], cotangent: mx.array, output: mx.array
) -> tuple[mx.array]:
    # dL/dx = y * (g - sum(g * y)): two fused passes instead of autograd through exp and divide.
    return (output * (cotangent - (cotangent * output).sum(axis=-1, keepdims=True)),)


@mx.custom_function
def mean_cross_entropy(logits: mx.array, targets: mx.array) -> mx.array:
    """Mean of -log softmax(logits)[target] over rows: logits (N, V), targets (N,) int."""
    top = logits.max(axis=-1, keepdims=True)
    log_sum = mx.log(mx.exp(logits - top).sum(axis=-1)) + top[:, 0]
    picked = mx.take_along_axis(logits, targets[:, None], axis=-1)[:, 0]
    return (log_sum - picked).mean()


@mean_cross_entropy.vjp
def _mean_cross_entropy_vjp(
    primals: tuple[mx.array, mx.array], cotangent: mx.array, _output: mx.array
) -> tuple[mx.array, mx.array]:
    # (softmax - one_hot) / N in one fused pass; MLX's logsumexp and gather backward are slower.
    logits, targets = primals
    e = mx.exp(logits - logits.max(axis=-1, keepdims=True))
    probs = e / e.sum(axis=-1, keepdims=True)
    one_hot = targets[:, None] == mx.arange(logits.shape[-1])
    scale = cotangent / logits.shape[0]
    return (probs - one_hot) * scale, mx.zeros_like(targets)


@mx.custom_function
def normalize(x: mx.array) -> tuple[mx.array, mx.array]:
    """LayerNorm without its affine part over the last axis: (x - mean) / std, and 1 / std."""
    centered = x - x.mean(axis=-1, keepdims=True)
    inv_std = mx.rsqrt(mx.square(centered).mean(axis=-1, keepdims=True) + LN_EPS)
    return centered * inv_std, inv_std


@normalize.vjp
def _normalize_vjp(
    _primals: tuple[mx.array],
    cotangents: tuple[mx.array, mx.array],
    outputs: tuple[mx.array, mx.array],
) -> tuple[mx.array]:
    # dx = (g - mean(g) - xhat * mean(g * xhat)) / std; inv_std is an internal output.
    g, (xhat, inv_std) = cotangents[0], outputs
    mean_g = g.mean(axis=-1, keepdims=True)
    mean_gx = (g * xhat).mean(axis=-1, keepdims=True)
    return (inv_std * (g - mean_g - xhat * mean_gx),)


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` (same parameters) with a hand-written backward: on CPU
    ``mx.fast.layer_norm`` runs ordinary ops, and autograd through them makes more passes."""

    def __call__(self, x: mx.array) -> mx.array:
        y = normalize(x)[0]
        if "weight" in self:
            y = y * self.weight
        if "bias" in self:
            y = y + self.bias
        return y


class Dropout(nn.Module):
    """Inverted dropout whose masks compare 16 random bits per element with a threshold.

    ``nn.Dropout`` draws a float32 uniform per element: 32 bits of threefry and a conversion.
    Here the bits come from ``mx.random.split`` (which returns raw threefry words) under a key
    drawn from the global generator, so ``mx.random.seed`` and ``mx.compile``'s random state
    work as with ``nn.Dropout``, at half the generator time. The drop rate is p rounded to 1/65536.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self._threshold = round(p * DROPOUT_LEVELS)
        self._scale = DROPOUT_LEVELS / (DROPOUT_LEVELS - self._threshold)

    def __call__(self, x: mx.array) -> mx.array:
        if not self.training or self._threshold == 0:
            return x
        key = mx.random.randint(0, 1 << 24, (2,), dtype=mx.uint32)
        words = mx.random.split(key, -(-x.size // 4))  # (n, 2) uint32: 4 uint16 per row
        bits = mx.view(words, mx.uint16).reshape(-1)
        if bits.size != x.size:
            bits = bits[: x.size]
        keep = bits.reshape(x.shape) >= self._threshold
        return mx.where(keep, x * self._scale, 0.0)


def causal_mask(length: int) -> mx.array:
    """(T, T) additive mask: 0 where a position may attend, -inf after it."""
    future = mx.arange(length)[None, :] > mx.arange(length)[:, None]
    return mx.where(future, -mx.inf, 0.0).astype(mx.float32)


def rotate(x: mx.array, cos: mx.array, sin: mx.array) -> mx.array:
    """Rotary embedding of x (..., T, D): dimension i pairs with i + D/2 (the GPT-NeoX layout)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return mx.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


class RMSNorm(nn.Module):
    """x / rms(x) * weight over the last axis (for QK-norm: one gain per head dimension)."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.weight = mx.ones((dims,))

    def __call__(self, x: mx.array) -> mx.array:
        return x * mx.rsqrt(mx.square(x).mean(axis=-1, keepdims=True) + LN_EPS) * self.weight


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.n_emb, 3 * cfg.n_emb, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_emb, cfg.n_emb, bias=cfg.bias)
        self.dropout = Dropout(cfg.dropout)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(cfg.head_dim)
            self.k_norm = RMSNorm(cfg.head_dim)
        if cfg.value_embeds:
            self.value_embed = nn.Embedding(cfg.vocab_size, cfg.n_emb)
        self._rope = None
        if cfg.position == "rope":
            cos, sin = rope_tables(cfg.ctx_len, cfg.head_dim)
            self._rope = (mx.array(cos, dtype=mx.float32), mx.array(sin, dtype=mx.float32))

    def __call__(self, x: mx.array, one_hot: mx.array) -> mx.array:
        B, T, C = x.shape
        D = C // self.n_heads
        # (B, T, 3, H, D) -> 3 x (B, H, T, D)
        q, k, v = self.qkv(x).reshape(B, T, 3, self.n_heads, D).transpose(2, 0, 3, 1, 4)
        if "value_embed" in self:
            embedded = one_hot @ self.value_embed.weight  # (B, T, C)
            v = v + embedded.reshape(B, T, self.n_heads, D).transpose(0, 2, 1, 3)
        if "q_norm" in self:
            q, k = self.q_norm(q), self.k_norm(k)
        if self._rope is not None:
            cos, sin = self._rope[0][:T], self._rope[1][:T]
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        # mx.fast.scaled_dot_product_attention runs these very ops on CPU, but with MLX's
        # prebuilt scalar softmax; scaling q (B*T*C) is cheaper than scaling the scores.
        scores = (q * (1.0 / math.sqrt(D))) @ k.transpose(0, 1, 3, 2) + causal_mask(T)
        y = softmax(scores) @ v  # (B, H, T, D)
        y = y.transpose(0, 2, 1, 3).reshape(B, T, C)
        return self.dropout(self.proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.n_emb, 4 * cfg.n_emb, bias=cfg.bias)
        self.proj = nn.Linear(4 * cfg.n_emb, cfg.n_emb, bias=cfg.bias)
        self.dropout = Dropout(cfg.dropout)
        self.activation = gelu if cfg.activation == "gelu" else relu2

    def __call__(self, x: mx.array) -> mx.array:
        return self.dropout(self.proj(self.activation(self.fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1 = LayerNorm(cfg.n_emb, affine=True, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = LayerNorm(cfg.n_emb, affine=True, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def __call__(self, x: mx.array, one_hot: mx.array) -> mx.array:
        x = x + self.attn(self.ln1(x), one_hot)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_emb)
        if cfg.position == "learned":
            self.wpe = nn.Embedding(cfg.ctx_len, cfg.n_emb)
        self.dropout = Dropout(cfg.dropout)
        self.blocks = [Block(cfg) for _ in range(cfg.n_layers)]
        self.ln_f = LayerNorm(cfg.n_emb, affine=True, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_emb, cfg.vocab_size, bias=False)
        self._init_gpt2()

    def _init_gpt2(self) -> None:
        residual_std = 0.02 / math.sqrt(2 * self.cfg.n_layers)
        params = []
        for name, value in tree_flatten(self.parameters()):
            if any(part.startswith("ln") or part.endswith("_norm") for part in name.split(".")):
                new = mx.ones_like(value) if name.endswith("weight") else mx.zeros_like(value)
            elif name.endswith("bias"):
                new = mx.zeros_like(value)
            elif name.endswith(("attn.proj.weight", "mlp.proj.weight")):
                new = mx.random.normal(value.shape) * residual_std
            else:
                new = mx.random.normal(value.shape) * 0.02
            params.append((name, new))
        self.update(tree_unflatten(params))

    def __call__(self, tokens: mx.array) -> mx.array:
        """tokens (B, T) int -> logits (B, T, vocab). T must not exceed ctx_len."""
        T = tokens.shape[1]
        if self.cfg.ctx_len < T:
            # MLX does not bounds-check: a position past ctx_len would read out of bounds.
            raise ValueError(f"sequence of {T} exceeds the context length {self.cfg.ctx_len}")
        # Embeddings as one-hot matmuls: their backward is one BLAS call, where the gradient of
        # a gather is a scalar scatter-add.
        one_hot = (tokens[..., None] == mx.arange(self.cfg.vocab_size)).astype(mx.float32)
        x = one_hot @ self.wte.weight  # (B, T, C)
        if "wpe" in self:
            x = x + self.wpe.weight[:T]
        x = self.dropout(x)
        for block in self.blocks:
            x = block(x, one_hot)
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
        cap = self.cfg.logit_cap
        if cap > 0:
            # cap * tanh(z / cap) as a sigmoid, which compiled CPU kernels vectorize.
            logits = (2.0 * cap) * mx.sigmoid(logits * (2.0 / cap)) - cap
        return logits

    def num_params(self) -> int:
        return sum(v.size for _, v in tree_flatten(self.parameters()))


def cross_entropy(model: GPT, inputs: mx.array, targets: mx.array) -> mx.array:
    """Mean next-token loss in nats."""
    logits = model(inputs)
    return mean_cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def weights_to_numpy(model: GPT) -> dict[str, np.ndarray]:
    """Parameters by name (``blocks.0.attn.qkv.weight``...) as float32 numpy arrays."""
    return {
        name: np.array(value, dtype=np.float32) for name, value in tree_flatten(model.parameters())
    }


def load_weights(model: GPT, weights: dict[str, np.ndarray]) -> GPT:
    model.update(tree_unflatten([(name, mx.array(value)) for name, value in weights.items()]))
    return model
