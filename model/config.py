"""Model configuration: one dataclass, named presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

POSITIONS = ("learned", "rope")
ACTIVATIONS = ("gelu", "relu2")
ROPE_BASE = 10000.0


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a character-level GPT-2 ("GPT from Scratch with MLX").

    The architecture options after ``bias`` default to GPT-2's (the article's model), so a model
    file whose config lacks them loads as the model it was trained as. The alternatives come from
    the nanoGPT speedrun (modded-nanogpt); bench/README.md measures each.
    """

    vocab_size: int = 256  # UTF-8 bytes: any text, and every model shares one vocabulary
    ctx_len: int = 128
    n_emb: int = 128
    n_heads: int = 4
    n_layers: int = 3
    dropout: float = 0.1
    bias: bool = True
    # "learned": a learned (ctx_len, C) position table added to the input; "rope": rotary
    # position embeddings on the queries and keys of every layer (no position table).
    position: str = "learned"
    qk_norm: bool = False  # RMS-normalise queries and keys per head, with learned gains
    activation: str = "gelu"  # the MLP's: "gelu" (tanh form) or "relu2" (relu(x)^2)
    value_embeds: bool = False  # every layer adds a learned per-token vector to its values
    logit_cap: float = 0.0  # > 0: logits soft-capped to cap * tanh(logits / cap)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "ctx_len", "n_emb", "n_heads", "n_layers"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_emb % self.n_heads:
            raise ValueError(f"n_emb ({self.n_emb}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.position not in POSITIONS:
            raise ValueError(f"position must be one of {', '.join(POSITIONS)}")
        if self.position == "rope" and self.head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head size, got {self.head_dim}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}")
        if not self.logit_cap >= 0.0:
            raise ValueError(f"logit_cap must be >= 0, got {self.logit_cap}")

    @property
    def head_dim(self) -> int:
        return self.n_emb // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTConfig:
        known = {f.name: f.type for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**data)

    def with_changes(self, **changes: Any) -> GPTConfig:
        return replace(self, **changes)


PRESETS: dict[str, GPTConfig] = {
    # For tests and smoke runs: trains in seconds.
    "tiny": GPTConfig(ctx_len=64, n_emb=32, n_heads=2, n_layers=2, dropout=0.0),
    # The article's reference model (trained there at batch 64, lr 1e-3).
    "article": GPTConfig(),
    # Longer context, wider and deeper: ~2.8x the parameters of "article", for faster machines.
    "small": GPTConfig(ctx_len=256, n_emb=192, n_heads=6, n_layers=4, dropout=0.1),
    "base": GPTConfig(ctx_len=256, n_emb=256, n_heads=8, n_layers=6, dropout=0.1),
}
