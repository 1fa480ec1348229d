"""Model files: a directory with ``model.safetensors`` (weights) and ``ghostwrite.json`` (config,
tokenizer, model card). Never pickle. Writes go to a temporary sibling and are renamed into place;
loading validates everything and reports one clear error naming the file and the problem."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save_file

from . import tokenizer
from .config import GPTConfig

WEIGHTS_FILE = "model.safetensors"
META_FILE = "ghostwrite.json"
FORMAT = "ghostwrite-model"
FORMAT_VERSION = 1
MAX_META_BYTES = 1 << 20
# The weights of a model are its parameters at up to 8 bytes each, plus the safetensors header.
MAX_HEADER_BYTES = 1 << 20


class ModelFileError(Exception):
    """A model directory or file that cannot be used; the message names the file and the fault."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


class ForeignFolder(ModelFileError):
    """A folder ghostwrite may not write into: it holds files ghostwrite did not write."""


class NotRegularFile(OSError):
    """A path that is a FIFO, a device, a socket or a folder where a file was expected."""


def open_regular(path: Path | str) -> BinaryIO:
    """Open a regular file for reading. The open never blocks (a FIFO with no writer would hang
    a plain ``open`` forever): anything but a regular file raises ``NotRegularFile``."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"not a regular file ({file_kind(mode)})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISREG, "a file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a file")


def check_writable_folder(directory: Path | str, owned: Iterable[str], what: str) -> None:
    """Refuse to write ``what`` into ``directory`` unless it is absent, empty, or already holds
    one of the ``owned`` files ghostwrite writes there: an existing folder of someone's files
    is never taken over (a model write replaces the whole folder)."""
    directory = Path(directory)
    try:
        mode = directory.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as err:
        raise ForeignFolder(directory, f"cannot write {what} here: {err.strerror}") from None
    if not stat.S_ISDIR(mode):
        raise ForeignFolder(directory, f"cannot write {what} here: it is {file_kind(mode)}")
    try:
        names = set(os.listdir(directory))
    except OSError as err:
        raise ForeignFolder(directory, f"cannot write {what} here: {err.strerror}") from None
    if names and not names & set(owned):
        raise ForeignFolder(
            directory,
            f"refusing to write {what} here: the folder holds files that are not ghostwrite's "
            "(give a new or empty folder, or one that holds a ghostwrite model)",
        )


def check_model_folder(directory: Path | str) -> None:
    """``check_writable_folder`` for a model directory (one with ``ghostwrite.json`` in it)."""
    check_writable_folder(directory, (META_FILE,), "a model")


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
        "ln_f.weight": (C,),
        "lm_head.weight": (V, C),
    }
    if cfg.position == "learned":
        shapes["wpe.weight"] = (cfg.ctx_len, C)
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
        if cfg.qk_norm:
            layer |= {"attn.q_norm.weight": (cfg.head_dim,), "attn.k_norm.weight": (cfg.head_dim,)}
        if cfg.value_embeds:
            layer["attn.value_embed.weight"] = (V, C)
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
    check_model_folder(directory)
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
        replace_directory(staging, directory, {WEIGHTS_FILE, META_FILE, *(extra_files or {})})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def replace_directory(new: Path, target: Path, owned: set[str]) -> None:
    """Move ``new`` to ``target``: a rename when ``target`` is absent, otherwise an atomic
    exchange (Linux), else two renames; ``target`` is never half-written. Of the previous
    folder only the ``owned`` names are deleted: anything else in it moves into the new one."""
    if not target.exists():
        os.replace(new, target)
        return
    if _exchange(new, target):
        _retire(new, target, owned)  # ``new`` now holds the previous model
        return
    # Between these two renames ``target`` is briefly absent (a crash there leaves the
    # previous model at ``old``).
    old = target.with_name(f".{target.name}.old.{os.getpid()}")
    os.replace(target, old)
    os.replace(new, target)
    _retire(old, target, owned)


def _retire(previous: Path, target: Path, owned: set[str]) -> None:
    """Delete the files ghostwrite wrote in the previous model folder; move every other entry
    (a user's file left next to a model) into ``target``, which holds only ``owned`` names."""
    for entry in os.scandir(previous):
        path = Path(entry.path)
        if entry.name in owned and not entry.is_dir(follow_symlinks=False):
            path.unlink()
        elif not (target / entry.name).exists():
            os.replace(path, target / entry.name)
    with contextlib.suppress(OSError):  # a name clash kept something there: leave it
        previous.rmdir()


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
        with open_regular(meta_path) as handle:
            raw = handle.read(MAX_META_BYTES + 1)
    except FileNotFoundError:
        raise ModelFileError(meta_path, "missing (is this a ghostwrite model directory?)") from None
    except PermissionError:
        raise ModelFileError(meta_path, "not readable (permission denied)") from None
    except NotRegularFile as err:
        raise ModelFileError(meta_path, str(err)) from None
    except OSError as err:
        raise ModelFileError(meta_path, f"cannot be read ({err.strerror or err})") from None
    if len(raw) > MAX_META_BYTES:
        raise ModelFileError(meta_path, f"larger than {MAX_META_BYTES >> 20} MiB")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
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
    limit = 8 * parameter_count(config) + MAX_HEADER_BYTES
    try:
        with open_regular(weights_path) as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise ModelFileError(weights_path, "larger than its config's tensors can be")
        raw = load(data)
    except FileNotFoundError:
        raise ModelFileError(weights_path, "missing") from None
    except PermissionError:
        raise ModelFileError(weights_path, "not readable (permission denied)") from None
    except NotRegularFile as err:
        raise ModelFileError(weights_path, str(err)) from None
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
