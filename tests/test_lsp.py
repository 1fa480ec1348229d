"""The language server end to end: a real server process over stdio, driven by pytest-lsp's
client with recorded editor capabilities, serving scripted models (tests/scripted.py) whose
suggestions are known exactly."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcRequestCancelled
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from ghostwrite.model import files, load_model
from ghostwrite.server.documents import UTF8, UTF16, UTF32, Document, code_units
from ghostwrite.server.loaded_model import LoadedModel
from ghostwrite.server.options import ServerOptions
from ghostwrite.server.suggester import Suggester
from tests.helpers.scripted import LAZY_TEXT, save_scripted_model, scripted_weights

TEXT = LAZY_TEXT  # the scripted model suggests "zy" here
URI = "file:///work/notes.txt"


@asynccontextmanager
async def serve(
    *args: str,
    capabilities: types.ClientCapabilities | None = None,
    initialization_options: object = None,
    configuration: dict | None = None,
    workspace: Path | None = None,
) -> AsyncIterator[LanguageClient]:
    config = ClientServerConfig(server_command=[sys.executable, "-m", "ghostwrite.server", *args])
    client = await config.start()
    if configuration is not None:
        client.set_configuration(configuration, section="ghostwrite")
    try:
        await client.initialize_session(
            types.InitializeParams(
                capabilities=capabilities or client_capabilities("visual-studio-code"),
                initialization_options=initialization_options,
                workspace_folders=[types.WorkspaceFolder(workspace.as_uri(), workspace.name)]
                if workspace
                else None,
            )
        )
        yield client
        await client.shutdown_session()
    finally:
        # pygls's client waits for the server to exit: after a failure, make it.
        if client._server is not None and client._server.returncode is None:
            client._server.kill()
        await client.stop()


def open_doc(client: LanguageClient, text: str, uri: str = URI, language: str = "plaintext"):
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, language, 1, text))
    )


async def inline(client: LanguageClient, line: int, character: int, uri: str = URI):
    return await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            context=types.InlineCompletionContext(types.InlineCompletionTriggerKind.Automatic),
            text_document=types.TextDocumentIdentifier(uri),
            position=types.Position(line, character),
        )
    )


async def popup(client: LanguageClient, line: int, character: int, uri: str = URI):
    return await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(uri), types.Position(line, character))
    )


def expected(model_dir: Path, before: str, after: str = "", **options: object) -> list[str]:
    """What the server should suggest: the same pipeline, in process."""
    suggester = Suggester(LoadedModel.load(model_dir))
    found = suggester.suggest(before, after, ServerOptions(**options).suggest_options())
    return [s.text for s in found]


def status(client: LanguageClient):
    return client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="ghostwrite.status")
    )


@pytest.mark.parametrize(
    ("editor", "encoding"), [("neovim@v0.11.0", UTF8), ("visual-studio-code", UTF16)]
)
async def test_recorded_editors_get_inline_and_popup_completions(
    scripted_model_dir, editor, encoding
):
    async with serve(
        "--model", str(scripted_model_dir), capabilities=client_capabilities(editor)
    ) as client:
        result = await client.protocol.send_request_async(
            types.WORKSPACE_EXECUTE_COMMAND, types.ExecuteCommandParams("ghostwrite.status")
        )
        assert result["positionEncoding"] == encoding
        assert result["model"] == str(scripted_model_dir)
        open_doc(client, TEXT)
        want = expected(scripted_model_dir, TEXT)
        assert want == ["zy"]
        items = (await inline(client, 0, len(TEXT))).items
        assert [item.insert_text for item in items] == want
        end = types.Position(0, len(TEXT))
        assert items[0].range == types.Range(end, end)
        completion = await popup(client, 0, len(TEXT))
        [item] = completion.items
        assert item.label == "la" + want[0]  # the whole word: client filtering keeps it
        assert item.text_edit.new_text == "la" + want[0]
        assert item.text_edit.range == types.Range(types.Position(0, len(TEXT) - 2), end)
        assert completion.is_incomplete


async def test_capabilities_and_serving_without_a_model(tmp_path):
    async with serve("--model", str(tmp_path / "none")) as client:
        result = await status(client)
        assert result["model"] is None and "no usable model" in result["problem"]
        open_doc(client, TEXT)
        assert not (await inline(client, 0, len(TEXT))).items
        assert not (await popup(client, 0, len(TEXT))).items
        warnings = [m.message for m in client.messages if "no usable model" in m.message]
        assert len(warnings) == 1


def edits_and_texts(draw, alphabet: str) -> tuple[str, list[tuple[int, int, str]]]:
    text = draw(st.text(alphabet, max_size=60))
    edits = draw(
        st.lists(
            st.tuples(st.integers(0, 80), st.integers(0, 80), st.text(alphabet, max_size=12)),
            max_size=12,
        )
    )
    return text, edits


ALPHABET = "ab \n\r\t😀é中"


@st.composite
def documents_with_edits(draw):
    return edits_and_texts(draw, ALPHABET)


def naive_position(text: str, offset: int, encoding: str) -> types.Position:
    lines = Document("u", text[:offset], 0)
    last = int(lines.starts[-1])
    return types.Position(lines.line_count - 1, code_units(text[last:offset], encoding))


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cases=st.lists(documents_with_edits(), min_size=6, max_size=6))
async def test_server_sync_then_completion_equals_full_sync(scripted_model_dir, cases):
    """Over the wire: documents built by incremental edits complete like ones sent whole."""
    # The model's own suggestions: the dictionary's ranking learns its calibration from every
    # request, so with it two documents' answers would depend on the order they were asked in.
    options = {"confidence": 0, "maxChars": 8, "dictionary": False}
    async with serve(
        "--model", str(scripted_model_dir), initialization_options={"ghostwrite": options}
    ) as client:
        for n, (text, edits) in enumerate(cases):
            await check_incremental_equals_full(client, text, edits, n)


async def check_incremental_equals_full(client, text, edits, n) -> None:
    prose = TEXT + "\n"
    text = prose + text
    incremental, full = f"file:///inc{n}.txt", f"file:///full{n}.txt"
    open_doc(client, text, incremental)
    version = 1
    for a, b, new in edits:
        a, b = sorted((min(a, len(text)), min(b, len(text))))
        a, b = max(a, len(prose)), max(b, len(prose))
        if 0 < a < len(text) and text[a - 1 : a + 1] == "\r\n":
            a -= 1
        if 0 < b < len(text) and text[b - 1 : b + 1] == "\r\n":
            b += 1
        version += 1
        change = types.TextDocumentContentChangePartial(
            range=types.Range(naive_position(text, a, UTF16), naive_position(text, b, UTF16)),
            text=new,
        )
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(version, incremental), [change]
            )
        )
        text = text[:a] + new + text[b:]
    open_doc(client, text, full)
    document = Document("u", text, 0)
    for line in range(document.line_count):
        end = naive_position(text, document.line_end(line), UTF16)
        got = await inline(client, end.line, end.character, incremental)
        want = await inline(client, end.line, end.character, full)
        assert got == want


async def test_positions_past_the_line_or_document_end_clamp(scripted_model_dir):
    async with serve("--model", str(scripted_model_dir)) as client:
        second = "and over the la"
        open_doc(client, TEXT + "\n" + second)
        at_end = await inline(client, 0, len(TEXT))
        assert [item.insert_text for item in at_end.items] == ["zy"]
        past_line = await inline(client, 0, len(TEXT) + 50)
        assert past_line == at_end
        past_doc = await inline(client, 99, 3)
        end = types.Position(1, len(second))
        assert [item.insert_text for item in past_doc.items] == ["zy"]
        assert past_doc.items[0].range == types.Range(end, end)
        popup_past = await popup(client, 0, 10_000)
        assert popup_past.items[0].text_edit.range.end == types.Position(0, len(TEXT))


@pytest.mark.parametrize("encoding", [UTF8, UTF16, UTF32])
async def test_emoji_cjk_and_crlf_in_every_encoding(scripted_model_dir, encoding):
    caps = types.ClientCapabilities(
        general=types.GeneralClientCapabilities(position_encodings=[encoding])
    )
    head = "héllo 😀 中文\r\n"
    line = "😀 " + TEXT
    async with serve("--model", str(scripted_model_dir), capabilities=caps) as client:
        open_doc(client, head + "placeholder")
        # Replace "placeholder" (line 1) with the emoji line, addressed in this encoding.
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(2, URI),
                [
                    types.TextDocumentContentChangePartial(
                        range=types.Range(types.Position(1, 0), types.Position(1, 11)), text=line
                    )
                ],
            )
        )
        # An edit after the emoji on line 0: insert "!" after "😀".
        emoji_end = code_units("héllo 😀", encoding)
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(3, URI),
                [
                    types.TextDocumentContentChangePartial(
                        range=types.Range(
                            types.Position(0, emoji_end), types.Position(0, emoji_end)
                        ),
                        text="!",
                    )
                ],
            )
        )
        end = code_units(line, encoding)
        want = expected(scripted_model_dir, "héllo 😀! 中文\r\n" + line)
        assert want == ["zy"]
        result = await inline(client, 1, end)
        assert [i.insert_text for i in result.items] == want
        assert result.items[0].range.start == types.Position(1, end)
        [item] = (await popup(client, 1, end)).items
        start = code_units(line[:-2], encoding)
        assert item.text_edit.range.start == types.Position(1, start)
        # A position inside the emoji's code units rounds down to the line's start, where the
        # scripted model suggests "lazy", instead of failing.
        inside = await inline(client, 1, code_units("😀", encoding) // 2)
        assert [i.insert_text for i in inside.items] == ["lazy"]
        assert inside.items[0].range.start == types.Position(1, 0)


async def test_unopened_document_gets_an_empty_answer(scripted_model_dir):
    async with serve("--model", str(scripted_model_dir)) as client:
        assert not (await inline(client, 0, 0, "file:///never-opened.txt")).items
        assert not (await popup(client, 3, 3, "file:///never-opened.txt")).items
        open_doc(client, TEXT)
        assert [i.insert_text for i in (await inline(client, 0, len(TEXT))).items] == ["zy"]


async def test_cancel_stale_and_superseded_requests(scripted_model_dir):
    # A debounce keeps each request pending long enough to cancel or outdate it.
    async with serve(
        "--model", str(scripted_model_dir), initialization_options={"debounceMs": 300}
    ) as client:
        open_doc(client, TEXT)
        params = types.InlineCompletionParams(
            context=types.InlineCompletionContext(types.InlineCompletionTriggerKind.Automatic),
            text_document=types.TextDocumentIdentifier(URI),
            position=types.Position(0, len(TEXT)),
        )
        cancelled = asyncio.ensure_future(
            client.protocol.send_request_async(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="cancel-me"
            )
        )
        await asyncio.sleep(0.05)  # the request is on its way
        client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="cancel-me"))
        with pytest.raises(JsonRpcRequestCancelled):
            await cancelled
        # Stale: the document changes while the request waits.
        stale = asyncio.ensure_future(inline(client, 0, len(TEXT)))
        await asyncio.sleep(0.05)
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(2, URI),
                [types.TextDocumentContentChangeWholeDocument(text=TEXT + "!")],
            )
        )
        assert not (await stale).items
        # Superseded: a newer request for the same cursor wins.
        first = asyncio.ensure_future(inline(client, 0, len(TEXT)))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(inline(client, 0, len(TEXT)))
        assert not (await first).items
        answer = [i.insert_text for i in (await second).items]
        assert answer == expected(scripted_model_dir, TEXT, "!") == ["zy"]


def test_generation_stops_when_cancelled_mid_search(scripted_model_dir):
    """The model thread polls the cancel flag between decoding steps."""
    suggester = Suggester(LoadedModel.load(scripted_model_dir))
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return True

    options = ServerOptions(stop="line", max_chars=32, confidence=0.0).suggest_options()
    stopped = suggester.suggest(TEXT, "", options, should_stop=should_stop)
    assert len(calls) == 1  # stopped after the first step
    assert stopped == []  # one byte, "z", finishes no line
    full = Suggester(LoadedModel.load(scripted_model_dir)).suggest(TEXT, "", options)
    assert full[0].text.startswith("zy")


async def test_options_from_all_sources_and_invalid_values_warn_once(scripted_model_dir):
    async with serve(
        "--model",
        str(scripted_model_dir),
        initialization_options={"ghostwrite": {"maxChars": "many", "stop": "word"}},
        configuration={"confidence": 0.0, "candidates": 2},
    ) as client:
        await asyncio.sleep(0.3)  # the server pulls workspace/configuration after initialized
        options = (await status(client))["options"]
        assert options["maxChars"] == 32  # invalid: the default
        assert options["candidates"] == 2  # from workspace/configuration
        invalid = [m for m in client.messages if "maxChars" in m.message]
        assert len(invalid) == 1
        open_doc(client, TEXT, language="markdown")
        answer = [i.insert_text for i in (await inline(client, 0, len(TEXT))).items]
        assert len(answer) == 2 and answer[0] == "zy"
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"ghostwrite": {"languages": ["python"]}})
        )
        assert not (await inline(client, 0, len(TEXT))).items
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(
                settings={"ghostwrite": {"languages": ["*"], "confidence": 1.0}}
            )
        )
        assert not (await inline(client, 0, len(TEXT))).items  # nothing is that certain
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"ghostwrite": {"confidence": 0.0}})
        )
        # Settings sent with the change replace the earlier ones: one candidate, the default.
        assert [i.insert_text for i in (await inline(client, 0, len(TEXT))).items] == ["zy"]


async def wait_for(predicate, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_model_reload_while_serving_and_corrupt_model_refused(scripted_model_dir, tmp_path):
    served = tmp_path / "model"
    shutil.copytree(scripted_model_dir, served)
    async with serve("--model", str(served)) as client:
        open_doc(client, TEXT)
        assert [i.insert_text for i in (await inline(client, 0, len(TEXT))).items] == ["zy"]
        model = load_model(scripted_model_dir)
        retrained = scripted_weights({"a": {"b": 0.9}, "b": {" ": 0.9}})
        files.save_model(served, model.config, retrained, {"note": "retrained"})

        async def reloaded() -> bool:
            return (await status(client))["card"].get("note") == "retrained"

        await wait_for(reloaded)
        before = await inline(client, 0, len(TEXT))
        assert [i.insert_text for i in before.items] == ["b"]  # the new model answers
        (served / files.META_FILE).write_text("{ not json")

        async def refused() -> bool:
            return any("refused" in m.message for m in client.messages)

        await wait_for(refused)
        assert (await status(client))["model"] == str(served)
        assert (await inline(client, 0, len(TEXT))) == before  # the old model keeps serving
        result = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="ghostwrite.reload")
        )
        assert result["reloaded"] is False


async def test_unknown_command_and_bad_arguments_get_errors(scripted_model_dir):
    async with serve("--model", str(scripted_model_dir)) as client:
        with pytest.raises(JsonRpcException):
            await client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="ghostwrite.nope")
            )
        result = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="ghostwrite.train", arguments=[{"paths": []}])
        )
        assert result["started"] is False  # no workspace folder


# A model that finds "Zanzibarian" after "Zanz" possible (0.03) but likes "ian" better (0.16).
ZANZIBARIAN = {
    "z": {"i": 0.9},
    "i": {"b": 0.45, "a": 0.45},
    "b": {"a": 0.9},
    "a": {"r": 0.45, "n": 0.45},
    "r": {"i": 0.9},
    "n": {" ": 0.9},
}


async def test_workspace_words_complete_and_reload_reindexes(tmp_path):
    """Names from the workspace's files (not the model's training) come up as completions."""
    model = save_scripted_model(tmp_path / "model", ZANZIBARIAN)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "story.md").write_text("Captain Zanzibarian sailed. Zanzibarian laughed.\n")
    async with serve(
        "--model",
        str(model),
        initialization_options={"ghostwrite": {"confidence": 0.0, "candidates": 10}},
        workspace=workspace,
    ) as client:

        async def indexed() -> bool:
            return ((await status(client))["workspaceIndex"] or {}).get("files") == 1

        await wait_for(indexed)
        text = "Then the Zanz"
        open_doc(client, text)
        items = (await popup(client, 0, len(text))).items
        assert items[0].label == "Zanzibarian"  # first: the dictionary knows it
        assert "Zanzian" in [item.label for item in items]  # the model's own word is still there
        (workspace / "more.txt").write_text("Another file.\n")
        result = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="ghostwrite.reload")
        )
        assert result["workspaceIndex"]["files"] == 2
