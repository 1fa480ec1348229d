"""Walking a folder for text: what training reads and the server's workspace dictionary indexes.

Skips what is not writing (hidden folders, version control, virtual environments, build outputs)
and counts every skip by reason; symlink loops, links that lead out of the folder and things that
are not regular files (FIFOs, devices, sockets) are skipped and counted, never opened.
"""

from __future__ import annotations

import errno
import fnmatch
import itertools
import os
import stat
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

VCS_DIRS = frozenset({".git", ".hg", ".svn", ".bzr", "_darcs", ".jj"})
VENV_DIRS = frozenset({"venv", ".venv", "virtualenv", "site-packages", "__pypackages__"})
BUILD_DIRS = frozenset(
    {
        "node_modules",
        "__pycache__",
        "build",
        "dist",
        "target",
        "_build",
        "out",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".eggs",
    }
)
GLOB_CHARS = frozenset("*?[")


def matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def skip_dir_reason(path: Path) -> str | None:
    name = path.name
    if name in VCS_DIRS:
        return "version-control folders"
    if name in VENV_DIRS or os.path.isfile(
        path / "pyvenv.cfg"
    ):  # False, not an error, if unreadable
        return "virtual environments"
    if name in BUILD_DIRS or name.endswith(".egg-info"):
        return "build-output folders"
    if name.startswith("."):
        return "hidden folders"
    return None


def fixed_part(given: str | Path) -> Path:
    """A path, or the part of a glob before its first wildcard (``notes/**/*.md``: ``notes``)."""
    path = Path(str(given)).expanduser()
    fixed = list(itertools.takewhile(lambda p: not GLOB_CHARS & set(p), path.parts))
    return Path(*fixed) if fixed else Path(".")


def files_under(
    root: Path, exclude: Sequence[str], skipped: Counter[str]
) -> Iterator[tuple[Path, str]]:
    """The regular files under ``root`` as (resolved path, path relative to root): the walk of
    training and of the server's workspace dictionary. Skipped folders are pruned; symlink loops,
    links that lead out of ``root`` and things that are not regular files (FIFOs, devices,
    sockets) are skipped and counted, never opened."""
    top = Path(os.path.realpath(root))
    for path, rel in _walk(root, exclude, skipped):
        try:
            real = path.resolve(strict=True)
        except RuntimeError:
            skipped["symlink loops"] += 1  # Path.resolve reports a loop this way
            continue
        except OSError as err:
            if err.errno == errno.ELOOP:
                skipped["symlink loops"] += 1
            elif path.is_symlink():
                skipped["broken links"] += 1
            else:
                skipped["unreadable files"] += 1
            continue
        if not real.is_relative_to(top):
            skipped["links leading out of the folder"] += 1
            continue
        try:
            mode = real.stat().st_mode
        except OSError:
            skipped["unreadable files"] += 1
            continue
        if not stat.S_ISREG(mode):
            skipped["not regular files"] += 1
            continue
        yield real, rel


def _walk(root: Path, exclude: Sequence[str], skipped: Counter[str]) -> Iterator[tuple[Path, str]]:
    """Files under ``root`` as (path, path relative to root), pruning skipped folders."""

    def unreadable(error: OSError) -> None:
        skipped["unreadable folders"] += 1

    for current, dirnames, filenames in os.walk(root, onerror=unreadable):
        here = Path(current)
        kept = []
        for d in sorted(dirnames):
            rel = (here / d).relative_to(root).as_posix()
            reason = skip_dir_reason(here / d)
            if reason is None and matches(rel, exclude):
                reason = "excluded by pattern"
            if reason is None:
                kept.append(d)
            else:
                skipped[reason] += 1
        dirnames[:] = kept  # os.walk descends only into what is left
        for name in sorted(filenames):
            if name.startswith("."):
                skipped["hidden files"] += 1
                continue
            yield here / name, (here / name).relative_to(root).as_posix()
