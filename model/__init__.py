"""ghostwrite.model: the GPT, its tokenizer, model files, cached inference and search.

The inference path (``Completer``) needs only numpy; commands that train with MLX call
``backend.setup_mlx()`` before importing ``gpt``.
"""

from .completer import Completer
from .config import PRESETS, GPTConfig
from .files import ModelFileError, ModelFiles, load_model, resolve_model_dir, save_model
from .search import Completion, SearchOptions, make_sampler, search

__all__ = [
    "PRESETS",
    "Completer",
    "Completion",
    "GPTConfig",
    "ModelFileError",
    "ModelFiles",
    "SearchOptions",
    "load_model",
    "make_sampler",
    "resolve_model_dir",
    "save_model",
    "search",
]
