"""Open documents with incremental sync and LSP positions in UTF-8, UTF-16 or UTF-32.

The text is one Python string plus a numpy array of line start offsets (code points). An edit
replaces a slice of the string and rescans only the lines it touches, so a keystroke costs a
memcpy of the document, not a Python loop over the line (pygls's own sync walks the changed line
character by character: 200 edits in a 200 KB line took over 10 s). Lines end at ``\\n``,
``\\r\\n`` or ``\\r`` as the LSP says; positions past a line's end or the document's end clamp.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from lsprotocol import types

UTF8 = types.PositionEncodingKind.Utf8.value
UTF16 = types.PositionEncodingKind.Utf16.value
UTF32 = types.PositionEncodingKind.Utf32.value
LINE_BREAK = re.compile(r"\r\n|\r|\n")


def code_units(text: str, encoding: str) -> int:
    """Length of ``text`` in the position encoding's code units."""
    if encoding == UTF32 or text.isascii():
        return len(text)
    if encoding == UTF8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def chars_for_units(text: str, units: int, encoding: str) -> int:
    """How many code points of ``text`` fit in ``units`` code units (a position inside a
    character rounds down to its start; past the end clamps to the end)."""
    if units <= 0:
        return 0
    # Every code point is at least one unit, so no more than ``units`` code points can fit.
    head = text[:units]
    if encoding == UTF32 or head.isascii():
        return len(head)
    if encoding == UTF8:
        data = head.encode("utf-8", "surrogatepass")[:units]
        return len(data.decode("utf-8", "ignore"))
    data = head.encode("utf-16-le", "surrogatepass")[: 2 * units]
    decoded = data.decode("utf-16-le", "surrogatepass")
    if decoded and "\ud800" <= decoded[-1] <= "\udbff" and len(data) == 2 * units:
        decoded = decoded[:-1]  # half of a surrogate pair: round down
    return len(decoded)


def line_starts(text: str, base: int = 0) -> list[int]:
    return [base + m.end() for m in LINE_BREAK.finditer(text)]


@dataclass
class Document:
    uri: str
    text: str
    version: int
    language_id: str = ""

    def __post_init__(self) -> None:
        self.starts = np.array([0, *line_starts(self.text)], dtype=np.int64)

    @property
    def line_count(self) -> int:
        return len(self.starts)

    def line_of(self, offset: int) -> int:
        return int(np.searchsorted(self.starts, offset, side="right")) - 1

    def line_end(self, line: int) -> int:
        """Offset of the end of ``line``'s content (before its line break)."""
        if line + 1 >= len(self.starts):
            return len(self.text)
        end = int(self.starts[line + 1])
        if self.text[end - 1] == "\n" and end >= 2 and self.text[end - 2] == "\r":
            return end - 2
        return end - 1

    def offset_at(self, position: types.Position, encoding: str) -> int:
        """Code point offset of an LSP position (clamped into the document)."""
        if position.line >= len(self.starts):
            return len(self.text)
        start = int(self.starts[position.line])
        line = self.text[start : self.line_end(position.line)]
        return start + chars_for_units(line, position.character, encoding)

    def position_at(self, offset: int, encoding: str) -> types.Position:
        offset = max(0, min(offset, len(self.text)))
        line = self.line_of(offset)
        start = int(self.starts[line])
        return types.Position(line, code_units(self.text[start:offset], encoding))

    def apply(
        self, change: types.TextDocumentContentChangeEvent, encoding: str
    ) -> tuple[int, int] | None:
        """Apply one change; returns the code point span ``(a, b)`` of the old text that an
        incremental change replaced, or None when the change replaced the whole document."""
        if isinstance(change, types.TextDocumentContentChangeWholeDocument):
            self.text = change.text
            self.__post_init__()
            return None
        a = self.offset_at(change.range.start, encoding)
        b = max(a, self.offset_at(change.range.end, encoding))
        self.replace(a, b, change.text)
        return a, b

    def replace(self, a: int, b: int, new: str) -> None:
        """Replace text[a:b] with ``new`` and update the line starts of the touched lines."""
        old_text, starts = self.text, self.starts
        # Rescan from the start of the line holding a-1: a CR there may join a new LF.
        first = self.line_of(max(a - 1, 0))
        last = self.line_of(b)
        delta = len(new) - (b - a)
        self.text = old_text[:a] + new + old_text[b:]
        scan_start = int(starts[first])
        # The next old line start after b is still a line start: the bytes around it are unchanged.
        scan_end = int(starts[last + 1]) + delta if last + 1 < len(starts) else len(self.text)
        # Old breaks outside [a, b) keep their places, so new ones can only be near the edit.
        window_start = max(scan_start, a - 1)
        window_end = min(scan_end, a + len(new) + 1)
        if 0 < window_end < len(self.text) and self.text[window_end - 1 : window_end + 1] == "\r\n":
            window_end += 1  # never cut a CR LF pair: it is one line break
        middle = line_starts(self.text[window_start:window_end], window_start)
        if middle and middle[-1] == scan_end and last + 1 < len(starts):
            middle.pop()  # already counted as the next unchanged line start
        self.starts = np.concatenate(
            [
                starts[: first + 1],
                np.array(middle, dtype=np.int64),
                starts[last + 1 :] + delta,
            ]
        )


class Documents:
    """The open documents, by URI."""

    def __init__(self) -> None:
        self.open: dict[str, Document] = {}

    def get(self, uri: str) -> Document | None:
        return self.open.get(uri)

    def did_open(self, item: types.TextDocumentItem) -> Document:
        document = Document(item.uri, item.text, item.version, item.language_id)
        self.open[item.uri] = document
        return document

    def did_close(self, uri: str) -> Document | None:
        return self.open.pop(uri, None)
