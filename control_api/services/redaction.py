"""PII redaction of transcript text before it is stored (the raw text is never written).

Detected, in this order, each replaced by a bracketed tag:

- e-mail addresses → ``[EMAIL]``
- numbers read out by speech recognition, in any spelling or mix: digit words ("four one one one"), digit
  groups ("4111 one one"), number words ("one thousand one hundred eleven"), "double"/"triple", and the
  homophones "for"/"to"/"won"/"ate" between two digit words. A run of seven digits or more is classified
  like a digit-form number below (``[CARD]``, ``[AADHAAR]``, ``[PHONE]``, ``[NUMBER]``); a "for"/"to" just
  outside the run is counted in when that makes it a card or Aadhaar number ("for one one one ..." →
  ``[CARD]``).
- payment card numbers (13–19 digits, spaces or dashes allowed, valid Luhn check digit) → ``[CARD]``
- Aadhaar numbers (12 digits, first 2–9, valid Verhoeff check digit) → ``[AADHAAR]``
- Indian PAN (``AAAPA1234A``: five letters, the fourth an entity code, four digits, one letter) → ``[PAN]``
- phone numbers (7–15 digits with optional ``+``, spaces, dashes, dots, brackets) → ``[PHONE]``; longer
  digit runs that are neither cards nor Aadhaar numbers → ``[NUMBER]``

A digit run that fails the card and Aadhaar checks is still redacted as ``[PHONE]`` or ``[NUMBER]``:
over-redaction is the safe side. 13–19 digits right after a word such as "card" or "visa" are a ``[CARD]``
even when the check digit fails (one digit misheard), and so is a card read on into its expiry date or
security code (the run is hidden whole). Fewer than seven digits are kept: "one hundred
megabits", "twenty nine dollars", "plan 500", "order 12345". ISO dates (``2026-11-26``) are kept.

Whose words: a caller's turn is redacted in full. The desk's own turns (``agent``, ``human``) keep the e-mail
addresses and phone numbers the business published itself (in a ready knowledge-base document or the call's
persona), so a supervisor sees what the caller was told; everything else in them is redacted as in a caller's
turn: cards, Aadhaar and PAN always, and every address or number the business did not publish, which is
where the caller's own, repeated back, fall (the caller's number and address on the call record are never
taken as published). :func:`redact_turn` is that rule.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import Call, KnowledgeChunk, KnowledgeDocument, Persona
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
# A word that makes the 13-19 digits after it a card even when the check digit fails.
_CARD_CONTEXT_RE = re.compile(r"\b(?:card|visa|master ?card|amex|maestro|rupay|credit|debit)\b[^.?!]{0,40}$", re.I)
# The fewest digits a number must have to be redacted, spoken or written.
MIN_DIGITS = 7

# Spoken numbers. A lone "o" is zero ("four o five"); "for", "to", "won", "ate" are digits only between digit
# words ("four one to three"), never beside a number word or digit group ("ticket 12345 for two days").
_UNITS: dict[str, int] = {**{w: int(d) for w, d in DIGIT_WORDS.items()}, "o": 0}
_TEENS = {
    w: 10 + i
    for i, w in enumerate(
        ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
    )
}
_TENS = {
    w: 20 + 10 * i for i, w in enumerate(("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"))
}
_HOMOPHONES = {"for": "4", "fore": "4", "to": "2", "too": "2", "won": "1", "ate": "8"}
_REPEATS = {"double": 2, "triple": 3}
_TOKEN_RE = re.compile(r"[A-Za-z]+|\d+")
_DIGIT_GROUP_RE = re.compile(r"\d+")
# What may stand between the tokens of one spoken number: spaces, commas, dashes, a dot inside a number
# ("4.1"); a full stop before a space ends the run.
_GAP_RE = re.compile(r"(?:[\s,-]|\.(?!\s))*")

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


def _checked(digits: str) -> str | None:
    """The kind a check digit proves: ``CARD`` (Luhn) or ``AADHAAR`` (Verhoeff), else ``None``."""
    if _is_card(digits):
        return "CARD"
    if _is_aadhaar(digits):
        return "AADHAAR"
    return None


def _classify(groups: Sequence[str], *, card_context: bool = False) -> str | None:
    """The tag of a digit run said or written in ``groups``, or ``None`` when it is too short to be personal data.

    A card read on into its expiry date or security code (a Luhn-valid card ending at a group) is a card.
    """
    digits = "".join(groups)
    if kind := _checked(digits):
        return kind
    if card_context and 13 <= len(digits) <= 19:
        return "CARD"
    if len(digits) > 19 and any(_is_card("".join(groups[:n])) for n in range(1, len(groups))):
        return "CARD"
    if MIN_DIGITS <= len(digits) <= 15:
        return "PHONE"
    if len(digits) > 15:
        return "NUMBER"
    return None


def _after_card_word(text: str, start: int) -> bool:
    return _CARD_CONTEXT_RE.search(text[max(0, start - 60) : start]) is not None


@dataclass(frozen=True, slots=True)
class _Token:
    start: int
    end: int
    word: str
    kind: str  # group (digits), unit, teen, tens, hundred, thousand, and, weak (homophone), repeat
    pause: bool = False  # a comma before it: "eight hundred, five five five" is 800 then 555, not 805


@dataclass(frozen=True, slots=True)
class _Item:
    """One number read from the tokens: its digits and how it was said."""

    start: int
    end: int
    digits: str
    kind: str  # digit (a digit word, a digit group, "double five"), compound (number words), weak (homophone)
    spelled: bool  # said in words (a run of digit groups only is left to the digit-form patterns)


def _token_kind(text: str, start: int, end: int, word: str) -> str | None:
    glued = (start > 0 and text[start - 1].isalnum()) or (end < len(text) and text[end].isalnum())
    if glued:  # "ABCPE1234F", "500mb", "5th": not a spoken number
        return None
    if word[0].isdigit():
        return "group"
    if word in _UNITS:
        return "unit"
    if word in _TEENS:
        return "teen"
    if word in _TENS:
        return "tens"
    if word in ("hundred", "thousand", "and"):
        return word
    if word in _HOMOPHONES:
        return "weak"
    if word in _REPEATS:
        return "repeat"
    return None


def _segments(text: str) -> list[list[_Token]]:
    """Maximal stretches of number-like tokens with only separators between them."""
    segments: list[list[_Token]] = []
    current: list[_Token] = []
    for m in _TOKEN_RE.finditer(text):
        word = m.group().lower()
        kind = _token_kind(text, m.start(), m.end(), word)
        if kind is None:
            if current:
                segments.append(current)
            current = []
            continue
        gap = text[current[-1].end : m.start()] if current else ""
        if current and not _GAP_RE.fullmatch(gap):
            segments.append(current)
            current = []
        current.append(_Token(m.start(), m.end(), word, kind, pause="," in gap))
    if current:
        segments.append(current)
    return segments


def _below_hundred(seg: Sequence[_Token], i: int) -> tuple[int, int] | None:
    if i >= len(seg):
        return None
    token = seg[i]
    if token.kind == "tens":
        if i + 1 < len(seg) and seg[i + 1].kind == "unit" and _UNITS[seg[i + 1].word] > 0:
            return _TENS[token.word] + _UNITS[seg[i + 1].word], i + 2
        return _TENS[token.word], i + 1
    if token.kind == "teen":
        return _TEENS[token.word], i + 1
    if token.kind == "unit" and _UNITS[token.word] > 0:
        return _UNITS[token.word], i + 1
    return None


def _skip_and(seg: Sequence[_Token], i: int) -> int:
    return i + 1 if i < len(seg) and seg[i].kind == "and" else i


def _below_thousand(seg: Sequence[_Token], i: int) -> tuple[int, int] | None:
    found = _below_hundred(seg, i)
    if found is None:
        return None
    value, j = found
    if j < len(seg) and seg[j].kind == "hundred":
        value, j = value * 100, j + 1
        if j < len(seg) and not seg[j].pause and (rest := _below_hundred(seg, _skip_and(seg, j))):
            value, j = value + rest[0], rest[1]
    return value, j


def _number(seg: Sequence[_Token], i: int) -> tuple[int, int] | None:
    """A number said in words from ``seg[i]`` ("one thousand one hundred and eleven"): value, next index."""
    found = _below_thousand(seg, i)
    if found is None:
        return None
    value, j = found
    if j < len(seg) and seg[j].kind == "thousand":
        value, j = value * 1000, j + 1
        if rest := _below_thousand(seg, _skip_and(seg, j)):
            value, j = value + rest[0], rest[1]
    return value, j


def _items(seg: Sequence[_Token]) -> list[_Item | None]:
    """The numbers of one segment in order; ``None`` where a token breaks the reading ("and", "hundred" alone)."""
    items: list[_Item | None] = []
    i = 0
    while i < len(seg):
        token = seg[i]
        if token.kind == "group":
            items.append(_Item(token.start, token.end, token.word, "digit", spelled=False))
            i += 1
        elif token.kind == "weak":
            items.append(_Item(token.start, token.end, _HOMOPHONES[token.word], "weak", spelled=True))
            i += 1
        elif token.kind == "repeat" and i + 1 < len(seg) and seg[i + 1].kind == "unit":
            digit = str(_UNITS[seg[i + 1].word])
            items.append(_Item(token.start, seg[i + 1].end, digit * _REPEATS[token.word], "digit", spelled=True))
            i += 2
        elif token.kind == "unit" and (i + 1 == len(seg) or seg[i + 1].kind not in ("hundred", "thousand")):
            items.append(_Item(token.start, token.end, str(_UNITS[token.word]), "digit", spelled=True))
            i += 1
        elif (found := _number(seg, i)) is not None:
            value, j = found
            items.append(_Item(token.start, seg[j - 1].end, str(value), "compound", spelled=True))
            i = j
        else:
            items.append(None)
            i += 1
    return items


@dataclass(frozen=True, slots=True)
class _Run:
    items: list[_Item]
    before: _Item | None = None  # a homophone just before ("for one one one ..."), counted in if it makes a card
    after: _Item | None = None


def _runs(items: Sequence[_Item | None]) -> list[_Run]:
    """Split the numbers into runs: at breaks, and at homophones that do not stand between two digit words."""
    runs: list[_Run] = []
    current: list[_Item] = []
    before: _Item | None = None

    def is_digit(k: int) -> bool:
        item = items[k] if 0 <= k < len(items) else None
        return item is not None and item.kind == "digit" and item.spelled

    for k, item in enumerate(items):
        if item is not None and (item.kind != "weak" or (is_digit(k - 1) and is_digit(k + 1))):
            current.append(item)
            continue
        after = item if item is not None and is_digit(k - 1) else None
        if current:
            runs.append(_Run(current, before, after))
        current = []
        before = item if item is not None and is_digit(k + 1) else None
    if current:
        runs.append(_Run(current, before, None))
    return runs


def _spoken_numbers(text: str) -> list[tuple[int, int, str, str]]:
    """``(start, end, tag, digits)`` of each number read out in words (wholly or partly) that is personal data."""
    found: list[tuple[int, int, str, str]] = []
    for seg in _segments(text):
        for run in _runs(_items(seg)):
            choice = _choose(text, run)
            if choice is not None:
                chosen, kind = choice
                if any(item.spelled for item in chosen):
                    found.append((chosen[0].start, chosen[-1].end, kind, "".join(item.digits for item in chosen)))
    return found


def _choose(text: str, run: _Run) -> tuple[list[_Item], str] | None:
    """The run's items with its tag; a homophone beside it joins when that proves a card or Aadhaar number."""
    digits = "".join(item.digits for item in run.items)
    if kind := _checked(digits):
        return run.items, kind
    widened = [
        [*head, *run.items, *tail]
        for head, tail in (([run.before], []), ([], [run.after]), ([run.before], [run.after]))
        if None not in head and None not in tail
    ]
    for items in widened:
        present = [item for item in items if item is not None]
        if kind := _checked("".join(item.digits for item in present)):
            return present, kind
    kind = _classify([item.digits for item in run.items], card_context=_after_card_word(text, run.items[0].start))
    return (run.items, kind) if kind else None


def redact(text: str, *, keep: Collection[str] = ()) -> Redaction:
    """Replace personal data in ``text`` with tags; see the module docstring for what is detected.

    Args:
        text: The text to redact.
        keep: E-mail addresses (lower case) and phone numbers (digits only) to leave in clear: the ones the
            business published (see :func:`redact_turn`). Cards, Aadhaar and PAN are never kept.

    """
    counts: Counter[str] = Counter()

    def tag(kind: str) -> str:
        counts[kind] += 1
        return f"[{kind}]"

    def email(m: re.Match[str]) -> str:
        return m.group() if m.group().lower() in keep else tag("EMAIL")

    def card(m: re.Match[str]) -> str:
        return tag("CARD") if _is_card(_only_digits(m.group())) else m.group()

    def aadhaar(m: re.Match[str]) -> str:
        return tag("AADHAAR") if _is_aadhaar(_only_digits(m.group())) else m.group()

    def number(m: re.Match[str]) -> str:
        if ISO_DATE_RE.fullmatch(m.group()):
            return m.group()
        digits = _only_digits(m.group())
        kind = _classify(_DIGIT_GROUP_RE.findall(m.group()), card_context=_after_card_word(m.string, m.start()))
        if kind is None or (kind == "PHONE" and digits in keep):
            return m.group()
        return tag(kind)

    out = EMAIL_RE.sub(email, text)
    pieces: list[str] = []
    last = 0
    for start, end, kind, digits in _spoken_numbers(out):
        if kind == "PHONE" and digits in keep:
            continue
        pieces += [out[last:start], tag(kind)]
        last = end
    out = "".join([*pieces, out[last:]])
    out = CARD_RE.sub(card, out)
    out = AADHAAR_RE.sub(aadhaar, out)
    out = PAN_RE.sub(lambda _m: tag("PAN"), out)
    out = PHONE_RE.sub(number, out)
    return Redaction(text=out, counts=dict(counts))


def contact_values(text: str) -> set[str]:
    """The e-mail addresses (lower case) and phone numbers (digits) in ``text``, as :func:`redact` finds them."""
    values = {m.group().lower() for m in EMAIL_RE.finditer(text)}
    for m in PHONE_RE.finditer(text):
        digits = _only_digits(m.group())
        if not ISO_DATE_RE.fullmatch(m.group()) and _classify([digits]) == "PHONE":
            values.add(digits)
    values.update(digits for _, _, kind, digits in _spoken_numbers(text) if kind == "PHONE")
    return values


# The desk's side of a call: its turns keep what the business published.
DESK_ROLES = frozenset({"agent", "human"})


async def published_contacts(session: AsyncSession, call_id: str, text: str) -> frozenset[str]:
    """The contacts in ``text`` (see :func:`contact_values`) that the business published itself.

    Published: found in a chunk of a ready knowledge-base document or in the call's persona (greeting,
    consent notice, instructions). The caller's own number and address on the call record never are.
    """
    wanted = contact_values(text)
    if not wanted:
        return frozenset()
    sources: list[str] = []
    own: set[str] = set()
    call = await session.get(Call, call_id)
    if call is not None:
        own = {v for v in ((call.caller_email or "").lower(), _only_digits(call.caller_number or "")) if v}
        persona = await session.get(Persona, call.persona_id) if call.persona_id else None
        if persona is not None:
            sources += [persona.greeting, persona.consent_notice, persona.instructions]
    # Narrowed in SQL (an address as written, a phone number by its last four digits), matched here.
    needles = [value if "@" in value else value[-4:] for value in wanted]
    chunks = await session.execute(
        select(KnowledgeChunk.text)
        .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
        .where(
            KnowledgeDocument.status == "ready",
            or_(*(func.lower(KnowledgeChunk.text).contains(n, autoescape=True) for n in needles)),
        )
    )
    sources += chunks.scalars().all()
    published = set().union(*(contact_values(source) for source in sources)) & wanted
    return frozenset(v for v in published if not any(_same_contact(v, mine) for mine in own))


def _same_contact(value: str, own: str) -> bool:
    if "@" in value:
        return value == own
    # A phone number with or without its country code.
    return len(own) >= MIN_DIGITS and (own.endswith(value) or value.endswith(own))


async def redact_turn(session: AsyncSession, call_id: str, *, role: str, text: str) -> str:
    """The stored form of one transcript turn: the one rule of whose words keep what.

    A caller's (or system) turn is redacted in full. A turn of the desk (:data:`DESK_ROLES`) keeps the
    e-mail addresses and phone numbers the business published (:func:`published_contacts`), so the
    transcript shows what the caller was told; the caller's data it repeats, cards, Aadhaar and PAN are
    redacted as in a caller's turn.
    """
    keep = await published_contacts(session, call_id, text) if role in DESK_ROLES else frozenset()
    return redact(text, keep=keep).text
