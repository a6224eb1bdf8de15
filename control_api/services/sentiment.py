"""Offline sentiment of caller turns with VADER (a lexicon and rules; no model download)."""

from __future__ import annotations

from functools import cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

# VADER's documented thresholds on the compound score.
POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05


@cache
def _analyzer() -> SentimentIntensityAnalyzer:
    # Loads the lexicon once per process (~50 ms).
    return SentimentIntensityAnalyzer()


def score(text: str) -> float:
    """VADER's compound score of ``text`` in [-1, 1] (0 for empty text)."""
    if not text.strip():
        return 0.0
    return float(_analyzer().polarity_scores(text)["compound"])


def label(compound: float) -> str:
    """``positive``, ``negative`` or ``neutral`` for a compound score."""
    if compound >= POSITIVE_THRESHOLD:
        return "positive"
    if compound <= NEGATIVE_THRESHOLD:
        return "negative"
    return "neutral"
