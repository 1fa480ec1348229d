"""Cached inference in numpy over the trained weights.

At batch 1 the cost of a decode step is dispatch overhead, not arithmetic (a compiled MLX step is
~0.5 ms here; the numpy step below is a few dozen small BLAS calls). So interactive decoding runs
in numpy, with a KV cache that can be extended, rolled back, and shared as a prefix by a batch of
beams. Its logits equal the MLX forward pass (tests/test_model.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import ROPE_BASE, GPTConfig
from .files import ModelFiles

# The activation and normalisation constants, shared with the MLX model (gpt.py).
GELU_COEFF = math.sqrt(2.0 / math.pi)
GELU_CUBIC = 0.044715
LN_EPS = 1e-5  # mlx.nn.LayerNorm's default


def normalize(x: np.ndarray) -> np.ndarray:
    """LayerNorm without its affine part, which ``Decoder`` folds into the next matmul."""
    inv_n = 1.0 / x.shape[-1]
    centered = x - np.add.reduce(x, axis=-1, keepdims=True) * inv_n
    variance = np.add.reduce(centered * centered, axis=-1, keepdims=True) * inv_n
    return centered / np.sqrt(variance + LN_EPS)


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(GELU_COEFF * (x + GELU_CUBIC * x * x * x)))


def relu2(x: np.ndarray) -> np.ndarray:
    r = np.maximum(x, 0.0)
    return r * r


def rms_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.add.reduce(x * x, axis=-1, keepdims=True) / x.shape[-1] + LN_EPS)


def rope_tables(length: int, head_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin (length, head_dim / 2) of the rotary angles position * base^(-2i / head_dim),
    in float64 (the MLX model uses them too)."""
    inv_freq = ROPE_BASE ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = np.arange(length, dtype=np.float64)[:, None] * inv_freq[None, :]
    return np.cos(angles), np.sin(angles)


def interleave_halves(head_dim: int) -> np.ndarray:
    """The order 0, D/2, 1, D/2 + 1, ... of a head's dimensions: it puts the pairs that a
    rotary embedding rotates together side by side, so that float32 pairs can be viewed as
    complex64 and rotated with a single multiply."""
    half = head_dim // 2
    return np.stack([np.arange(half), np.arange(half) + half], axis=1).reshape(-1)


def rotate(x: np.ndarray, turns: np.ndarray) -> np.ndarray:
    """Rotary embedding of x (..., D) float32 in ``interleave_halves`` order by e^(i angle)
    (..., D/2) complex64: ``gpt.rotate`` up to that order of the dimensions."""
    return (np.ascontiguousarray(x).view(np.complex64) * turns).view(np.float32)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@dataclass
class Layer:
    """One block's weights, pre-transposed (``x @ w``) with each LayerNorm's scale and shift
    folded into the matmul after it, and the attention scale folded into the queries (into the
    query gain with QK-norm). With rotary embeddings each head's query and key dimensions are in
    ``interleave_halves`` order (attention scores do not depend on the order)."""

    qkv_w: np.ndarray  # (C, 3C)
    qkv_b: np.ndarray  # (3C,)
    proj_w: np.ndarray  # (C, C)
    proj_b: np.ndarray
    fc_w: np.ndarray  # (C, 4C)
    fc_b: np.ndarray
    out_w: np.ndarray  # (4C, C)
    out_b: np.ndarray
    qk_gain: np.ndarray | None = None  # (2, 1, D): query and key gains, with QK-norm
    value_embed: np.ndarray | None = None  # (V, H, D) with value embeddings


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
    """The GPT forward pass in numpy, float32, for one sequence or a batch of beams.

    At batch 1 each numpy call costs microseconds of overhead, more than its arithmetic, so the
    step uses as few calls as it can: folded LayerNorms, ``np.dot`` for 2-D products (cheaper to
    dispatch than ``@`` here)."""

    def __init__(self, model: ModelFiles) -> None:
        cfg = model.config
        w = {k: np.asarray(v, dtype=np.float64) for k, v in model.weights.items()}
        self.config = cfg
        C = cfg.n_emb

        def linear(name: str, width: int) -> tuple[np.ndarray, np.ndarray]:
            """MLX Linear (out, in) -> (in, out) matrix and a bias (zeros without biases)."""
            return w[f"{name}.weight"].T, w.get(f"{name}.bias", np.zeros(width))

        def after_norm(norm: str, matrix: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, ...]:
            """Fold LayerNorm's affine part: (xhat * g + b) @ W + c = xhat @ (g W) + (b W + c)."""
            gain = w[f"{norm}.weight"]
            shift = w.get(f"{norm}.bias", np.zeros(C))
            return gain[:, None] * matrix, shift @ matrix + bias

        def f32(*arrays: np.ndarray) -> list[np.ndarray]:
            return [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]

        attention_scale = 1.0 / math.sqrt(cfg.head_dim)
        query_scale = np.ones(3 * C)
        if not cfg.qk_norm:  # with QK-norm the scale goes into the query gain instead
            query_scale[:C] = attention_scale
        H, D = cfg.n_heads, cfg.head_dim
        head_order = np.arange(D)
        columns = np.arange(3 * C)
        if cfg.position == "rope":
            head_order = interleave_halves(D)
            within = (np.arange(H)[:, None] * D + head_order[None, :]).reshape(-1)
            columns = np.concatenate([within, C + within, np.arange(2 * C, 3 * C)])
        self.layers = []
        for i in range(cfg.n_layers):
            p = f"blocks.{i}."
            qkv_w, qkv_b = after_norm(p + "ln1", *linear(p + "attn.qkv", 3 * C))
            qkv_w, qkv_b = qkv_w[:, columns], qkv_b[columns]
            fc_w, fc_b = after_norm(p + "ln2", *linear(p + "mlp.fc", 4 * C))
            layer = Layer(
                *f32(qkv_w * query_scale, qkv_b * query_scale),
                *f32(*linear(p + "attn.proj", C)),
                *f32(fc_w, fc_b),
                *f32(*linear(p + "mlp.proj", C)),
            )
            if cfg.qk_norm:
                gains = [
                    w[p + "attn.q_norm.weight"][head_order] * attention_scale,
                    w[p + "attn.k_norm.weight"][head_order],
                ]
                (layer.qk_gain,) = f32(np.stack(gains)[:, None, :])
            if cfg.value_embeds:
                table = w[p + "attn.value_embed.weight"]
                (layer.value_embed,) = f32(table.reshape(cfg.vocab_size, cfg.n_heads, -1))
            self.layers.append(layer)
        (self.wte,) = f32(w["wte.weight"])
        self.wpe = f32(w["wpe.weight"])[0] if cfg.position == "learned" else None
        self.turns: np.ndarray | None = None  # (ctx_len, D/2) complex64 e^(i angle)
        if cfg.position == "rope":
            cos, sin = rope_tables(cfg.ctx_len, cfg.head_dim)
            self.turns = (cos + 1j * sin).astype(np.complex64)
        self.activation = gelu if cfg.activation == "gelu" else relu2
        self.head_w, self.head_b = f32(
            *after_norm("ln_f", w["lm_head.weight"].T, np.zeros(cfg.vocab_size))
        )

    def new_cache(self) -> KVCache:
        return KVCache(self.config)

    def _embed(self, tokens: np.ndarray, positions: slice | int) -> np.ndarray:
        """Token embeddings, plus the position table's rows when positions are learned."""
        x = self.wte[tokens]
        return x if self.wpe is None else x + self.wpe[positions]

    def _qkv(
        self,
        layer: Layer,
        x: np.ndarray,
        tokens: np.ndarray,
        positions: slice | np.ndarray | int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Queries (scaled), keys and values of rows x (N, C): 3 x (N, H, D). ``tokens`` (N,) are
        the rows' tokens, ``positions`` their positions (a slice or (N,)) or one for all rows."""
        N, H = len(x), self.config.n_heads
        qkv = (np.dot(normalize(x), layer.qkv_w) + layer.qkv_b).reshape(N, 3, H, -1)
        # Queries and keys go through QK-norm and the rotation together: (N, 2, H, D).
        qk, v = qkv[:, :2], qkv[:, 2]
        if layer.value_embed is not None:
            v = v + layer.value_embed[tokens]
        if layer.qk_gain is not None:
            qk = rms_normalize(qk) * layer.qk_gain
        if self.turns is not None:
            turns = self.turns[positions]
            if turns.ndim == 2:  # one position per row: broadcast over queries/keys and heads
                turns = turns[:, None, None]
            qk = rotate(qk, turns)
        return qk[:, 0], qk[:, 1], v

    def _mlp(self, layer: Layer, x: np.ndarray) -> np.ndarray:
        h = self.activation(np.dot(normalize(x), layer.fc_w) + layer.fc_b)
        return np.dot(h, layer.out_w) + layer.out_b

    def _head(self, x: np.ndarray) -> np.ndarray:
        logits = np.dot(normalize(x), self.head_w) + self.head_b
        cap = self.config.logit_cap
        return logits if cap <= 0 else cap * np.tanh(logits / cap)

    def forward(self, cache: KVCache, tokens: np.ndarray, all_logits: bool = False) -> np.ndarray:
        """Append ``tokens`` (T,) to ``cache``; logits (V,) of the last one, or (T, V)."""
        cfg = self.config
        T = len(tokens)
        start = cache.length
        if T == 0:
            raise ValueError("forward needs at least one token")
        if start + T > cfg.ctx_len:
            raise IndexError(f"positions up to {start + T} pass the context length {cfg.ctx_len}")
        positions = slice(start, start + T)
        x = self._embed(tokens, positions)  # (T, C)
        mask = None
        if T > 1:  # position start+i may see keys up to start+i
            mask = np.triu(np.full((T, start + T), -np.inf, dtype=np.float32), k=start + 1)
        for i, layer in enumerate(self.layers):
            q, k, v = (a.transpose(1, 0, 2) for a in self._qkv(layer, x, tokens, positions))
            keys, values = cache.update_and_fetch(i, k, v)  # (H, S, D) from 3 x (H, T, D)
            scores = q @ keys.transpose(0, 2, 1)  # (H, T, S)
            if mask is not None:
                scores += mask
            y = (softmax(scores) @ values).transpose(1, 0, 2).reshape(T, cfg.n_emb)  # (T, C)
            x = x + (np.dot(y, layer.proj_w) + layer.proj_b)
            x = x + self._mlp(layer, x)
        cache.commit(T)
        return self._head(x if all_logits else x[-1])

    def step_beams(self, prefix: KVCache, beams: BeamCache, tokens: np.ndarray) -> np.ndarray:
        """One decode step for B beams that share ``prefix``: tokens (B,) -> logits (B, V)."""
        cfg = self.config
        B = len(tokens)
        P, s = prefix.length, beams.length
        if P + s >= cfg.ctx_len:
            raise IndexError(f"position {P + s} passes the context length {cfg.ctx_len}")
        x = self._embed(tokens, P + s)  # (B, C)
        for i, layer in enumerate(self.layers):
            q, k, v = self._qkv(layer, x, tokens, P + s)  # 3 x (B, H, D)
            q = q[:, :, None]  # (B, H, 1, D)
            beams.keys[i, :B, :, s] = k
            beams.values[i, :B, :, s] = v
            shared = q @ prefix.keys[i, :, :P].transpose(0, 2, 1)  # (B, H, 1, P)
            own = q @ beams.keys[i, :B, :, : s + 1].transpose(0, 1, 3, 2)  # (B, H, 1, s+1)
            weights = softmax(np.concatenate([shared, own], axis=-1))
            y = weights[..., :P] @ prefix.values[i, :, :P]
            y += weights[..., P:] @ beams.values[i, :B, :, : s + 1]  # (B, H, 1, D)
            x = x + (np.dot(y.reshape(B, cfg.n_emb), layer.proj_w) + layer.proj_b)
            x = x + self._mlp(layer, x)
        beams.length += 1
        return self._head(x)

    def logits_along(
        self, prefix: KVCache, continuations: list[bytes]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One batched pass over continuations of the text in ``prefix``: their tokens (N, L)
        padded with zeros, their lengths (N,), and the logits after each of their tokens
        (N, L, V; padding repeats a row's last). The prefix cache is left as it was."""
        trie = Trie(continuations)
        node_logits = self._trie_logits(prefix, trie)
        lengths = np.array([len(c) for c in continuations])
        L = int(lengths.max())
        tokens = np.zeros((len(continuations), L), dtype=np.int64)
        paths = np.zeros((len(continuations), L), dtype=np.int64)
        for row, (data, path) in enumerate(zip(continuations, trie.paths, strict=True)):
            tokens[row, : len(data)] = np.frombuffer(data, dtype=np.uint8)
            paths[row, : len(path)] = path
            paths[row, len(path) :] = path[-1]
        return tokens, lengths, node_logits[paths]

    def score(
        self, prefix: KVCache, next_logits: np.ndarray, continuations: list[bytes]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Log-probabilities of whole continuations of the text in ``prefix`` (whose next-token
        logits are ``next_logits``), all in one batched pass: (N,) log P(continuation), and the
        (N, V) logits of the token after each. The prefix cache is left as it was."""
        trie = Trie(continuations)
        node_logits = self._trie_logits(prefix, trie)  # (M, V): after each node
        # Each node's token under the distribution after its parent (the prefix for the roots).
        before = np.concatenate([next_logits[None], node_logits])[trie.parents + 1]
        logp = log_softmax(before.astype(np.float64))[np.arange(len(trie.tokens)), trie.tokens]
        totals = np.array([logp[path].sum() for path in trie.paths])
        return totals, node_logits[[path[-1] for path in trie.paths]]

    def _trie_logits(self, prefix: KVCache, trie: Trie) -> np.ndarray:
        """Logits (M, V) after each of the trie's M nodes, in one pass over the nodes: each
        node attends to the prefix and to its own ancestors (tree attention), so continuations
        that share a beginning compute it once."""
        cfg = self.config
        P, M = prefix.length, len(trie.tokens)
        if M == 0 or min(len(path) for path in trie.paths) == 0:
            raise ValueError("continuations must not be empty")
        if P + int(trie.depths.max()) + 1 > cfg.ctx_len:
            raise IndexError(f"continuations pass the context length {cfg.ctx_len}")
        positions = P + trie.depths
        x = self._embed(trie.tokens, positions)  # (M, C)
        mask = np.where(trie.ancestry(), np.float32(0.0), np.float32(-np.inf))  # (M, M)
        for i, layer in enumerate(self.layers):
            q, k, v = (
                a.transpose(1, 0, 2) for a in self._qkv(layer, x, trie.tokens, positions)
            )  # 3 x (H, M, D)
            shared = q @ prefix.keys[i, :, :P].transpose(0, 2, 1)  # (H, M, P)
            own = q @ k.transpose(0, 2, 1) + mask  # (H, M, M)
            weights = softmax(np.concatenate([shared, own], axis=-1))
            y = weights[..., :P] @ prefix.values[i, :, :P] + weights[..., P:] @ v  # (H, M, D)
            y = y.transpose(1, 0, 2).reshape(M, cfg.n_emb)
            x = x + (np.dot(y, layer.proj_w) + layer.proj_b)
            x = x + self._mlp(layer, x)
        return self._head(x)


class Trie:
    """Continuations as a prefix tree of their tokens: shared beginnings are one node.

    Nodes are numbered so that a parent comes before its children: ``tokens`` (M,), ``parents``
    (M,; -1 for the first token of a continuation), ``depths`` (M,; 0 for the first token), and
    per continuation the ``paths`` of its nodes, first token to last."""

    def __init__(self, continuations: list[bytes]) -> None:
        index: dict[tuple[int, int], int] = {}
        tokens: list[int] = []
        parents: list[int] = []
        depths: list[int] = []
        self.paths: list[list[int]] = []
        for data in continuations:
            node, path = -1, []
            for byte in data:
                child = index.get((node, byte))
                if child is None:
                    child = index[(node, byte)] = len(tokens)
                    tokens.append(byte)
                    parents.append(node)
                    depths.append(depths[node] + 1 if node >= 0 else 0)
                node = child
                path.append(node)
            self.paths.append(path)
        self.tokens = np.array(tokens, dtype=np.int64)
        self.parents = np.array(parents, dtype=np.int64)
        self.depths = np.array(depths, dtype=np.int64)

    def ancestry(self) -> np.ndarray:
        """(M, M) bool: row i is true at i and at each of its ancestors."""
        M = len(self.tokens)
        seen = np.eye(M, dtype=bool)
        for node in range(M):
            parent = self.parents[node]
            if parent >= 0:
                seen[node] |= seen[parent]
        return seen
