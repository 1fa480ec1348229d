from hypothesis import given
from hypothesis import strategies as st

from ghostwrite.model import tokenizer

SAMPLES = [
    "plain ASCII",
    "emoji 😀👍🏽 and flags 🇫🇷",
    "CJK 漢字かなカナ 한국어",
    "combining e\u0301 a\u0308 and zero-width\u200bjoiner",
    "CRLF\r\nand LF\n",
    "",
]


def test_round_trips_any_text():
    for text in SAMPLES:
        assert tokenizer.decode(tokenizer.encode(text)) == text


@given(st.text())
def test_round_trips_generated_text(text):
    assert tokenizer.decode(tokenizer.encode(text)) == tokenizer.clean(text)


def test_lone_surrogates_become_replacement_characters():
    assert tokenizer.decode(tokenizer.encode("a\ud800b")) == "a\ufffdb"
    assert tokenizer.clean("\ud83d\ude00") == "😀"  # a valid pair joins into one character


def test_decode_never_emits_a_broken_character():
    data = "é😀".encode()
    for cut in range(len(data) + 1):
        text = tokenizer.decode(data[:cut])
        assert "\ufffd" not in text
        assert "é😀".startswith(text)
    assert tokenizer.decode(b"ok\xff\xfe!") == "ok!"


def test_allowed_next_keeps_generation_valid_utf8():
    pending = 0
    for byte in "a😀é".encode():
        assert tokenizer.allowed_next(pending)[byte]
        pending = tokenizer.next_pending(pending, byte)
    assert pending == 0
    assert not tokenizer.allowed_next(0)[0x80]  # continuation byte cannot start a character
    assert not tokenizer.allowed_next(2)[ord("a")]  # mid-character: only continuation bytes
    assert not tokenizer.allowed_next(0)[0x07]  # no control characters in suggestions
