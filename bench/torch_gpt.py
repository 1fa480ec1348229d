"""ghostwrite's GPT (``ghostwrite.model.gpt``) in PyTorch, for the speed comparison only.

Same blocks, shapes, init and dropout placement: token + position embeddings, pre-LayerNorm
causal self-attention and a 4x tanh-GELU MLP, final LayerNorm, LM head without bias; N(0, 0.02)
weights, residual projections scaled by 1/sqrt(2 * n_layers), zero biases.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ghostwrite.model.config import GPTConfig


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        c = cfg.n_emb
        self.n_heads, self.p = cfg.n_heads, cfg.dropout
        self.ln1 = nn.LayerNorm(c, bias=cfg.bias)
        self.qkv = nn.Linear(c, 3 * c, bias=cfg.bias)
        self.attn_proj = nn.Linear(c, c, bias=cfg.bias)
        self.ln2 = nn.LayerNorm(c, bias=cfg.bias)
        self.fc = nn.Linear(c, 4 * c, bias=cfg.bias)
        self.mlp_proj = nn.Linear(4 * c, c, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.drop(self.attn_proj(y.transpose(1, 2).reshape(B, T, C)))
        h = F.gelu(self.fc(self.ln2(x)), approximate="tanh")
        return x + self.drop(self.mlp_proj(h))


class TorchGPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_emb)
        self.wpe = nn.Embedding(cfg.ctx_len, cfg.n_emb)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.n_emb, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_emb, cfg.vocab_size, bias=False)
        residual_std = 0.02 / math.sqrt(2 * cfg.n_layers)
        for name, p in self.named_parameters():
            if ".ln" in name or name.startswith("ln"):
                continue  # LayerNorm: ones and zeros already
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif name.endswith(("attn_proj.weight", "mlp_proj.weight")):
                nn.init.normal_(p, 0.0, residual_std)
            else:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.wte(tokens) + self.wpe.weight[: tokens.shape[1]]
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))
