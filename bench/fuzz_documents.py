"""Coverage-guided fuzzing (atheris) of the server's input paths.

    python bench/fuzz_documents.py documents CORPUS_DIR [libFuzzer flags, e.g. -max_total_time=60]
    python bench/fuzz_documents.py frames CORPUS_DIR [...]

``documents``: an initial text and a sequence of incremental edits at arbitrary positions
(inside surrogate pairs, past line and document ends) in any position encoding, applied through
``ghostwrite.server.documents.Document``, must equal the same edits on a plain string under the
LSP's rules (``ghostwrite.server.client.reference_offset``). ``frames``: any bytes fed to
the frame parser in any chunking must return, and two valid messages after them must still be
recovered. The committed seed corpus is bench/fuzz_corpus/<target>/; libFuzzer adds what it
finds to the first corpus directory given (tests copy it to a temporary folder first).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import atheris
import numpy  # noqa: F401  (imported first so that only ghostwrite's code is instrumented)
from lsprotocol import types

with atheris.instrument_imports(include=["ghostwrite"]):
    from ghostwrite.server.client import encode, reference_offset
    from ghostwrite.server.documents import UTF8, UTF16, UTF32, Document
    from ghostwrite.server.transport import FrameParser

ENCODINGS = [UTF8, UTF16, UTF32]
CORPUS = Path(__file__).with_name("fuzz_corpus")


def fuzz_documents(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    encoding = ENCODINGS[fdp.ConsumeIntInRange(0, 2)]
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 64))
    document = Document("u", text, 1)
    for _ in range(fdp.ConsumeIntInRange(0, 16)):
        start = (fdp.ConsumeIntInRange(0, 8), fdp.ConsumeIntInRange(0, 80))
        end = (fdp.ConsumeIntInRange(0, 8), fdp.ConsumeIntInRange(0, 80))
        new = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 12))
        document.apply(
            types.TextDocumentContentChangePartial(
                range=types.Range(types.Position(*start), types.Position(*end)), text=new
            ),
            encoding,
        )
        a = reference_offset(text, *start, encoding)
        b = max(a, reference_offset(text, *end, encoding))
        text = text[:a] + new + text[b:]
        if document.text != text:
            raise AssertionError(f"document {document.text!r} != reference {text!r}")
        if list(document.starts) != list(Document("u", text, 0).starts):
            raise AssertionError(f"line starts differ for {text!r}")


FIRST = {"jsonrpc": "2.0", "id": 1, "method": "a", "params": {"text": "x\r\n"}}
LAST = {"jsonrpc": "2.0", "id": 2, "method": "b", "params": None}


TAIL = encode(FIRST) + encode(LAST)


def fuzz_frames(data: bytes) -> None:
    chunk = 1 + (data[0] if data else 0)
    stream = data[1:] + TAIL
    parser = FrameParser()
    bodies = []
    for i in range(0, len(stream), chunk):
        bodies += [b for b in parser.feed(stream[i : i + chunk]) if isinstance(b, bytes)]
    if not bodies or json.loads(bodies[-1]) != LAST:
        raise AssertionError(f"the last message was not recovered after {data[:80]!r}")


TARGETS = {"documents": fuzz_documents, "frames": fuzz_frames}


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] not in TARGETS:
        raise SystemExit(__doc__)
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
