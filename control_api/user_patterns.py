r"""Regular expressions written by operators (analysis fields): checked and run by one engine, with a time limit.

Python's ``re`` cannot be stopped: a pattern with nested repetition (``(a+)+$``, ``(\w+\s?)+!``) backtracks for
minutes on one caller turn, and the post-call analysis runs on the API's event loop. The ``regex`` package (the
same syntax as ``re``; pinned in requirements.lock) stops a match after :data:`TIMEOUT_S`: such a field is skipped
for that call and logged, the server carries on. Saving checks the pattern with the same engine.
"""

from __future__ import annotations

from typing import Any

import regex

__all__ = ["MAX_LENGTH", "TIMEOUT_S", "check", "search"]

MAX_LENGTH = 300
TIMEOUT_S = 0.05  # far above what a sane pattern takes on a transcript (microseconds)


def check(pattern: str) -> None:
    """Raise ``ValueError`` (a sentence for the API's problem) when ``pattern`` cannot be an analysis pattern."""
    if len(pattern) > MAX_LENGTH:
        raise ValueError(f"a pattern is at most {MAX_LENGTH} characters")
    try:
        regex.compile(pattern, flags=regex.IGNORECASE | regex.VERSION0)
    except regex.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None


def search(pattern: str, text: str) -> Any:
    """``pattern``'s first match in ``text`` (case ignored), or None.

    Raises ``TimeoutError`` when the match takes longer than :data:`TIMEOUT_S`, ``ValueError`` for a pattern that
    does not compile (one saved before it was checked).
    """
    try:
        return regex.search(pattern, text, flags=regex.IGNORECASE | regex.VERSION0, timeout=TIMEOUT_S)
    except regex.error as exc:
        raise ValueError(str(exc)) from None
