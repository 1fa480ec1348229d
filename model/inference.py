"""Cached inference in numpy over the trained weights.

At batch 1 the cost of a decode step is dispatch overhead, not arithmetic (a compiled MLX step is
~0.5 ms here; the numpy step below is a few dozen small BLAS calls). So interactive decoding runs
in numpy, with a KV cache that can be extended, rolled back, and shared as a prefix by a batch of
beams. Its logits equal the MLX forward pass (tests/test_inference.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import GPTConfig
from .files import ModelFiles

GELU_COEFF = math.sqrt(2.0 / math.pi)
LN_EPS = 1e-5  # mlx.nn.LayerNorm's default


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    centered = x - x.mean(axis=-1, keepdims=True)
    variance = np.mean(centered * centered, axis=-1, keepdims=True)
    y = centered * (weight / np.sqrt(variance + LN_EPS))
    return y if bias is None else y + bias


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(GELU_COEFF * (x + 0.044715 * x * x * x)))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@dataclass
class Layer:
    ln1_w: np.ndarray
    ln1_b: np.ndarray | None
    qkv_w: np.ndarray  # (C, 3C): pre-transposed so x @ w needs no copy
    qkv_b: np.ndarray | None
    proj_w: np.ndarray  # (C, C)
    proj_b: np.ndarray | None
    ln2_w: np.ndarray
    ln2_b: np.ndarray | None
    fc_w: np.ndarray  # (C, 4C)
    fc_b: np.ndarray | None
    out_w: np.ndarray  # (4C, C)
    out_b: np.ndarray | None


def _add(x: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    if bias is not None:
        x += bias
    return x


class KVCache:
    """Keys and values of one token sequence, preallocated to the context length.

    ``length`` positions are valid. ``update_and_fetch`` writes new positions for a layer and
    returns all valid ones; ``commit`` advances ``length`` once every layer has been written;
    ``truncate`` rolls back. Positions never pass ``ctx_len`` (MLX and numpy would otherwise read
    out of bounds or fail): callers slide the window by re-prefilling.
    """

    def __init__(self, cfg: GPTConfig) -> None:
        shape = (cfg.n_layers, cfg.n_heads, cfg.ctx_len, cfg.head_dim)
        self.keys = np.zeros(shape, dtype=np.float32)
        self.values = np.zeros(shape, dtype=np.float32)
        self.capacity = cfg.ctx_len
        self.length = 0

    def update_and_fetch(
        self, layer: int, keys: np.ndarray, values: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """keys/values (H, T, D) at positions length..length+T -> all (H, length+T, D)."""
        end = self.length + keys.shape[1]
        if end > self.capacity:
            raise IndexError(f"KV cache holds {self.capacity} positions; {end} requested")
        self.keys[layer, :, self.length : end] = keys
        self.values[layer, :, self.length : end] = values
        return self.keys[layer, :, :end], self.values[layer, :, :end]

    def commit(self, count: int) -> None:
        self.length += count

    def truncate(self, length: int) -> None:
        self.length = max(0, min(self.length, length))


class BeamCache:
    """Per-beam keys and values for positions after a shared prefix: (L, B, H, S, D)."""

    def __init__(self, cfg: GPTConfig, beams: int, steps: int) -> None:
        shape = (cfg.n_layers, beams, cfg.n_heads, steps, cfg.head_dim)
        self.keys = np.zeros(shape, dtype=np.float32)
        self.values = np.zeros(shape, dtype=np.float32)
        self.length = 0

    def reorder(self, parents: np.ndarray) -> None:
        """Beam i now continues beam parents[i]."""
        n = self.length
        self.keys[:, : len(parents), :, :n] = self.keys[:, parents, :, :n]
        self.values[:, : len(parents), :, :n] = self.values[:, parents, :, :n]


class Decoder:
    """The GPT forward pass in numpy, float32, for one sequence or a batch of beams."""

    def __init__(self, model: ModelFiles) -> None:
        cfg = model.config
        w = model.weights
        self.config = cfg
        self.scale = 1.0 / math.sqrt(cfg.head_dim)

        def get(name: str) -> np.ndarray | None:
            return np.ascontiguousarray(w[name], dtype=np.float32) if name in w else None

        def matrix(name: str) -> np.ndarray:
            return np.ascontiguousarray(w[name].T, dtype=np.float32)

        self.wte = get("wte.weight")
        self.wpe = get("wpe.weight")
        self.layers = [
            Layer(
                ln1_w=get(f"blocks.{i}.ln1.weight"),
                ln1_b=get(f"blocks.{i}.ln1.bias"),
                qkv_w=matrix(f"blocks.{i}.attn.qkv.weight"),
                qkv_b=get(f"blocks.{i}.attn.qkv.bias"),
                proj_w=matrix(f"blocks.{i}.attn.proj.weight"),
                proj_b=get(f"blocks.{i}.attn.proj.bias"),
                ln2_w=get(f"blocks.{i}.ln2.weight"),
                ln2_b=get(f"blocks.{i}.ln2.bias"),
                fc_w=matrix(f"blocks.{i}.mlp.fc.weight"),
                fc_b=get(f"blocks.{i}.mlp.fc.bias"),
                out_w=matrix(f"blocks.{i}.mlp.proj.weight"),
                out_b=get(f"blocks.{i}.mlp.proj.bias"),
            )
            for i in range(cfg.n_layers)
        ]
        self.ln_f_w = get("ln_f.weight")
        self.ln_f_b = get("ln_f.bias")
        self.lm_head = matrix("lm_head.weight")  # (C, V)

    def new_cache(self) -> KVCache:
        return KVCache(self.config)

    def _mlp(self, layer: Layer, x: np.ndarray) -> np.ndarray:
        h = layer_norm(x, layer.ln2_w, layer.ln2_b)
        h = gelu(_add(h @ layer.fc_w, layer.fc_b))
        return _add(h @ layer.out_w, layer.out_b)

    def _head(self, x: np.ndarray) -> np.ndarray:
        return layer_norm(x, self.ln_f_w, self.ln_f_b) @ self.lm_head

    def forward(self, cache: KVCache, tokens: np.ndarray, all_logits: bool = False) -> np.ndarray:
        """Append ``tokens`` (T,) to ``cache``; logits (V,) of the last one, or (T, V)."""
        cfg = self.config
        T = len(tokens)
        start = cache.length
        if T == 0:
            raise ValueError("forward needs at least one token")
        if start + T > cfg.ctx_len:
            raise IndexError(
                f"positions {start}..{start + T} pass the context length {cfg.ctx_len}"
            )
        H, D = cfg.n_heads, cfg.head_dim
        x = self.wte[tokens] + self.wpe[start : start + T]  # (T, C)
        mask = None
        if T > 1:  # position start+i may see keys up to start+i
            mask = np.triu(np.full((T, start + T), -np.inf, dtype=np.float32), k=start + 1)
        for i, layer in enumerate(self.layers):
            h = layer_norm(x, layer.ln1_w, layer.ln1_b)
            qkv = _add(h @ layer.qkv_w, layer.qkv_b).reshape(T, 3, H, D).transpose(1, 2, 0, 3)
            keys, values = cache.update_and_fetch(i, qkv[1], qkv[2])  # (H, S, D)
            scores = (qkv[0] @ keys.transpose(0, 2, 1)) * self.scale  # (H, T, S)
            if mask is not None:
                scores += mask
            y = (softmax(scores) @ values).transpose(1, 0, 2).reshape(T, cfg.n_emb)  # (T, C)
            x = x + _add(y @ layer.proj_w, layer.proj_b)
            x = x + self._mlp(layer, x)
        cache.commit(T)
        return self._head(x if all_logits else x[-1])

    def step_beams(self, prefix: KVCache, beams: BeamCache, tokens: np.ndarray) -> np.ndarray:
        """One decode step for B beams that share ``prefix``: tokens (B,) -> logits (B, V)."""
        cfg = self.config
        B = len(tokens)
        H, D = cfg.n_heads, cfg.head_dim
        P, s = prefix.length, beams.length
        if P + s >= cfg.ctx_len:
            raise IndexError(f"position {P + s} passes the context length {cfg.ctx_len}")
        x = self.wte[tokens] + self.wpe[P + s]  # (B, C)
        for i, layer in enumerate(self.layers):
            h = layer_norm(x, layer.ln1_w, layer.ln1_b)
            qkv = _add(h @ layer.qkv_w, layer.qkv_b).reshape(B, 3, H, 1, D)
            q = qkv[:, 0]  # (B, H, 1, D)
            beams.keys[i, :B, :, s] = qkv[:, 1, :, 0]
            beams.values[i, :B, :, s] = qkv[:, 2, :, 0]
            own_keys = beams.keys[i, :B, :, : s + 1]  # (B, H, s+1, D)
            own_values = beams.values[i, :B, :, : s + 1]
            shared = q @ prefix.keys[i, :, :P].transpose(0, 2, 1)  # (B, H, 1, P)
            own = q @ own_keys.transpose(0, 1, 3, 2)  # (B, H, 1, s+1)
            weights = softmax(np.concatenate([shared, own], axis=-1) * self.scale)
            y = weights[..., :P] @ prefix.values[i, :, :P] + weights[..., P:] @ own_values
            x = x + _add(y.reshape(B, cfg.n_emb) @ layer.proj_w, layer.proj_b)
            x = x + self._mlp(layer, x)
        beams.length += 1
        return self._head(x)
