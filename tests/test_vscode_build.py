"""The VS Code extension builds from its lockfile, passes its unit tests and packages to a .vsix.

The build runs in a copy under ``build/vscode`` (so the source tree stays clean); its
``node_modules`` is kept between runs and reinstalled with ``npm ci`` whenever the lockfile
changes. Without npm the build tests are skipped with a message, never silently.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "editors" / "vscode"
BUILD = ROOT / "build" / "vscode"
GENERATED = {"node_modules", "out", "ghostwrite.vsix"}
PROSE_LANGUAGES = ("plaintext", "markdown", "git-commit", "latex", "restructuredtext", "scminput")
LOCK_STAMP = "node_modules/.ghostwrite-lock-sha256"

needs_npm = pytest.mark.skipif(
    shutil.which("npm") is None,
    reason="npm not found: the VS Code extension's npm ci/compile/package steps were NOT run",
)


def npm(*args: str) -> str:
    result = subprocess.run(
        ["npm", *args], cwd=BUILD, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"npm {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def build() -> Path:
    """A compiled copy of the extension, after ``npm ci`` when the lockfile is new."""
    BUILD.mkdir(parents=True, exist_ok=True)
    for entry in BUILD.iterdir():
        if entry.name != "node_modules":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for entry in SOURCE.iterdir():
        if entry.name not in GENERATED:
            copy = shutil.copytree if entry.is_dir() else shutil.copy2
            copy(entry, BUILD / entry.name)
    lock = hashlib.sha256((BUILD / "package-lock.json").read_bytes()).hexdigest()
    stamp = BUILD / LOCK_STAMP
    if not stamp.exists() or stamp.read_text() != lock:
        npm("ci", "--no-audit", "--no-fund", "--prefer-offline")
        stamp.write_text(lock)
    npm("run", "compile")
    return BUILD


@needs_npm
def test_compiles_and_passes_unit_tests(build: Path) -> None:
    assert (build / "out" / "extension.js").is_file()
    output = npm("test")
    assert "# fail 0" in output
    assert "# pass 0" not in output


@needs_npm
def test_packages_a_vsix_with_its_runtime_dependencies(build: Path) -> None:
    npm("run", "package")
    with zipfile.ZipFile(build / "ghostwrite.vsix") as vsix:
        names = set(vsix.namelist())
        manifest = json.loads(vsix.read("extension/package.json"))
    assert "extension/out/extension.js" in names
    assert "extension/node_modules/vscode-languageclient/package.json" in names
    assert not any(name.startswith("extension/src/") for name in names)
    assert manifest["main"] == "./out/extension.js"


def test_lockfile_matches_package_json() -> None:
    package = json.loads((SOURCE / "package.json").read_text())
    lock = json.loads((SOURCE / "package-lock.json").read_text())
    locked = lock["packages"][""]
    assert locked.get("dependencies", {}) == package.get("dependencies", {})
    assert locked.get("devDependencies", {}) == package.get("devDependencies", {})


def test_settings_mirror_the_server_options() -> None:
    """package.json lists exactly the server's options, with the server's defaults and limits
    (the settings UI shows them; the extension itself sends only what the user sets), and the
    extension's own on/off switch."""
    from dataclasses import MISSING, fields

    from ghostwrite.server.options import SECTION, ServerOptions, camel

    properties = json.loads((SOURCE / "package.json").read_text())["contributes"]["configuration"][
        "properties"
    ]
    client_only = {key for key in properties if key.startswith(f"{SECTION}.server.")}
    client_only.add(f"{SECTION}.enable")
    expected = {}
    for f in fields(ServerOptions):
        default = f.default if f.default is not MISSING else f.default_factory()
        meta = f.metadata
        expected[f"{SECTION}.{camel(f.name)}"] = {
            "default": json.loads(json.dumps(default)),
            "enum": list(meta["choices"]) if "choices" in meta else None,
            "range": (meta["minimum"], meta["maximum"]) if "minimum" in meta else None,
        }
    mirrored = {
        key: {
            "default": spec["default"],
            "enum": spec.get("enum"),
            "range": (spec["minimum"], spec["maximum"]) if "minimum" in spec else None,
        }
        for key, spec in properties.items()
        if key not in client_only
    }
    # The extension completes in prose by default (its document selector), where the server
    # completes in any language it is sent.
    assert expected[f"{SECTION}.languages"]["default"] == ["*"]
    expected[f"{SECTION}.languages"]["default"] = list(PROSE_LANGUAGES)
    assert mirrored == expected
