"""What a word is, in characters and in bytes: the one definition that the search's word stop rule,
the dictionary, the popup's replace range, the suggester and evaluation's next-word accuracy use.

A word character is a letter, digit or underscore of any script (``str.isalnum`` or ``_``: the
set the regex ``\\w`` matches). An apostrophe between word characters joins them into one word:
"don't" and "l'amour" are single words, as in ``WORD``.

An apostrophe right after a word may be the middle of one still being typed ("don'" on the way to
"don't"), so it neither ends a word nor starts a new one: the word being typed
(``word_start``/``word_end``) runs over apostrophes, and the search's word stop rule does not stop
at one (``ends_word``). That keeps the typed prefix and the search's words the same thing, which
is what the keystroke benchmark measures: at "don'" the dictionary completes "don't" and the
popup replaces all of "don'".

In bytes (the model's tokens), a word byte is an ASCII letter, digit or underscore, or any byte of
a non-ASCII character: one byte cannot tell "é" from "—", so the model decides inside them.
"""

from __future__ import annotations

import re

import numpy as np

APOSTROPHE = "'"
APOSTROPHE_BYTE = ord(APOSTROPHE)

# Whole words in a text: word characters, joined by single apostrophes inside a word.
WORD = re.compile(r"\w+(?:'\w+)*")
# A suggestion's first word, with the punctuation and space before it: what one keystroke
# accepts (the keystroke benchmark's typist and the learner's check both take this much).
FIRST_WORD = re.compile(rf"\W*{WORD.pattern}|\W+")


def first_word(suggestion: str) -> str:
    chunk = FIRST_WORD.match(suggestion)
    return chunk.group(0) if chunk else suggestion


def is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def in_typed_word(ch: str) -> bool:
    """Whether ``ch`` belongs to the word being typed around it (apostrophes do)."""
    return is_word_char(ch) or ch == APOSTROPHE


def word_start(text: str, i: int) -> int:
    """Where the word being typed that ends at ``i`` starts (``i`` itself between words)."""
    while i > 0 and in_typed_word(text[i - 1]):
        i -= 1
    return i


def word_end(text: str, i: int) -> int:
    """Where the word that goes on at ``i`` ends (``i`` itself between words)."""
    n = len(text)
    while i < n and in_typed_word(text[i]):
        i += 1
    return i


def is_word_byte(byte: int) -> bool:
    return byte >= 0x80 or chr(byte).isalnum() or byte == ord("_")


def ends_word(byte: int) -> bool:
    """Whether ``byte`` after a word ends it."""
    return not is_word_byte(byte) and byte != APOSTROPHE_BYTE


WORD_BYTES = np.array([is_word_byte(b) for b in range(256)])
WORD_END_BYTES = np.array([ends_word(b) for b in range(256)])
