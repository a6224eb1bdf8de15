"""The title a person reads: one rule for every document, whatever format it came in.

A parser reports the title the file itself gives (a first heading, a ``<title>``, a workbook or PDF property),
as written; :func:`display_title` turns it into what a person would write, or, where the file gives none,
makes one from the file name. Only letter case changes in a title the file gives (``display_title(t).lower()
== t.lower()``, whitespace aside), so text indexed from titles (keyword search lower-cases) is the same
whichever of the two it was built from.
"""

from __future__ import annotations

import re

# Short all-caps words kept as they are when a heading shouts. Words that are also ordinary English words in
# capitals ("IT", "US") are left out: "CONTACT US" must become "Contact Us".
ACRONYMS = frozenset(
    {
        "API",
        "CSV",
        "DNS",
        "DPDP",
        "EU",
        "FAQ",
        "GDPR",
        "HDMI",
        "ID",
        "IP",
        "ISP",
        "PC",
        "PDF",
        "PIN",
        "PPPOE",
        "SIM",
        "SMS",
        "SSID",
        "TV",
        "UK",
        "URL",
        "USA",
        "USB",
        "VAT",
        "VPN",
    }
)
# Written in lower case inside a title (not as its first word, nor as the first word after a separator).
MINOR_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "as",
        "at",
        "but",
        "by",
        "for",
        "from",
        "in",
        "into",
        "nor",
        "of",
        "on",
        "or",
        "per",
        "the",
        "to",
        "via",
        "vs",
        "with",
    ]
)
# In a heading that does not shout, an all-caps word this long or shorter is taken as meant ("VAT", "GDPR").
KEEP_CAPS_UP_TO = 4

_SEPARATORS = frozenset({"-", "–", "—", "|", "/", ":", "·"})
_INNER_MARK = re.compile(r"[^\w'’\-]")  # "Q&A", "A/V", "U.K.": written that way on purpose
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")


def display_title(raw: str | None, filename: str | None = None) -> str | None:
    """The title a person reads for a document.

    The rule, for a title the file gives:

    - A heading in capitals throughout ("KESTREL BROADBAND - SERVICE GUIDE") is put in title case: each word
      with a capital first letter and the rest lower case ("Kestrel Broadband - Service Guide"), except a
      known acronym (:data:`ACRONYMS`: "FAQ", "PDF", "VAT", "ID", "UK", "SIM", "TV" ...), a word with a digit
      ("4G", "24/7"), a word with a mark inside ("Q&A"), and the small words of :data:`MINOR_WORDS` ("and",
      "of", "the" ...), which are lower case unless they open the title or follow a separator (" - ", ":").
    - A heading in mixed case is kept, except that an all-caps word of more than :data:`KEEP_CAPS_UP_TO`
      letters which is no known acronym gets a capital first letter and the rest lower case ("Our NEWEST
      plans" → "Our Newest plans"; "VAT on EU orders" is kept).

    Where the file gives no title (``raw`` empty or the file name itself: CSV, a workbook without a title
    property), the title comes from the file name: its stem, with ``_``, ``-`` and ``.`` read as spaces, a
    capital first letter and the known acronyms in capitals ("pricing_plans.csv" → "Pricing plans",
    "general-faq.csv" → "General FAQ"). The rule is idempotent: a title it returns comes back unchanged.

    Args:
        raw: The title the file gives, as its parser found it, or ``None``.
        filename: The document's file name, for the title of a file that gives none.

    Returns:
        The title, or ``None`` when there is neither a title nor a file name to make one from.

    """
    text = " ".join((raw or "").split())
    if text and text != filename:
        return _fix_case(text)
    return title_from_filename(filename) if filename else None


def title_from_filename(filename: str) -> str | None:
    """A title made from a file name ("pricing_plans.csv" → "Pricing plans"); ``None`` for a name of no words."""
    stem = _EXTENSION.sub("", filename.strip()) or filename.strip()
    words = " ".join(re.sub(r"[_\-.]+", " ", stem).split())
    if not any(c.isalnum() for c in words):
        return None
    if _shouts(words):
        return _fix_case(words)
    fixed = " ".join(w.upper() if w.upper() in ACRONYMS and w.islower() else w for w in words.split(" "))
    return fixed[:1].upper() + fixed[1:]


def _shouts(text: str) -> bool:
    cased = [c for c in text if c.isupper() or c.islower()]
    return bool(cased) and all(c.isupper() for c in cased)


def _capitalised(word: str) -> str:
    return "-".join(part[:1].upper() + part[1:].lower() for part in word.split("-"))


def _fix_case(text: str) -> str:
    shouting = _shouts(text)
    out: list[str] = []
    opens = True  # the next word opens the title or a part of it
    for token in text.split(" "):
        start = len(token) - len(token.lstrip("\"'“‘(["))
        end = len(token.rstrip("\"'”’)].,;:!?"))
        core = token[start:end] if end > start else ""
        word = core
        if core and any(c.isalpha() for c in core):
            word = _word(core, shouting=shouting, opens=opens)
        out.append(token[:start] + word + token[end:] if core else token)
        if token in _SEPARATORS or token.endswith(":"):
            opens = True
        elif core:
            opens = False
    result = " ".join(out)
    # Only letter case may change: the indexed text built from a title stays the same.
    return result if result.lower() == text.lower() else text


def _word(core: str, *, shouting: bool, opens: bool) -> str:
    if any(c.isdigit() for c in core) or _INNER_MARK.search(core) or core.upper() in ACRONYMS:
        return core
    if not _shouts(core):
        return core
    if shouting:
        if core.lower() in MINOR_WORDS and not opens:
            return core.lower()
        return _capitalised(core)
    letters = sum(c.isalpha() for c in core)
    return core if letters <= KEEP_CAPS_UP_TO else _capitalised(core)
