"""Document sync: the open documents follow the client's didOpen / didChange / didClose, and the
dictionary counts the words of every open document with them."""

from __future__ import annotations

import logging

from lsprotocol import types

from .documents import UTF16, Document, Documents
from .engine import Engine

log = logging.getLogger(__name__)


class DocumentSync:
    """One client's open documents, in the position encoding agreed at ``initialize``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.documents = Documents()
        self.encoding = UTF16

    def get(self, uri: str) -> Document | None:
        return self.documents.get(uri)

    def version(self, uri: str) -> int | None:
        document = self.documents.get(uri)
        return None if document is None else document.version

    def did_open(self, params: types.DidOpenTextDocumentParams) -> None:
        old = self.documents.get(params.text_document.uri)
        if old is not None:
            self.engine.stats.remove(old.text)
        document = self.documents.did_open(params.text_document)
        self.engine.stats.add(document.text)

    def did_change(self, params: types.DidChangeTextDocumentParams) -> None:
        document = self.documents.get(params.text_document.uri)
        if document is None:
            log.warning("change to a document that was never opened: %s", params.text_document.uri)
            return
        stats = self.engine.stats
        for change in params.content_changes:
            old_text = document.text
            span = document.apply(change, self.encoding)
            if span is None:
                stats.remove(old_text)
                stats.add(document.text)
            else:
                stats.replace(old_text, *span, change.text, document.text)
        document.version = params.text_document.version

    def did_close(self, params: types.DidCloseTextDocumentParams) -> None:
        document = self.documents.did_close(params.text_document.uri)
        if document is not None:
            self.engine.stats.remove(document.text)
            self.engine.forget(document.uri)
