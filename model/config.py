"""Model configuration: one dataclass, named presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a character-level GPT-2 ("GPT from Scratch with MLX")."""

    vocab_size: int = 256  # UTF-8 bytes: any text, and every model shares one vocabulary
    ctx_len: int = 128
    n_emb: int = 128
    n_heads: int = 4
    n_layers: int = 3
    dropout: float = 0.1
    bias: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "ctx_len", "n_emb", "n_heads", "n_layers"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_emb % self.n_heads:
            raise ValueError(f"n_emb ({self.n_emb}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

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
