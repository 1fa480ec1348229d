"""Process-wide numeric set-up for MLX on CPU, done in one place.

MLX's Linux CPU wheel links a reference BLAS (~5 GFLOP/s matmul). Loading an OpenBLAS with global
symbols *before* the first ``import mlx.core`` makes MLX resolve its cblas calls there (~35x
faster). Import this module before ``mlx.core`` (``ghostwrite.model`` does so on import).

Switches (environment variables):
  GHOSTWRITE_OPENBLAS=0   keep MLX's own BLAS (for comparison, or if the preload misbehaves)
  GHOSTWRITE_NATIVE_JIT=0 build ``mx.compile`` kernels with MLX's default (scalar) flags
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import sys
from pathlib import Path

log = logging.getLogger(__name__)

_openblas: ctypes.CDLL | None = None


def _enabled(name: str) -> bool:
    return os.environ.get(name, "1").strip().lower() not in ("0", "false", "no", "off")


def _find_openblas() -> Path | None:
    for entry in sys.path:
        candidate = Path(entry or ".") / "cmeel.prefix" / "lib" / "libopenblas.so.0"
        if candidate.is_file():
            return candidate
    return None


def preload_openblas() -> bool:
    """Load the cmeel OpenBLAS globally (Linux only). Returns whether it is active."""
    global _openblas
    if _openblas is not None:
        return True
    if not sys.platform.startswith("linux") or not _enabled("GHOSTWRITE_OPENBLAS"):
        return False
    if "mlx.core" in sys.modules:
        log.warning("mlx.core was imported before ghostwrite.model.backend; OpenBLAS not preloaded")
        return False
    path = _find_openblas()
    if path is None:
        log.info("cmeel-openblas not installed; MLX uses its bundled reference BLAS")
        return False
    try:
        _openblas = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    except OSError as err:
        # Usually libgfortran.so.5 is missing (Debian/Ubuntu: apt install libgfortran5).
        log.warning("OpenBLAS preload failed (%s); MLX matmuls use the slow reference BLAS", err)
        return False
    return True


def openblas_active() -> bool:
    return _openblas is not None


def set_blas_threads(threads: int) -> None:
    """Set the preloaded OpenBLAS thread count (inference wants 1: oversubscription collapses
    latency on small machines)."""
    if _openblas is not None:
        _openblas.openblas_set_num_threads(int(threads))


def blas_threads() -> int:
    """The preloaded OpenBLAS's thread count (0 when MLX uses its bundled BLAS)."""
    return int(_openblas.openblas_get_num_threads()) if _openblas is not None else 0


# Flags for the ``g++`` that builds ``mx.compile``'s CPU kernels. The kernels call MLX's
# header-only SIMD math (the exp in sigmoid and softmax) out of line, and the call binds to
# libmlx's own copy, built for baseline x86-64 with a software FMA (~12 ns an exp); a higher
# inlining limit pulls it into the kernel's loop, which then vectorizes.
NATIVE_JIT_FLAGS = (
    "-O3",
    "-march=native",
    "-fno-math-errno",
    "-fno-trapping-math",
    "--param=max-inline-insns-auto=200",
)


def native_jit_dir() -> Path:
    """The wrapper ``g++`` and MLX's kernel cache for ``NATIVE_JIT_FLAGS`` live here; the name
    carries a hash of the flags because MLX finds cached kernels by name, not by flags."""
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ghostwrite"
    tag = hashlib.sha256(" ".join(NATIVE_JIT_FLAGS).encode()).hexdigest()[:12]
    return root / f"native-jit-{tag}"


def _real_gxx(ours: Path) -> str | None:
    """``g++`` on PATH, skipping ghostwrite's own wrappers (a parent process may have put
    one, with other flags, first on PATH)."""
    own_root = ours.parent
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and own_root in Path(entry).parents:
            continue
        found = shutil.which("g++", path=entry or ".")
        if found:
            return found
    return None


def enable_native_jit() -> bool:
    """Make ``mx.compile`` build CPU kernels with ``NATIVE_JIT_FLAGS``.

    MLX compiles fused kernels with the ``g++`` on PATH and caches them by kernel name only, so
    the flags need a wrapper ``g++`` first on PATH and a JIT cache folder of their own (MLX puts
    its cache under ``$TMPDIR``, read at its first compile). Must run before the first compiled
    call. Returns whether the native flags are in effect.
    """
    if not sys.platform.startswith("linux") or not _enabled("GHOSTWRITE_NATIVE_JIT"):
        return False
    home = native_jit_dir()
    bin_dir = home / "bin"
    if os.environ.get("PATH", "").split(os.pathsep)[0] == str(bin_dir):
        return True
    real_gxx = _real_gxx(home)
    if real_gxx is None:
        log.warning("no g++ on PATH: mx.compile runs uncompiled (slow training)")
        return False
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "g++"
    script = f'#!/bin/sh\nexec "{real_gxx}" "$@" {" ".join(NATIVE_JIT_FLAGS)}\n'
    if not wrapper.exists() or wrapper.read_text() != script:
        tmp = wrapper.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(script)
        tmp.chmod(0o755)
        tmp.replace(wrapper)
    jit_tmp = home / "tmp"
    jit_tmp.mkdir(parents=True, exist_ok=True)
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["TMPDIR"] = str(jit_tmp)
    return True


# Interactive inference runs with one BLAS thread (numpy's and MLX's OpenBLAS both read this at
# load time); training raises MLX's count explicitly with ``set_blas_threads``.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
preload_openblas()
