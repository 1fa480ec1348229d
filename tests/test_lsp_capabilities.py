"""What the server advertises to each kind of client, and what an explicitly invoked inline request
offers: a real server process over stdio, driven by pytest-lsp's client."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

TEXT = "The quick brown fox jumps over the la"
URI = "file:///work/notes.txt"


def with_inline_completion(editor: str) -> types.ClientCapabilities:
    capabilities = client_capabilities(editor)
    assert capabilities.text_document is not None
    capabilities.text_document.inline_completion = types.InlineCompletionClientCapabilities()
    return capabilities


@asynccontextmanager
async def serve(
    capabilities: types.ClientCapabilities, *args: str, settings: object = None
) -> AsyncIterator[tuple[LanguageClient, types.InitializeResult]]:
    config = ClientServerConfig(server_command=[sys.executable, "-m", "ghostwrite.server", *args])
    client = await config.start()
    try:
        result = await client.initialize_session(
            types.InitializeParams(capabilities=capabilities, initialization_options=settings)
        )
        yield client, result
        await client.shutdown_session()
    finally:
        if client._server is not None and client._server.returncode is None:
            client._server.kill()
        await client.stop()


@pytest.mark.parametrize("editor", ["neovim@v0.11.0", "visual-studio-code", "emacs"])
async def test_popup_completion_only_for_clients_without_inline_completion(editor, tmp_path):
    async with serve(client_capabilities(editor), "--model", str(tmp_path)) as (_, result):
        popup = result.capabilities.completion_provider
        assert popup is not None and " " in (popup.trigger_characters or [])
        assert result.capabilities.inline_completion_provider is not None
    async with serve(with_inline_completion(editor), "--model", str(tmp_path)) as (_, result):
        assert result.capabilities.completion_provider is None
        assert result.capabilities.inline_completion_provider is not None


async def inline(client: LanguageClient, kind: types.InlineCompletionTriggerKind) -> list[str]:
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            context=types.InlineCompletionContext(kind),
            text_document=types.TextDocumentIdentifier(URI),
            position=types.Position(0, len(TEXT)),
        )
    )
    return [item.insert_text for item in result.items]


async def test_an_invoked_request_offers_alternatives(tiny_model_dir):
    """One candidate as the user types (the default), several to cycle through when asked."""
    settings = {"model": str(tiny_model_dir), "confidence": 0, "dictionary": False}
    capabilities = with_inline_completion("neovim@v0.11.0")
    async with serve(capabilities, settings=settings) as (client, _):
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(URI, "plaintext", 1, TEXT))
        )
        automatic = await inline(client, types.InlineCompletionTriggerKind.Automatic)
        invoked = await inline(client, types.InlineCompletionTriggerKind.Invoked)
    assert len(automatic) == 1
    assert len(invoked) == 3 and len(set(invoked)) == 3
    assert invoked[0] == automatic[0]
