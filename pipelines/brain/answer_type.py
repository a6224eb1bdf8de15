"""What kind of answer a caller's question asks for, and which sentences hold that kind of answer.

A "when" question is answered by a sentence holding a time or a date, a "how much" question by one holding a
price, an amount or a number, a "can I" / "how do I" question by a permission, a rule or a step, a "where"
question by a place, an address, a web address or a menu path, a "who" question by a person or a team. The
extractive brain (:func:`pipelines.brain.extractive.best_sentences`) prefers, among the passage's sentences
that share the question's words, the ones that hold the asked-for kind; when none does it keeps its usual choice
(usually the passage's lead). The patterns are general English, not words of any one knowledge base.
"""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = ["AnswerType", "fits", "question_type"]


class AnswerType(StrEnum):
    """The kind of answer a question asks for."""

    WHEN = "when"
    AMOUNT = "amount"
    ACTION = "action"
    PLACE = "place"
    PERSON = "person"
    OTHER = "other"


# Checked in this order: "how long does a refund take" asks for a time span before anything else, "how much"
# before "how do I", and "how do I pay the fee" asks for a step before the fee's amount.
_QUESTION_PATTERNS: tuple[tuple[AnswerType, re.Pattern[str]], ...] = (
    (
        AnswerType.WHEN,
        re.compile(
            r"(?<!happens )(?<!happen )\b(when|what time|which day|what day|what date|how long|how soon|"
            r"how quickly|how often|"
            r"until what|by what time|opening hours|open on|deadline)\b"
        ),
    ),
    (AnswerType.AMOUNT, re.compile(r"\b(how much|how many|how big|how fast|what percentage)\b")),
    (AnswerType.PLACE, re.compile(r"\b(where|which (?:website|page|address|store|menu)|web address|address)\b")),
    (AnswerType.PERSON, re.compile(r"\b(who|whom|which (?:team|department|person))\b")),
    (
        AnswerType.ACTION,
        re.compile(
            r"\b(can i|could i|may i|am i allowed|is it possible|do i need|should i|must i|how do i|how can i|"
            r"how to|how would i|what do i do|what should i do|is there a way|are we allowed|can we|can you)\b"
        ),
    ),
    (
        AnswerType.AMOUNT,
        re.compile(
            r"\b(cost|costs|price|prices|fee|fees|charge|charges|charged|allowance|limit|rate|speed|discount)\b"
        ),
    ),
)

_MONTHS = (
    # "May" is left out: "you may" is no date.
    "january|february|march|april|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekdays?|weekends?|bank holidays?"
_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|"
    "sixty|ninety|hundred|thousand|half|a few|several"
)
_UNITS_OF_TIME = r"(?:minutes?|hours?|days?|weeks?|months?|years?|working days?|business days?)"
_SENTENCE_PATTERNS: dict[AnswerType, re.Pattern[str]] = {
    AnswerType.WHEN: re.compile(
        rf"\b\d{{1,2}}(?::\d{{2}})?\s?(?:am|pm|a\.m\.|p\.m\.)|\b\d{{1,2}}:\d{{2}}\b|\b(?:{_MONTHS})\b|\b(?:{_DAYS})\b|"
        rf"\b(?:\d+|{_NUMBER_WORDS})(?:\s|-)+{_UNITS_OF_TIME}\b|\b\d{{1,2}}(?:st|nd|rd|th)\b|"
        r"\b(?:midnight|noon|midday|today|tomorrow|tonight|overnight|daily|weekly|monthly|annually|yearly|"
        r"immediately|straight away|24/7|around the clock|by the end of|each month|"
        r"every month|every day|next day|same day)\b",
        re.IGNORECASE,
    ),
    AnswerType.AMOUNT: re.compile(
        rf"[$£€¥]\s?\d|\b\d+(?:[.,]\d+)?\s?(?:%|percent|pounds?|dollars?|euros?|pence|cents?|p\b|gb|mb|tb|mbps|gbps)|"
        rf"\b\d+(?:[.,]\d+)?\b|\b(?:free|no charge|no cost|at no extra|unlimited|{_NUMBER_WORDS})\b",
        re.IGNORECASE,
    ),
    AnswerType.ACTION: re.compile(
        r"\b(?:you can|you can't|you cannot|you may|you may not|you must|you need to|you will need|you'll need|"
        r"you should|you are able|you're able|you are not able|not allowed|allowed|permitted|not possible|"
        r"is possible|only if|as long as|to do this|to change|to cancel|to add|to remove|to update|to set up)\b|"
        r"^(?:go|open|tap|click|select|choose|press|call|visit|sign in|log in|enter|type|turn|switch|unplug|"
        r"plug|restart|reset|hold|wait|send|email|fill|use|check|follow|contact)\b|^(?:step\s*\d|\d+[.)])",
        re.IGNORECASE,
    ),
    AnswerType.PLACE: re.compile(
        # web and email addresses, phone numbers, menu paths ("Account > Moving home")
        r"https?://|\bwww\.|\b[\w.+-]+@[\w-]+\.\w|\b\d{3,5}\s?\d{3}\s?\d{3,4}\b|"
        r"\b[a-z0-9-]+\.(?:com|co\.uk|org|net|io|uk|gov)\b|\s>\s|\b(?:go to|visit|in the app|"
        r"on the website|online at|in store|in-store|address|street|road|avenue|settings|menu|page|tab|portal|app)\b|"
        # a street address ("40 Harbour Row") or a UK / US postcode
        r"\b\d+\s+[A-Z][a-z]+\s+(?:Row|Street|St|Road|Rd|Avenue|Ave|Lane|Way|Close|Drive|Place|Square|Court)\b|"
        r"\b[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}\b|\b[A-Z]{2}\s\d{5}\b",
        re.IGNORECASE,
    ),
    AnswerType.PERSON: re.compile(
        r"\b(?:team|department|desk|manager|agent|adviser|advisor|engineer|technician|specialist|staff|"
        r"representative|officer|ombudsman|supervisor|colleague|we|our)\b",
        re.IGNORECASE,
    ),
}


def question_type(question: str) -> AnswerType:
    """The kind of answer ``question`` asks for (``OTHER`` when it says none clearly)."""
    text = " ".join(question.lower().split())
    for kind, pattern in _QUESTION_PATTERNS:
        if pattern.search(text):
            return kind
    return AnswerType.OTHER


def fits(sentence: str, kind: AnswerType) -> bool:
    """Whether ``sentence`` holds the kind of answer ``kind`` (always False for ``OTHER``)."""
    pattern = _SENTENCE_PATTERNS.get(kind)
    return bool(pattern and pattern.search(sentence.strip()))
