"""Offline sentiment of caller turns with VADER (a lexicon and rules; no model download)."""

from __future__ import annotations

from functools import cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

# VADER's documented thresholds on the compound score.
POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05
# A question names a topic, not a feeling: "How do I cancel my order?" scores -0.25 on the word "cancel" alone.
# A question counts only when its wording is strongly emotional ("Why is your service so awful?").
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


def is_question(text: str) -> bool:
    """Whether ``text`` is a question: it ends with a question mark or starts with a question word."""
    stripped = text.strip()
    if stripped.endswith("?"):
        return True
    first = stripped.split(maxsplit=1)[0].strip(",.!").lower() if stripped else ""
    return first in _QUESTION_WORDS


@cache
def _analyzer() -> SentimentIntensityAnalyzer:
    # Loads the lexicon once per process (~50 ms).
    return SentimentIntensityAnalyzer()


def score(text: str) -> float:
    """VADER's compound score of ``text`` in [-1, 1] (0 for empty text and for a question without strong feeling)."""
    if not text.strip():
        return 0.0
    compound = float(_analyzer().polarity_scores(text)["compound"])
    if abs(compound) < QUESTION_FLOOR and is_question(text):
        return 0.0
    return compound


def label(compound: float) -> str:
    """``positive``, ``negative`` or ``neutral`` for a compound score."""
    if compound >= POSITIVE_THRESHOLD:
        return "positive"
    if compound <= NEGATIVE_THRESHOLD:
        return "negative"
    return "neutral"
