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


def enable_native_jit() -> bool:
    """Make ``mx.compile`` build CPU kernels with native vector flags.

    MLX compiles fused kernels with the ``g++`` on PATH and caches them by kernel name only, so
    the flags need a wrapper ``g++`` first on PATH and a JIT cache folder of their own (MLX puts
    its cache under ``$TMPDIR``). Must run before the first compiled call. Returns whether the
    native flags are in effect.
    """
    if not sys.platform.startswith("linux") or not _enabled("GHOSTWRITE_NATIVE_JIT"):
        return False
    real_gxx = shutil.which("g++")
    if real_gxx is None:
        log.warning("no g++ on PATH: mx.compile runs uncompiled (slow training)")
        return False
    if Path(real_gxx).parent.name == "ghostwrite-native-jit":
        return True
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ghostwrite"
    bin_dir = root / "ghostwrite-native-jit"
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "g++"
    script = (
        f'#!/bin/sh\nexec "{real_gxx}" "$@" -O3 -march=native -fno-math-errno -fno-trapping-math\n'
    )
    if not wrapper.exists() or wrapper.read_text() != script:
        tmp = wrapper.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(script)
        tmp.chmod(0o755)
        tmp.replace(wrapper)
    jit_tmp = root / "mlx-jit-native"
    jit_tmp.mkdir(parents=True, exist_ok=True)
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["TMPDIR"] = str(jit_tmp)
    return True


# Interactive inference runs with one BLAS thread (numpy's and MLX's OpenBLAS both read this at
# load time); training raises MLX's count explicitly with ``set_blas_threads``.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
preload_openblas()
