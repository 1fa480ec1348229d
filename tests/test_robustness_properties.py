"""Properties of the server's input paths, beyond tests/test_lsp.py (whose edits always point at
code point boundaries inside the text): incremental edits at any position, including inside
surrogate pairs and UTF-8 sequences, past a line's end and past the document's end, equal the
same edits on a plain string under the LSP's clamping rules; and the frame parser always makes
progress and recovers the next messages after any junk."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import example, given, settings
from hypothesis import strategies as st
from lsprotocol import types

from ghostwrite.server.client import encode, reference_offset
from ghostwrite.server.documents import UTF8, UTF16, UTF32, Document
from ghostwrite.server.transport import FrameParser

ALPHABET = "ab \n\r😀é中\U0010ffff"


position = st.tuples(st.integers(0, 6), st.integers(0, 30))
edits = st.lists(st.tuples(position, position, st.text(ALPHABET, max_size=8)), max_size=15)


@settings(max_examples=300, deadline=None)
@given(st.text(ALPHABET, max_size=40), edits, st.sampled_from([UTF8, UTF16, UTF32]))
@example("aaaa\r\n", [((0, 0), (0, 4), "")], UTF8)  # once split a CR LF into two line breaks
def test_edits_at_any_position_equal_a_plain_string(text, changes, encoding):
    document = Document("u", text, 1)
    for (start, end), new in ((c[:2], c[2]) for c in changes):
        change = types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(*start), types.Position(*end)), text=new
        )
        document.apply(change, encoding)
        a = reference_offset(text, *start, encoding)
        b = max(a, reference_offset(text, *end, encoding))
        text = text[:a] + new + text[b:]
        assert document.text == text
        assert list(document.starts) == list(Document("u", text, 0).starts)


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail instead of hanging if the parser stops making progress."""

    def expired(*_: object) -> None:
        raise TimeoutError("the frame parser did not return")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


junk = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"Content-Length: 99999\r\n\r\n{",
            b"Content-Length: 3\r\n\r\n",
            b"Content-Length: nope\r\n\r\n",
            b"X-Header: " + b"a" * 5000,
            b'{"jsonrpc": "2.0"}',
            b"\r\n\r\n",
        ]
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(junk, max_size=4), st.lists(st.integers(1, 300), max_size=10))
def test_frame_parser_recovers_after_any_junk(junks, cuts):
    first = {"jsonrpc": "2.0", "id": 1, "method": "a", "params": {"text": "x\r\n"}}
    last = {"jsonrpc": "2.0", "id": 2, "method": "b", "params": None}
    stream = b"".join(junks) + encode(first) + encode(last)
    parser = FrameParser()
    bodies: list[bytes] = []
    with time_limit(5):
        position = 0
        for cut in [*cuts, len(stream)]:
            chunk = stream[position : position + cut]
            position += len(chunk)
            bodies += [b for b in parser.feed(chunk) if isinstance(b, bytes)]
        bodies += [b for b in parser.feed(stream[position:]) if isinstance(b, bytes)]
    assert bodies and json.loads(bodies[-1]) == last
    if not junks:
        assert [json.loads(b) for b in bodies] == [first, last]
