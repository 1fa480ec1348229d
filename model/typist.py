"""A typist who takes word suggestions: how many keystrokes a model saves on a text.

The typist writes ``text[start:]`` with ``text[:start]`` already there. Before each keystroke the
model's search (``SearchOptions``, one suggestion) proposes a continuation; it is shown when its
probability reaches ``confidence``, and when its first word (with the punctuation and space
before it) is what comes next, one keystroke accepts it. Otherwise one character is typed. This
is the model's own part of what the server shows, without the personal dictionary: enough to
tell which of two models suits a text better, which is what the learner asks of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .completer import Completer
from .inference import Decoder
from .search import SearchOptions
from .words import first_word


@dataclass(frozen=True)
class Typed:
    chars: int  # characters written
    keystrokes: int  # characters typed plus suggestions accepted
    shown: int  # keystrokes before which a suggestion was shown
    accepted: int

    @property
    def savings(self) -> float:
        """Share of keystrokes saved: 1 - keystrokes / characters."""
        return 1 - self.keystrokes / self.chars if self.chars else 0.0

    @property
    def precision(self) -> float:
        """Share of shown suggestions that were accepted."""
        return self.accepted / self.shown if self.shown else 0.0


def type_text(
    decoder: Decoder,
    text: str,
    start: int = 0,
    confidence: float = 0.0,
    options: SearchOptions | None = None,
) -> Typed:
    """The typist's keystrokes writing ``text[start:]`` with the model's word suggestions."""
    options = options or SearchOptions()
    completer = Completer(decoder)
    keystrokes = shown = accepted = 0
    i = start
    while i < len(text):
        keystrokes += 1
        found = completer.complete(text[:i], options)
        best = next((c for c in found if c.text.strip() and c.probability >= confidence), None)
        if best is not None:
            shown += 1
            word = first_word(best.text)
            if word and text.startswith(word, i):
                accepted += 1
                i += len(word)
                continue
        i += 1
    return Typed(len(text) - start, keystrokes, shown, accepted)
