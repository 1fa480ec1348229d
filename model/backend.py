"""MLX's CPU numerics, set up by the commands that train or evaluate with MLX.

MLX's Linux CPU wheel links a reference BLAS (~5 GFLOP/s matmul). Loading an OpenBLAS with
global symbols *before* the first ``import mlx.core`` makes MLX resolve its ``cblas_*`` calls
there (~165 GFLOP/s on the 2-core development machine, ~10x faster training). ``setup_mlx`` does
that; ``ghostwrite train`` and ``ghostwrite eval`` call it first thing, and nothing happens on
import, so ``serve``, ``complete`` and ``info`` (numpy inference) never touch it.

Which OpenBLAS, and where its Fortran runtime comes from: the ``cmeel-openblas`` wheel ships
``libopenblas.so.0`` with plain ``cblas_*`` symbols, the names MLX calls, but it needs
``libgfortran.so.5``, which a bare Debian/Ubuntu machine lacks. numpy's wheel already carries a
libgfortran (``numpy.libs/libgfortran-<hash>.so.5*``, renamed by auditwheel, with its soname
renamed too, so the loader does not accept it for ``libgfortran.so.5`` as it is, and
``libopenblas``' ``$ORIGIN`` run path is not searched for a library opened with ``dlopen`` by
path here). ``setup_mlx`` therefore keeps a private copy of numpy's libgfortran in ghostwrite's
cache whose soname is set back to ``libgfortran.so.5`` (one string in the ELF dynamic string
table, patched in place), loads it and its libquadmath by path, then the OpenBLAS: the loader
matches the already-loaded soname. Weighed against the other ways:

- ``apt install libgfortran5``: needs root and a step outside ``pip install``; the system copy is
  the fallback when numpy's is missing (numpy built from source).
- ``scipy-openblas32``: bundles its runtime, but its symbols are prefixed (``scipy_cblas_sgemm``),
  so MLX's calls would need a compiled shim, and a compiler at install time.
- ``mkl``: plain ``cblas_*`` and no Fortran runtime, but ~200 MB of wheels under Intel's
  proprietary licence, for a 2-3 MB problem.
- numpy's own OpenBLAS (``libscipy_openblas64_``): ILP64 with prefixed symbols: MLX cannot call it.

The copy costs 2.8 MB once; it is rebuilt when numpy's file changes (its name carries a hash of
the source's path, size and mtime) and written to a temporary name, then renamed.

Switches (environment variables):
  GHOSTWRITE_OPENBLAS=0   keep MLX's own BLAS (for comparison, or if the preload misbehaves)
  GHOSTWRITE_NATIVE_JIT=0 build ``mx.compile`` kernels with MLX's default (scalar) flags
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import mmap
import os
import shutil
import struct
import sys
from pathlib import Path

log = logging.getLogger(__name__)

FORTRAN_SONAME = "libgfortran.so.5"
SLOW_BLAS_FIX = (
    "reinstall ghostwrite with pip (it brings cmeel-openblas and numpy's Fortran runtime), "
    "or install the system one (Debian/Ubuntu: apt install libgfortran5)"
)

_openblas: ctypes.CDLL | None = None
_fortran_runtime = ""  # which libgfortran the OpenBLAS uses: "system" or numpy's copy's path
_problem: str | None = None
_set_up = False


def _enabled(name: str) -> bool:
    return os.environ.get(name, "1").strip().lower() not in ("0", "false", "no", "off")


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ghostwrite"


def _on_path(relative: str) -> list[Path]:
    found = []
    for entry in sys.path:
        candidate = Path(entry or ".") / relative
        if candidate.exists():
            found.append(candidate)
    return found


def _find_openblas() -> Path | None:
    return next(iter(_on_path("cmeel.prefix/lib/libopenblas.so.0")), None)


def _numpy_fortran_runtime() -> tuple[Path, list[Path]] | None:
    """numpy's bundled libgfortran and the libraries it needs beside it (libquadmath)."""
    for libs in _on_path("numpy.libs"):
        fortran = sorted(libs.glob("libgfortran-*.so.5*"))
        if fortran:
            return fortran[0], sorted(libs.glob("libquadmath-*.so*"))
    return None


def set_soname(path: Path, soname: str) -> None:
    """Overwrite the DT_SONAME string of a little-endian ELF64 shared library in place (the new
    name must not be longer than the old one)."""
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as image:
        if image[:4] != b"\x7fELF" or image[4] != 2 or image[5] != 1:
            raise ValueError(f"{path} is not a little-endian ELF64 file")
        (phoff,) = struct.unpack_from("<Q", image, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", image, 0x36)
        loads: list[tuple[int, int, int]] = []  # (vaddr, file offset, size)
        dynamic: tuple[int, int] | None = None
        for i in range(phnum):
            p_type, _, offset, vaddr, _, filesz = struct.unpack_from(
                "<IIQQQQ", image, phoff + i * phentsize
            )
            if p_type == 1:  # PT_LOAD
                loads.append((vaddr, offset, filesz))
            elif p_type == 2:  # PT_DYNAMIC
                dynamic = (offset, filesz)
        if dynamic is None:
            raise ValueError(f"{path} has no dynamic section")
        tags: dict[int, int] = {}
        for i in range(dynamic[1] // 16):
            tag, value = struct.unpack_from("<qQ", image, dynamic[0] + 16 * i)
            tags.setdefault(tag, value)
        strtab, name_offset = tags.get(5), tags.get(14)  # DT_STRTAB, DT_SONAME
        if strtab is None or name_offset is None:
            raise ValueError(f"{path} has no soname")
        table = next((o + strtab - v for v, o, s in loads if v <= strtab < v + s), None)
        if table is None:
            raise ValueError(f"{path}: string table outside the loaded segments")
        start = table + name_offset
        end = image.find(b"\0", start)
        new = soname.encode()
        if end < 0 or len(new) > end - start:
            raise ValueError(f"{path}: soname {soname!r} is longer than the one it replaces")
        image[start : start + len(new) + 1] = new + b"\0"


def _private_fortran_runtime(source: Path) -> Path:
    """A copy of numpy's libgfortran named and sonamed ``libgfortran.so.5``, kept in the cache."""
    stat = source.stat()
    key = f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    folder = cache_root() / f"fortran-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    target = folder / FORTRAN_SONAME
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{FORTRAN_SONAME}.{os.getpid()}.tmp"
        try:
            shutil.copyfile(source, tmp)
            set_soname(tmp, FORTRAN_SONAME)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


def _load_openblas(path: Path) -> str | None:
    """Load the OpenBLAS globally with numpy's Fortran runtime (one path on every machine,
    whatever system packages it has), else the system's. Returns None on success, else why it
    failed."""
    global _openblas, _fortran_runtime
    numpy_error = "numpy carries no libgfortran"
    runtime = _numpy_fortran_runtime()
    if runtime is not None:
        fortran, needed = runtime
        try:
            for library in needed:
                ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
            private = _private_fortran_runtime(fortran)
            ctypes.CDLL(str(private), mode=ctypes.RTLD_GLOBAL)
            _openblas = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            _fortran_runtime = str(private)
            return None
        except (OSError, ValueError) as err:
            numpy_error = f"numpy's libgfortran did not load ({err})"
    try:
        _openblas = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    except OSError as err:
        return f"{numpy_error}; {err}"
    _fortran_runtime = "system"
    return None


def setup_mlx() -> str | None:
    """Give MLX a fast BLAS for CPU training (Linux). Call before the first ``import mlx.core``;
    later calls return the first call's answer. Returns None when MLX will run at full speed (or
    needs nothing here), else a one-line warning that says why training will be slow and how to
    fix it."""
    global _set_up, _problem
    if _set_up:
        return _problem
    _set_up = True
    if not sys.platform.startswith("linux") or not _enabled("GHOSTWRITE_OPENBLAS"):
        return None
    if "mlx.core" in sys.modules:
        _problem = "mlx was imported before the BLAS set-up; training uses the slow reference BLAS"
        return _problem
    # Idle OpenBLAS threads spin: start with one and let training raise it (set_blas_threads).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    path = _find_openblas()
    failure = "cmeel-openblas is not installed" if path is None else _load_openblas(path)
    if failure is not None:
        _problem = (
            f"MLX trains with its slow reference BLAS (~10x slower): {failure}; {SLOW_BLAS_FIX}"
        )
    return _problem


def openblas_active() -> bool:
    return _openblas is not None


def fortran_runtime() -> str:
    """Which libgfortran the preloaded OpenBLAS uses: "system", the path of ghostwrite's copy of
    numpy's, or "" when no OpenBLAS is loaded."""
    return _fortran_runtime


def set_blas_threads(threads: int) -> None:
    """Set the preloaded OpenBLAS thread count (training raises it; see TrainConfig)."""
    if _openblas is not None:
        _openblas.openblas_set_num_threads(int(threads))


def blas_threads() -> int:
    """The preloaded OpenBLAS's thread count (0 when MLX uses its bundled BLAS)."""
    return int(_openblas.openblas_get_num_threads()) if _openblas is not None else 0


def limit_numpy_blas_threads(threads: int = 1) -> bool:
    """Set the thread count of numpy's own OpenBLAS (inference at batch 1 wants one: a second
    thread only adds contention, and under load a 32-character suggestion's p99 went 26 ->
    255 ms). Returns whether numpy's OpenBLAS was found."""
    done = False
    for libs in _on_path("numpy.libs"):
        for library in libs.glob("libscipy_openblas*.so"):
            handle = ctypes.CDLL(str(library))  # already loaded by numpy: the same handle
            for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads"):
                setter = getattr(handle, name, None)
                if setter is not None:
                    setter(int(threads))
                    done = True
                    break
    return done


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
    root = cache_root()
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
