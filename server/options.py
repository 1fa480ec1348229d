"""Server options: one dataclass is the single source of truth for names, defaults, types, limits
and help text. Clients send them as camelCase keys under the ``ghostwrite`` section (through
``initializationOptions``, ``workspace/didChangeConfiguration`` or ``workspace/configuration``);
``python -m ghostwrite.server --print-options-markdown`` renders the reference table."""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ghostwrite.model.search import STOP_RULES, WORD_MAX_BYTES
from ghostwrite.training.config import LEARN_STEPS

from .suggester import SEARCH_DEFAULTS, SuggestOptions

SECTION = "ghostwrite"
DEFAULTS = SuggestOptions()
# Every stop rule but ``none``, which ends a suggestion wherever ``max_chars`` falls, mid-word.
SERVER_STOP_RULES = tuple(rule for rule in STOP_RULES if rule != "none")


def option(default: Any, help: str, **limits: Any) -> Any:
    """A dataclass field with its help text and validation limits (choices, minimum, maximum)."""
    return field(default=default, metadata={"help": help, **limits})


@dataclass(frozen=True)
class ServerOptions:
    model: str = option(
        "",
        "Model directory, or `bundled` / `personal`. Empty: your trained model if there is one, "
        "else the bundled model.",
    )
    max_chars: int = option(
        SEARCH_DEFAULTS.max_chars,
        f"Longest suggestion, in characters (a `word` suggestion: at most {WORD_MAX_BYTES}).",
        minimum=1,
        maximum=256,
    )
    stop: str = option(
        SEARCH_DEFAULTS.stop,
        "Where a suggestion ends: at the end of a `word`, a `phrase` (punctuation) or the `line`.",
        choices=SERVER_STOP_RULES,
    )
    candidates: int = option(
        SEARCH_DEFAULTS.candidates,
        "Suggestions offered per request (inline alternatives or popup items).",
        minimum=1,
        maximum=10,
    )
    confidence: float = option(
        DEFAULTS.confidence,
        "Show a suggestion only when it is at least this likely to be right (0 to 1). Word "
        "suggestions with the dictionary are calibrated, and the calibration goes on learning "
        "from what you type after each: at 0.4, about 40% of those shown are the next word. "
        "Other suggestions use the model's probability of the whole text.",
        minimum=0.0,
        maximum=1.0,
    )
    temperature: float = option(
        SEARCH_DEFAULTS.temperature,
        "0 is deterministic beam search; above 0 samples (more varied, less accurate).",
        minimum=0.0,
        maximum=2.0,
    )
    beam_width: int = option(
        SEARCH_DEFAULTS.beam_width,
        "Beams kept by the search (more is slower and sometimes better).",
        minimum=1,
        maximum=16,
    )
    dictionary: bool = option(
        DEFAULTS.dictionary,
        "Rescore suggestions with the words already in your open documents "
        "(like a phone keyboard's personal dictionary).",
    )
    adaptive: bool = option(
        DEFAULTS.adaptive,
        "Score word suggestions with the model mixed with a character model of the document "
        "that learns as you type (your names and phrases: more keystrokes saved).",
    )
    learn: bool = option(
        False,
        "Learn from your writing: when you stop typing for `learnIdleSeconds` after an edit, "
        "fine-tune your personal model on the workspace folders in a background process, and "
        "serve the result only if it predicts your newest files better (see Privacy).",
    )
    learn_idle_seconds: int = option(
        120, "Seconds without an edit before a learning round starts.", minimum=1, maximum=86400
    )
    learn_steps: int = option(
        LEARN_STEPS,
        "Fine-tuning steps in one learning round (more learns more and costs more CPU).",
        minimum=1,
        maximum=100000,
    )
    languages: tuple[str, ...] = option(
        ("*",), 'Language ids to complete in (`*` for all), e.g. `["markdown", "plaintext"]`.'
    )
    file_patterns: tuple[str, ...] = option(
        ("*",), 'Glob patterns of file paths to complete in (`*` for all), e.g. `["*.md"]`.'
    )
    debounce_ms: int = option(
        0,
        "Wait this long after a keystroke before computing (0: at once; typing cancels stale "
        "requests anyway).",
        minimum=0,
        maximum=2000,
    )

    def suggest_options(self) -> SuggestOptions:
        """What these settings ask of the suggester: the one place they map onto it."""
        search = replace(
            SEARCH_DEFAULTS,
            max_chars=self.max_chars,
            stop=self.stop,
            candidates=self.candidates,
            beam_width=self.beam_width,
            temperature=self.temperature,
        )
        return SuggestOptions(search, self.confidence, self.dictionary, self.adaptive)

    def enabled_for(self, language_id: str, path: str) -> bool:
        """Whether documents of this language at this path get suggestions."""
        language_ok = "*" in self.languages or language_id in self.languages
        return language_ok and any(
            fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, f"*/{pattern}")
            for pattern in self.file_patterns
        )

    def to_json(self) -> dict[str, Any]:
        return {
            camel(f.name): list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in fields(self)
        }


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _check(f: Any, value: Any) -> Any:
    """The value converted to the field's type, or ValueError with a reason."""
    default = f.default
    meta = f.metadata
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
    elif isinstance(default, (int, float)):
        # JSON's 1e999 arrives as infinity; NaN and infinities are never a setting.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("expected a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("expected a finite number")
        if isinstance(default, int):
            if value != int(value):
                raise ValueError("expected a whole number")
            value = int(value)
        else:
            value = float(value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError("expected a string")
    elif isinstance(default, tuple):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected a list of strings")
        value = tuple(value)
    if "choices" in meta and value not in meta["choices"]:
        raise ValueError(f"expected one of {', '.join(meta['choices'])}")
    if "minimum" in meta and not meta["minimum"] <= value <= meta["maximum"]:
        raise ValueError(f"expected {meta['minimum']} to {meta['maximum']}")
    return value


def parse_options(settings: Any) -> tuple[ServerOptions, list[str]]:
    """Options from a client's settings object (the ``ghostwrite`` section, or an object holding
    it). Invalid or unknown entries keep their defaults; the second value lists the problems."""
    if isinstance(settings, Mapping) and isinstance(settings.get(SECTION), Mapping):
        settings = settings[SECTION]
    if settings is None:
        return ServerOptions(), []
    if not isinstance(settings, Mapping):
        return ServerOptions(), [f"settings must be an object, got {type(settings).__name__}"]
    by_key = {camel(f.name): f for f in fields(ServerOptions)}
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in settings.items():
        f = by_key.get(key)
        if f is None:
            problems.append(f"unknown option {key!r}")
            continue
        if value is None:
            continue
        try:
            values[f.name] = _check(f, value)
        except ValueError as err:
            shown = json.dumps(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."  # one readable line
            problems.append(f"{key}={shown}: {err}")
    return replace(ServerOptions(), **values), problems


def options_markdown() -> str:
    """The configuration reference: one row per option."""
    rows = [
        "| Key | Type | Default | Description |",
        "|---|---|---|---|",
    ]
    for f in fields(ServerOptions):
        default = list(f.default) if isinstance(f.default, tuple) else f.default
        kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "string[]"}
        meta = f.metadata
        type_name = kind[type(default)]
        if "choices" in meta:
            type_name = " \\| ".join(f"`{c}`" for c in meta["choices"])
        elif "minimum" in meta:
            type_name += f" ({meta['minimum']} to {meta['maximum']})"
        rows.append(
            f"| `{SECTION}.{camel(f.name)}` | {type_name} | `{json.dumps(default)}` | "
            f"{meta['help']} |"
        )
    return "\n".join(rows) + "\n"
