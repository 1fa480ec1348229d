"""The GPT of "GPT from Scratch with MLX": char-level GPT-2 blocks in MLX, for training.

Token and learned position embeddings, pre-LayerNorm blocks of causal multi-head attention and a
4x MLP, final LayerNorm, LM head. GPT-2 init: N(0, 0.02), residual projections scaled by
1/sqrt(2 * n_layers), zero biases. Interactive decoding uses ``inference.Decoder`` (numpy, KV cache)
over the same weights.
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from .config import GPTConfig

GELU_COEFF = math.sqrt(2.0 / math.pi)


def gelu(x: mx.array) -> mx.array:
    """GPT-2's tanh GELU (numpy in ``inference`` computes the very same function)."""
    return 0.5 * x * (1.0 + mx.tanh(GELU_COEFF * (x + 0.044715 * x * x * x)))


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.n_emb, 3 * cfg.n_emb, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_emb, cfg.n_emb, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def __call__(self, x: mx.array) -> mx.array:
        B, T, C = x.shape
        q, k, v = mx.split(self.qkv(x), 3, axis=-1)  # 3 x (B, T, C)
        heads = (B, T, self.n_heads, C // self.n_heads)
        q, k, v = (a.reshape(heads).transpose(0, 2, 1, 3) for a in (q, k, v))  # (B, H, T, D)
        y = mx.fast.scaled_dot_product_attention(
            q, k, v, scale=1.0 / math.sqrt(C // self.n_heads), mask="causal"
        )  # (B, H, T, D)
        y = y.transpose(0, 2, 1, 3).reshape(B, T, C)
        return self.dropout(self.proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.n_emb, 4 * cfg.n_emb, bias=cfg.bias)
        self.proj = nn.Linear(4 * cfg.n_emb, cfg.n_emb, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def __call__(self, x: mx.array) -> mx.array:
        return self.dropout(self.proj(gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_emb, affine=True, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_emb, affine=True, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def __call__(self, x: mx.array) -> mx.array:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_emb)
        self.wpe = nn.Embedding(cfg.ctx_len, cfg.n_emb)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = [Block(cfg) for _ in range(cfg.n_layers)]
        self.ln_f = nn.LayerNorm(cfg.n_emb, affine=True, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_emb, cfg.vocab_size, bias=False)
        self._init_gpt2()

    def _init_gpt2(self) -> None:
        residual_std = 0.02 / math.sqrt(2 * self.cfg.n_layers)
        params = []
        for name, value in tree_flatten(self.parameters()):
            if any(part.startswith("ln") for part in name.split(".")):
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
        x = self.wte(tokens) + self.wpe.weight[:T]  # (B, T, C)
        x = self.dropout(x)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))  # (B, T, V)

    def num_params(self) -> int:
        return sum(v.size for _, v in tree_flatten(self.parameters()))


def cross_entropy(model: GPT, inputs: mx.array, targets: mx.array) -> mx.array:
    """Mean next-token loss in nats."""
    logits = model(inputs)
    return nn.losses.cross_entropy(logits, targets, reduction="mean")


def weights_to_numpy(model: GPT) -> dict[str, np.ndarray]:
    """Parameters by name (``blocks.0.attn.qkv.weight``...) as float32 numpy arrays."""
    return {
        name: np.array(value, dtype=np.float32) for name, value in tree_flatten(model.parameters())
    }


def load_weights(model: GPT, weights: dict[str, np.ndarray]) -> GPT:
    model.update(tree_unflatten([(name, mx.array(value)) for name, value in weights.items()]))
    return model
