"""The extractive brain's side of the operator's custom API tools (Integration Studio): words to arguments.

The brain picks a custom tool like a built-in one (embedding similarity to its name, description and examples,
``pipelines.brain.extractive``); this module fills the tool's arguments from the caller's words, by each
parameter's JSON schema: numbers for ``integer``/``number``, tokens that the property's own schema accepts
(``pattern``, ``enum``, ``format``, lengths, checked with jsonschema-rs) for constrained strings, and for an
unconstrained string whose name or description says it is an identifier (order, account, reference ...) a token
holding a digit. Spoken digits ("one two three four five") are read as one number first, since that is how a
recogniser writes them. A required parameter that the turn does not hold is asked for in one short question; the
answer fills it (an unconstrained, non-identifier string takes the whole answer). On a phone line a digit-like
argument (:func:`keyable`) may be keyed in instead: the question says so, and the keyed digits are read as the
answer, by the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs

from knowledge.text_tokens import DIGIT_WORDS
from pipelines.tools import ToolSpec

# Minimum cosine similarity (the knowledge service's embedder) of a turn, without its values, to a custom tool's
# name, description or examples. Chosen on benchmarks/custom_tools/dev.json with the team's knowledge questions
# as turns that are not tool requests (``python -m benchmarks.custom_tool_matching``): at 0.55 (the built-in
# tools' threshold) 17 of 18 requests matched and 4 of 117 other turns were taken for a tool; at 0.6, 16 and 2.
# A question taken for a tool costs its answer, so the stricter one.
CUSTOM_TOOL_THRESHOLD = 0.6
_SOUND_ALIKES = {"to": "2", "too": "2", "for": "4", "won": "1", "ate": "8"}
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./#-]*[A-Za-z0-9]|[A-Za-z0-9]")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# Parameter names or descriptions that mark an identifier the caller reads out (a token with a digit in it).
_IDENTIFIER = re.compile(r"(?:^|_|\b)(id|ids|number|no|num|code|ref|reference|account|order|ticket|invoice)(?:$|_|\b)")


@dataclass(slots=True)
class PendingTool:
    """A custom tool the caller asked for whose required ``missing`` argument the agent has asked for."""

    spec: ToolSpec
    arguments: dict[str, Any] = field(default_factory=dict)
    missing: str = ""


def normalise_digits(text: str) -> str:
    """``text`` with runs of spoken digits (two or more, "one two three") written as one number ("123").

    A recogniser writes a digit as its sound-alike now and then ("for", "to", "won", "ate"); such a word counts
    as a digit only between two digits ("three for five" is 345, "for five minutes" is not).
    """
    words = text.split()
    bare = [w.lower().strip(",.?!") for w in words]
    strong = [b in DIGIT_WORDS or b.isdigit() for b in bare]
    digit = [
        s or (b in _SOUND_ALIKES and 0 < i < len(bare) - 1 and strong[i - 1] and strong[i + 1])
        for i, (b, s) in enumerate(zip(bare, strong, strict=True))
    ]
    out: list[str] = []
    i = 0
    while i < len(words):
        j = i
        while j < len(words) and digit[j]:
            j += 1
        if j - i >= 2:
            out.append("".join(DIGIT_WORDS.get(b) or _SOUND_ALIKES.get(b) or b for b in bare[i:j]))
            i = j
        else:
            out.append(words[i])
            i += 1
    return " ".join(out)


def without_values(text: str) -> str:
    """``text`` without the values it holds (numbers, spoken digit runs, codes with a digit in them).

    Which tool a turn asks for is said by its words, not by its order number: "status of order 12345" matched a
    tool's examples far worse than "status of order" (0.44 against 0.66 cosine with the product's embedder).
    """
    kept = [w for w in normalise_digits(text).split() if not any(c.isdigit() for c in w)]
    return " ".join(kept) or text


def label(spec: ToolSpec, name: str) -> str:
    """How the agent names parameter ``name`` when asking for it (its schema ``title``, else its name in words)."""
    title = spec.parameters.get(name, {}).get("title")
    return str(title).strip().lower() if isinstance(title, str) and title.strip() else name.replace("_", " ")


KEY_IT_IN = "You can say it, or key it in followed by the hash key."


def ask(spec: ToolSpec, name: str, *, keypad: bool = False) -> str:
    """The one short question for a missing argument (``keypad``: the caller may key it in, and is told so)."""
    question = f"Sure. What is the {label(spec, name)}?"
    return f"{question} {KEY_IT_IN}" if keypad else question


# Digit strings tried against a constrained schema to tell whether keyed digits can satisfy it.
_DIGIT_SAMPLES = tuple("1234567890" * 2)


def keyable(spec: ToolSpec, name: str) -> bool:
    """Whether parameter ``name`` can be keyed in on a phone keypad: digits make a value its schema accepts.

    An integer is; a string is when its schema accepts a run of digits (``pattern``, ``format``, lengths, enum)
    or, unconstrained, when its name or description says it is an identifier (order, account, reference ...).
    """
    schema = spec.parameters.get(name, {})
    if not isinstance(schema, Mapping):
        return False
    kind = schema.get("type")
    if kind == "integer":
        return True
    if kind not in ("string", None):
        return False
    if any(k in schema for k in ("pattern", "format", "enum", "const")):
        runs = ("".join(_DIGIT_SAMPLES[:n]) for n in range(1, len(_DIGIT_SAMPLES) + 1))
        return any(_accepts(schema, run) for run in runs)
    return _identifier(name, schema)


def most_digits(spec: ToolSpec, name: str, default: int) -> int:
    """The most digits parameter ``name`` can have (its ``maxLength``), else ``default``."""
    longest = spec.parameters.get(name, {}).get("maxLength")
    return int(longest) if isinstance(longest, int) and 0 < longest < default else default


def _accepts(schema: Mapping[str, Any], value: Any) -> bool:
    try:
        return bool(jsonschema_rs.validator_for(dict(schema)).is_valid(value))
    except Exception:  # noqa: BLE001 - a schema the library cannot compile accepts nothing here
        return False


def _identifier(name: str, schema: Mapping[str, Any]) -> bool:
    described = f"{name} {schema.get('title', '')} {schema.get('description', '')}".lower()
    return bool(_IDENTIFIER.search(name.lower()) or _IDENTIFIER.search(described))


def _candidates(name: str, schema: Mapping[str, Any], text: str) -> list[Any]:
    """Values in ``text`` that could be parameter ``name`` (not yet checked against its schema)."""
    kind = schema.get("type")
    if kind in ("integer", "number"):
        # Whole words only: the digits of a code ("KB-12345678") are not a number.
        words = [w.strip(",.;:!?()\"'") for w in text.split()]
        numbers = [float(w) if "." in w else int(w) for w in words if _NUMBER.fullmatch(w)]
        return [n for n in numbers if kind == "number" or isinstance(n, int)]
    if kind not in ("string", None):
        return []
    if "enum" in schema:
        lowered = f" {' '.join(_TOKEN.findall(text.lower()))} "
        return [v for v in schema["enum"] if isinstance(v, str) and f" {v.lower()} " in lowered]
    tokens = _TOKEN.findall(text)
    constrained = any(k in schema for k in ("pattern", "format", "const"))
    if constrained:
        return [*tokens, *(t.upper() for t in tokens if t.upper() != t)]
    if _identifier(name, schema):
        return [t for t in tokens if any(c.isdigit() for c in t) and len(t) >= 3]
    return []


def fill(spec: ToolSpec, text: str, known: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], str | None]:
    """The arguments ``text`` holds for ``spec`` (added to ``known``) and the first required one still missing."""
    normalised = normalise_digits(text)
    arguments = dict(known or {})
    used: set[str] = {str(v) for v in arguments.values()}
    for name, schema in spec.parameters.items():
        if name in arguments or not isinstance(schema, Mapping):
            continue
        for value in _candidates(name, schema, normalised):
            if str(value) not in used and _accepts(schema, value):
                arguments[name] = value
                used.add(str(value))
                break
    missing = next((n for n in spec.required if n not in arguments), None)
    return arguments, missing


def answer(spec: ToolSpec, pending: PendingTool, text: str) -> tuple[dict[str, Any], str | None] | None:
    """Fill ``pending.missing`` from the caller's answer; None when the answer does not hold it.

    An unconstrained string that is not an identifier takes the whole answer (e.g. a name or an address).
    """
    arguments, missing = fill(spec, text, pending.arguments)
    if pending.missing in arguments:
        return arguments, missing
    schema = spec.parameters.get(pending.missing, {})
    constrained = any(k in schema for k in ("pattern", "format", "enum", "const"))
    free = schema.get("type", "string") == "string" and not constrained and not _identifier(pending.missing, schema)
    whole = " ".join(text.strip().rstrip(".!?").split())
    if free and whole and _accepts(schema, whole):
        arguments[pending.missing] = whole
        return arguments, next((n for n in spec.required if n not in arguments), None)
    return None


def spoken(spec: ToolSpec, result: Mapping[str, Any]) -> str:
    """What the agent says after the tool ran: its ``say`` sentence, else the mapped values, else an apology."""
    if result.get("ok"):
        say = result.get("say")
        if isinstance(say, str) and say.strip():
            return say.strip()
        values = {k: v for k, v in dict(result.get("values") or {}).items() if v not in (None, "", [], {})}
        if values:
            parts = [f"{k.replace('_', ' ')}: {v}" for k, v in values.items() if isinstance(v, str | int | float)]
            if parts:
                return "Here is what I found. " + "; ".join(parts) + "."
        return "Done. I've checked that for you, but there was nothing to report."
    return f"I'm sorry, I couldn't {spec.name.replace('_', ' ')} right now."
