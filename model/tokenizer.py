"""UTF-8 byte tokenizer: 256 ids, so any Unicode text works and every model shares one vocabulary
(a personal corpus can fine-tune the bundled model without a mismatch)."""

from __future__ import annotations

import numpy as np

VOCAB_SIZE = 256
NAME = "utf-8-bytes"


def clean(text: str) -> str:
    """Replace lone surrogates (which JSON and some editors can produce) with U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Round-trip through UTF-16 to join valid pairs and replace lone halves.
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def encode(text: str) -> np.ndarray:
    """Text -> uint8 token ids."""
    return np.frombuffer(clean(text).encode("utf-8"), dtype=np.uint8).copy()


def decode(tokens: np.ndarray | list[int] | bytes) -> str:
    """Token ids -> text. Never emits a broken character: an incomplete trailing sequence is
    dropped and invalid bytes are skipped."""
    data = bytes(bytearray(int(t) for t in tokens)) if not isinstance(tokens, bytes) else tokens
    return data[: complete_prefix_length(data)].decode("utf-8", "ignore")


def count_chars(tokens: np.ndarray) -> int:
    """Characters in UTF-8 bytes: the bytes that are not continuation bytes."""
    return int(np.count_nonzero((np.asarray(tokens) & 0xC0) != 0x80))


def complete_prefix_length(data: bytes) -> int:
    """Length of the longest prefix of ``data`` that does not end inside a UTF-8 sequence."""
    end = len(data)
    # Look back at most 3 bytes for the start of the last sequence.
    for back in range(1, min(4, end) + 1):
        byte = data[end - back]
        if byte & 0xC0 != 0x80:  # a lead byte or ASCII
            needed = sequence_length(byte)
            return end if needed <= back else end - back
    return end


def sequence_length(lead: int) -> int:
    """Bytes in the UTF-8 sequence that starts with ``lead`` (1 for ASCII and invalid leads)."""
    if lead >= 0xF0:
        return 4
    if lead >= 0xE0:
        return 3
    if lead >= 0xC0:
        return 2
    return 1


def next_pending(pending: int, byte: int) -> int:
    """Continuation bytes still owed after appending ``byte`` to text that owed ``pending``."""
    return pending - 1 if pending else sequence_length(byte) - 1


_ALLOWED_AFTER_CHAR = np.ones(VOCAB_SIZE, dtype=bool)
_ALLOWED_AFTER_CHAR[0x80:0xC0] = False  # a continuation byte cannot start a character
_ALLOWED_AFTER_CHAR[[0xC0, 0xC1]] = False  # overlong encodings
_ALLOWED_AFTER_CHAR[0xF5:] = False
# Control bytes never belong in a suggestion (tab and newline do; CR never: corpora use LF).
_ALLOWED_AFTER_CHAR[[b for b in range(0x20) if b not in (0x09, 0x0A)] + [0x7F]] = False
_ALLOWED_MID_CHAR = np.zeros(VOCAB_SIZE, dtype=bool)
_ALLOWED_MID_CHAR[0x80:0xC0] = True


def allowed_next(pending: int) -> np.ndarray:
    """Mask of byte ids that keep a generated sequence valid UTF-8."""
    return _ALLOWED_MID_CHAR if pending else _ALLOWED_AFTER_CHAR
