"""PII redaction of transcript text before it is stored (the raw text is never written).

Detected, in this order, each replaced by a bracketed tag:

- e-mail addresses → ``[EMAIL]``
- payment card numbers (13–19 digits, spaces or dashes allowed, valid Luhn check digit) → ``[CARD]``
- Aadhaar numbers (12 digits, first 2–9, valid Verhoeff check digit) → ``[AADHAAR]``
- Indian PAN (``AAAPA1234A``: five letters, the fourth an entity code, four digits, one letter) → ``[PAN]``
- phone numbers (7–15 digits with optional ``+``, spaces, dashes, dots, brackets) → ``[PHONE]``; longer
  digit runs that are neither cards nor Aadhaar numbers → ``[NUMBER]``
- spoken digit runs from speech recognition ("four one one one ...", seven digits or more), classified
  with the same checks → ``[CARD]``/``[AADHAAR]``/``[PHONE]``

A digit run that fails the card and Aadhaar checks is still redacted as ``[PHONE]`` or ``[NUMBER]``:
over-redaction is the safe side. ISO dates (``2026-11-26``) are kept.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from knowledge.text_tokens import DIGIT_WORDS

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# 13-19 digits, single spaces or dashes between groups.
CARD_RE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
AADHAAR_RE = re.compile(r"(?<![\d-])[2-9]\d{3}[ -]?\d{4}[ -]?\d{4}(?![\d-])")
# PAN: 4th letter is the holder type (P person, C company, H HUF, F firm, A AOP, T trust, B BOI,
# L local authority, J artificial juridical person, G government).
PAN_RE = re.compile(r"\b[A-Z]{3}[PCHFATBLJG][A-Z]\d{4}[A-Z]\b", re.IGNORECASE)
# Seven digits or more (no upper bound, so a long number is never cut and half left in clear).
PHONE_RE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d(?:[ .-]?\d){6,}(?!\w)")
ISO_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DIGIT_WORDS = {**DIGIT_WORDS, "o": "0"}  # a lone "o" read as zero, in a run of seven or more digits
_WORD = r"(?:zero|oh|o|one|two|three|four|five|six|seven|eight|nine|\d)"
SPOKEN_RUN_RE = re.compile(rf"\b{_WORD}(?:[\s,.-]+{_WORD}){{6,}}\b", re.IGNORECASE)

# Verhoeff tables (dihedral group D5).
_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


def luhn_valid(digits: str) -> bool:
    """Whether ``digits`` (only 0-9) passes the Luhn (mod 10) check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return len(digits) > 1 and total % 10 == 0


def verhoeff_valid(digits: str) -> bool:
    """Whether ``digits`` (only 0-9) passes the Verhoeff check (Aadhaar's check digit)."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[i % 8][ord(ch) - 48]]
    return len(digits) > 1 and c == 0


def _only_digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _is_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _is_aadhaar(digits: str) -> bool:
    return len(digits) == 12 and digits[0] not in "01" and verhoeff_valid(digits)


@dataclass(frozen=True, slots=True)
class Redaction:
    """Redacted text and how many items of each kind were replaced."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """Whether anything was redacted."""
        return bool(self.counts)


def _classify(digits: str) -> str | None:
    if _is_card(digits):
        return "CARD"
    if _is_aadhaar(digits):
        return "AADHAAR"
    if 7 <= len(digits) <= 15:
        return "PHONE"
    if len(digits) > 15:
        return "NUMBER"
    return None


def redact(text: str) -> Redaction:
    """Replace personal data in ``text`` with tags; see the module docstring for what is detected."""
    counts: Counter[str] = Counter()

    def tag(kind: str) -> str:
        counts[kind] += 1
        return f"[{kind}]"

    def card(m: re.Match[str]) -> str:
        return tag("CARD") if _is_card(_only_digits(m.group())) else m.group()

    def aadhaar(m: re.Match[str]) -> str:
        return tag("AADHAAR") if _is_aadhaar(_only_digits(m.group())) else m.group()

    def spoken(m: re.Match[str]) -> str:
        words = re.split(r"[\s,.-]+", m.group().lower())
        digits = "".join(_DIGIT_WORDS.get(w, w) for w in words if w)
        kind = _classify(digits)
        return tag(kind) if kind else m.group()

    out = EMAIL_RE.sub(lambda _m: tag("EMAIL"), text)
    out = CARD_RE.sub(card, out)
    out = AADHAAR_RE.sub(aadhaar, out)
    out = PAN_RE.sub(lambda _m: tag("PAN"), out)

    def number(m: re.Match[str]) -> str:
        if ISO_DATE_RE.fullmatch(m.group()):
            return m.group()
        kind = _classify(_only_digits(m.group()))
        return tag(kind) if kind else m.group()

    out = PHONE_RE.sub(number, out)
    out = SPOKEN_RUN_RE.sub(spoken, out)
    return Redaction(text=out, counts=dict(counts))
