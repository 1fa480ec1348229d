"""Model files: a directory with ``model.safetensors`` (weights) and ``ghostwrite.json`` (config,
tokenizer, model card). Never pickle. Writes go to a temporary sibling and are renamed into place;
loading validates everything and reports one clear error naming the file and the problem."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from . import tokenizer
from .config import GPTConfig

WEIGHTS_FILE = "model.safetensors"
META_FILE = "ghostwrite.json"
FORMAT = "ghostwrite-model"
FORMAT_VERSION = 1


class ModelFileError(Exception):
    """A model directory or file that cannot be used; the message names the file and the fault."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


@dataclass
class ModelFiles:
    """A loaded model: config, float32 numpy weights (MLX parameter names) and its card."""

    config: GPTConfig
    weights: dict[str, np.ndarray]
    card: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def version() -> str:
    try:
        return metadata.version("ghostwrite")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def expected_shapes(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter the GPT has, with its shape: the contract between ``gpt`` and files."""
    C, V = cfg.n_emb, cfg.vocab_size
    shapes: dict[str, tuple[int, ...]] = {
        "wte.weight": (V, C),
        "wpe.weight": (cfg.ctx_len, C),
        "ln_f.weight": (C,),
        "lm_head.weight": (V, C),
    }
    if cfg.bias:
        shapes["ln_f.bias"] = (C,)
    for i in range(cfg.n_layers):
        p = f"blocks.{i}."
        layer = {
            "ln1.weight": (C,),
            "ln2.weight": (C,),
            "attn.qkv.weight": (3 * C, C),
            "attn.proj.weight": (C, C),
            "mlp.fc.weight": (4 * C, C),
            "mlp.proj.weight": (C, 4 * C),
        }
        if cfg.bias:
            layer |= {
                "ln1.bias": (C,),
                "ln2.bias": (C,),
                "attn.qkv.bias": (3 * C,),
                "attn.proj.bias": (C,),
                "mlp.fc.bias": (4 * C,),
                "mlp.proj.bias": (C,),
            }
        shapes |= {p + k: v for k, v in layer.items()}
    return shapes


def parameter_count(cfg: GPTConfig) -> int:
    return sum(int(np.prod(s)) for s in expected_shapes(cfg).values())


def save_model(
    directory: Path | str,
    config: GPTConfig,
    weights: dict[str, np.ndarray],
    card: dict[str, Any] | None = None,
    dtype: np.dtype | type = np.float32,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write a complete model directory atomically (a crash leaves the old one untouched).

    ``extra_files`` (name -> content) go into the directory too, e.g. training's metrics.jsonl.
    """
    directory = Path(directory)
    _check_weights(directory / WEIGHTS_FILE, config, weights)
    card = dict(card or {})
    card.setdefault("parameters", parameter_count(config))
    card.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    card.setdefault("ghostwrite_version", version())
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "tokenizer": {"type": tokenizer.NAME, "vocab_size": tokenizer.VOCAB_SIZE},
        "card": card,
    }
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        arrays = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in weights.items()}
        save_file(arrays, str(staging / WEIGHTS_FILE), metadata={"format": FORMAT})
        (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        for name, content in (extra_files or {}).items():
            if name in (WEIGHTS_FILE, META_FILE) or Path(name).name != name:
                raise ValueError(f"invalid extra model file name {name!r}")
            (staging / name).write_bytes(content)
        for name in (WEIGHTS_FILE, META_FILE):
            _fsync(staging / name)
        load_model(staging)  # never put a model in place that would not load
        replace_directory(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def replace_directory(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``: a rename when ``target`` is absent, otherwise an atomic
    exchange (Linux), else two renames; ``target`` is never half-written."""
    if not target.exists():
        os.replace(new, target)
        return
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # it now holds the previous model
        return
    # Between these two renames ``target`` is briefly absent (a crash there leaves the
    # previous model at ``old``).
    old = target.with_name(f".{target.name}.old.{os.getpid()}")
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (renameat2 RENAME_EXCHANGE); False where unsupported."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def read_meta(directory: Path | str) -> dict[str, Any]:
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not directory.exists():
        raise ModelFileError(directory, "model directory does not exist")
    if not directory.is_dir():
        raise ModelFileError(directory, "not a directory (a model is a directory)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(meta_path, "missing (is this a ghostwrite model directory?)") from None
    except PermissionError:
        raise ModelFileError(meta_path, "not readable (permission denied)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(meta_path, f"not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(meta_path, f"not a {FORMAT} file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            meta_path,
            f"format version {meta.get('format_version')!r}, expected {FORMAT_VERSION}",
        )
    tok = meta.get("tokenizer")
    if tok != {"type": tokenizer.NAME, "vocab_size": tokenizer.VOCAB_SIZE}:
        raise ModelFileError(meta_path, f"unsupported tokenizer {tok!r}")
    try:
        meta["config"] = GPTConfig.from_dict(meta.get("config") or {})
    except (TypeError, ValueError) as err:
        raise ModelFileError(meta_path, f"invalid config ({err})") from None
    if meta["config"].vocab_size != tokenizer.VOCAB_SIZE:
        raise ModelFileError(meta_path, "config vocab_size does not match the tokenizer")
    if not isinstance(meta.get("card", {}), dict):
        raise ModelFileError(meta_path, "card must be an object")
    return meta


def load_model(directory: Path | str) -> ModelFiles:
    """Load and validate a model directory."""
    directory = Path(directory)
    meta = read_meta(directory)
    config: GPTConfig = meta["config"]
    weights_path = directory / WEIGHTS_FILE
    try:
        raw = load_file(str(weights_path))
    except FileNotFoundError:
        raise ModelFileError(weights_path, "missing") from None
    except PermissionError:
        raise ModelFileError(weights_path, "not readable (permission denied)") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(weights_path, f"corrupt or truncated safetensors ({err})") from None
    weights = {k: v.astype(np.float32, copy=False) for k, v in raw.items()}
    _check_weights(weights_path, config, weights)
    return ModelFiles(config=config, weights=weights, card=meta.get("card", {}), path=directory)


def _check_weights(path: Path, config: GPTConfig, weights: dict[str, np.ndarray]) -> None:
    expected = expected_shapes(config)
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise ModelFileError(
            path, f"tensors do not match the config (missing {missing[:3]}, unexpected {extra[:3]})"
        )
    for name, shape in expected.items():
        if tuple(weights[name].shape) != shape:
            raise ModelFileError(
                path, f"tensor {name} has shape {tuple(weights[name].shape)}, expected {shape}"
            )
        if not np.all(np.isfinite(weights[name])):
            raise ModelFileError(path, f"tensor {name} holds NaN or infinite values")


def user_model_dir() -> Path:
    """Where ``ghostwrite train`` writes by default, and where the server looks first."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "ghostwrite" / "model"


def bundled_model_dir() -> Path:
    return Path(str(package_files("ghostwrite.model") / "bundled"))


def default_model_dir() -> Path:
    """``$GHOSTWRITE_MODEL``, else the user's trained model, else the bundled one."""
    if env := os.environ.get("GHOSTWRITE_MODEL"):
        return Path(env).expanduser()
    personal = user_model_dir()
    if present(personal / META_FILE):
        return personal
    return bundled_model_dir()


def present(path: Path) -> bool:
    """Whether something is at ``path``. One we may not look at counts as there: loading it then
    says why it cannot be read, where ``Path.exists`` would raise."""
    try:
        path.stat()
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def resolve_model_dir(name: str | Path | None) -> Path:
    """A user-given model: a path, or the words ``bundled``/``personal``; None means default."""
    if name is None or str(name) == "":
        return default_model_dir()
    if str(name) == "bundled":
        return bundled_model_dir()
    if str(name) == "personal":
        return user_model_dir()
    return Path(name).expanduser()
