"""Offline sentiment of caller turns with VADER (a lexicon and rules; no model download)."""

from __future__ import annotations

import re
from functools import cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

# VADER's documented thresholds on the compound score.
POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05
# A question or a request names a topic, not a feeling: "How do I cancel my order?" scores -0.25 on the word
# "cancel" alone. It counts only when its wording is strongly emotional ("Why is your service so awful?").
QUESTION_FLOOR = 0.5
# How a spoken question starts (recognisers rarely write the question mark).
_QUESTION_WORDS = frozenset(
    [
        "how",
        "what",
        "why",
        "when",
        "where",
        "who",
        "whom",
        "whose",
        "which",
        "can",
        "could",
        "do",
        "does",
        "did",
        "is",
        "are",
        "was",
        "were",
        "will",
        "would",
        "should",
        "shall",
        "may",
        "might",
        "have",
        "has",
        "am",
    ]
)


def is_request(text: str) -> bool:
    """Whether ``text`` states what the caller wants ("I need to…", "I'd like…", "I want…")."""
    return _REQUEST.match(text) is not None


def is_question(text: str) -> bool:
    """Whether ``text`` is a question: it ends with a question mark or starts with a question word."""
    stripped = text.strip()
    if stripped.endswith("?"):
        return True
    first = stripped.split(maxsplit=1)[0].strip(",.!").lower() if stripped else ""
    return first in _QUESTION_WORDS


# A question inside a longer turn: a clause that starts with a question word ("the internet's been dead for two
# days, do I get anything back"), or a question word followed by a question's verb anywhere (recognisers write
# few commas): "does it cost", "will she be charged". "is"/"are" open a clause mid-turn only after punctuation:
# "this is your fault" asks nothing.
_CLAUSE = re.compile(r"[,.;:!?]\s*|\s+(?:and|but|so)\s+")
_ASKS = re.compile(
    r"\b(?:how|what|why|when|where|who|which)\s+(?:\w+\s+)?(?:do|does|did|can|could|will|would|should|is|are|was|"
    r"were|much|many|long|soon|quickly|else)\b|\b(?:do|does|did|can|could|will|would|should|may)\s+(?:i|we|you|they|it|he|she)\b",
    re.IGNORECASE,
)


def holds_question(text: str) -> bool:
    """Whether ``text`` asks a question anywhere.

    It is one (:func:`is_question`), has a clause that is, or holds a question word with its verb ("how quickly
    can", "do I get").
    """
    if "?" in text or is_question(text):
        return True
    return any(is_question(clause) for clause in _CLAUSE.split(text)) or _ASKS.search(text) is not None


# Politeness, answers and request verbs carry no feeling on a support line: VADER scores "please" +1.3, "yes"
# +1.7, "no" -1.2, "want" +0.3 and the verb in "I'd like to speak to someone" as "like" (+2.0), so a plain
# request or a confirmed turn read as positive and "please" softened real frustration. These words are dropped
# from the lexicon ("would like" is read as "want"); negation handling is VADER's own list and is unchanged.
NO_FEELING = ("please", "pls", "plz", "yes", "yeah", "yep", "no", "nope", "ok", "okay", "want", "wants")
_WANT = re.compile(r"\b(?:would|'d|d)\s+like\b", re.IGNORECASE)
# A request names what the caller wants, as a question does: "I'd like to cancel my subscription".
_REQUEST = re.compile(
    r"^\W*(?:(?:yes|yeah|no|ok|okay|hi|hello|um|uh|so|well)\W+)*(?:i|we)\s*(?:want|need|would like|'d like|wanna)\b",
    re.IGNORECASE,
)


@cache
def _analyzer() -> SentimentIntensityAnalyzer:
    # Loads the lexicon once per process (~50 ms).
    analyzer = SentimentIntensityAnalyzer()
    for word in NO_FEELING:
        analyzer.lexicon.pop(word, None)
    return analyzer


def score(text: str) -> float:
    """VADER's compound score of ``text`` in [-1, 1].

    0 for empty text and for a question or a request without strong feeling.
    """
    if not text.strip():
        return 0.0
    compound = float(_analyzer().polarity_scores(_WANT.sub("want", text))["compound"])
    if abs(compound) < QUESTION_FLOOR and (is_question(text) or is_request(text)):
        return 0.0
    return compound


def label(compound: float) -> str:
    """``positive``, ``negative`` or ``neutral`` for a compound score."""
    if compound >= POSITIVE_THRESHOLD:
        return "positive"
    if compound <= NEGATIVE_THRESHOLD:
        return "negative"
    return "neutral"
