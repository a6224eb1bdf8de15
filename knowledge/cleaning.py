"""Text cleaning shared by every parser: Unicode normalisation, control characters, hyphenation, wrapping."""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200c\u200d\u2060\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_BULLET = re.compile(r"^\s*([-*+\u2022\u25aa\u25cf\u2013]|\d{1,3}[.)])\s+")
_SENTENCE_END = (".", "!", "?", ":", ";")


def normalise(text: str) -> str:
    """NFKC-normalise, drop control and zero-width characters, unify line ends and spaces."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return "\n".join(lines).strip()


def unwrap(text: str) -> str:
    """Join hard-wrapped lines into paragraphs (PDF and plain text), keeping list items and blank lines.

    A line is joined to the previous one unless the previous one ends a sentence and this one starts a new
    item, or either is blank. Words broken by a hyphen at a line end are mended.
    """
    text = _HYPHEN_BREAK.sub(r"\1\2", normalise(text))
    paragraphs: list[str] = []
    current: list[str] = []
    for line in text.split("\n"):
        if not line:
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        if current and _BULLET.match(line):
            paragraphs.append(" ".join(current))
            current = [line]
            continue
        current.append(line)
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(p for p in paragraphs if p)


def is_sentence_end(line: str) -> bool:
    """Whether ``line`` ends like a sentence (used to tell headings from text)."""
    return line.rstrip().endswith(_SENTENCE_END)


def meaningful_chars(text: str) -> int:
    """Letters and digits in ``text`` (to tell an empty or image-only document from a real one)."""
    return sum(1 for ch in text if ch.isalnum())
