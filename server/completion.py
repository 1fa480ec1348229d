"""Completion: the engine's suggestions at the cursor, answered as inline (ghost text) items or
as popup items that complete the word being typed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from lsprotocol import types
from pygls.uris import to_fs_path

from ghostwrite.model.words import word_start

from .documents import Document
from .engine import Engine, Job
from .options import ServerOptions
from .ranking import Suggestion
from .sync import DocumentSync

# Popup completion is requested as the user types these (Neovim's autotrigger needs them).
TRIGGER_CHARACTERS = [" ", *"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"]
# Suggestions an explicitly invoked inline request offers at least (a manual trigger or cycling
# through candidates): VS Code's inline API asks providers for alternatives to cycle through then.
INVOKED_CANDIDATES = 3


@dataclass(frozen=True)
class Found:
    """Suggestions for the text at ``offset`` of ``document``."""

    document: Document
    offset: int
    suggestions: list[Suggestion]
    encoding: str


async def suggest(
    engine: Engine,
    sync: DocumentSync,
    options: ServerOptions,
    uri: str,
    position: types.Position,
    min_candidates: int = 1,
) -> Found | None:
    """Suggestions at a position, or None. Cancelled ($/cancelRequest), superseded (a newer
    request) or stale (the document changed) requests stop the model between steps and
    never return suggestions for old text."""
    document = sync.get(uri)
    if document is None or engine.model is None:
        return None
    if not options.enabled_for(document.language_id, to_fs_path(document.uri) or document.uri):
        return None
    offset = document.offset_at(position, sync.encoding)
    if options.candidates < min_candidates:
        options = replace(options, candidates=min_candidates)
    job = Job(uri, document.version, lambda: sync.version(uri))
    if options.debounce_ms:
        engine.supersede(job)  # a request still waiting out its debounce stops too
        await asyncio.sleep(options.debounce_ms / 1000)
        if job.should_stop():
            return None
    before = document.text[:offset]
    after = document.text[offset : document.line_end(document.line_of(offset))]
    future = engine.submit(job, before, after, options.suggest_options())
    try:
        suggestions = await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        job.cancelled.set()
        raise
    if job.should_stop():
        return None
    return Found(document, offset, suggestions, sync.encoding)


def inline_items(found: Found | None) -> types.InlineCompletionList:
    """Ghost text: each suggestion inserted at the cursor."""
    if found is None:
        return types.InlineCompletionList(items=[])
    here = found.document.position_at(found.offset, found.encoding)
    return types.InlineCompletionList(
        items=[
            types.InlineCompletionItem(insert_text=s.text, range=types.Range(here, here))
            for s in found.suggestions
        ]
    )


def popup_items(found: Found | None) -> types.CompletionList:
    """Popup items that replace the word before the cursor with that word completed."""
    if found is None:
        return types.CompletionList(is_incomplete=True, items=[])
    document, offset, encoding = found.document, found.offset, found.encoding
    # The word the dictionary completes, so each item's text is that whole word (a word never
    # runs over a line break).
    start = word_start(document.text, offset)
    typed = document.text[start:offset]
    span = types.Range(
        document.position_at(start, encoding), document.position_at(offset, encoding)
    )
    items = []
    for rank, suggestion in enumerate(found.suggestions):
        # The label is the whole word after completion, so client-side filtering on the
        # typed word keeps the item.
        text = typed + suggestion.text
        items.append(
            types.CompletionItem(
                label=text.strip() or text,
                kind=types.CompletionItemKind.Text,
                detail=f"ghostwrite {suggestion.probability:.0%}",
                sort_text=f"{rank:02d}",
                filter_text=text,
                text_edit=types.TextEdit(range=span, new_text=text),
            )
        )
    return types.CompletionList(is_incomplete=True, items=items)
