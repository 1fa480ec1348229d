"""A model directory loaded for suggestions: its files, the numpy decoder over them, and the
signature that tells when the files on disk were replaced (the server's model watcher)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ghostwrite.model import files
from ghostwrite.model.inference import Decoder

Signature = tuple[tuple[int, int, int], ...]


def model_signature(directory: Path) -> Signature | None:
    """What changes when a model directory's files are replaced (None: no model there)."""
    try:
        stats = [(directory / name).stat() for name in (files.META_FILE, files.WEIGHTS_FILE)]
    except OSError:
        return None
    return tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in stats)


@dataclass(frozen=True)
class LoadedModel:
    files: files.ModelFiles
    decoder: Decoder
    path: Path
    signature: Signature | None

    @classmethod
    def load(cls, directory: Path) -> LoadedModel:
        signature = model_signature(directory)
        model_files = files.load_model(directory)
        return cls(model_files, Decoder(model_files), directory, signature)

    def summary(self) -> dict[str, Any]:
        return {**self.files.card, "path": str(self.path), "config": self.files.config.to_dict()}
