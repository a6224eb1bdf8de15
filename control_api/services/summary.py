"""The offline, extractive summary of a call: what the caller asked and whether each question was answered.

One implementation, used wherever a call is summarised: post-call analysis, a ticket's description, a human
agent's handoff briefing. It works on the stored transcript alone (no model), so it is cheap enough to run while
the call is still going. An agent turn that cites knowledge passages answered the caller turn before it; one
without citations did not (the agent said it could not find the answer, asked back, or made small talk).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# A question longer than this is cut at a word boundary (a summary line, not a transcript).
_QUESTION_CHARS = 140


class TurnLike(Protocol):
    """What the summary reads of a transcript turn (``CallTurn`` rows satisfy it)."""

    @property
    def role(self) -> str:
        """``caller``, ``agent``, ``human`` or ``system``."""
        ...

    @property
    def text(self) -> str:
        """What was said."""
        ...

    @property
    def citations(self) -> Sequence[str]:
        """The knowledge chunk ids an agent turn answered from (empty: not answered from the base)."""
        ...


@dataclass(frozen=True)
class Exchange:
    """One caller question and what came of it."""

    question: str
    answered: bool
    answer: str | None
    citations: tuple[str, ...]


@dataclass(frozen=True)
class CallSummary:
    """The exchanges of a call and their one-paragraph summary."""

    exchanges: tuple[Exchange, ...]
    text: str

    @property
    def unanswered(self) -> list[str]:
        """The questions no agent turn answered from the knowledge base."""
        return [e.question for e in self.exchanges if not e.answered]


def _shorten(text: str, limit: int = _QUESTION_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return f"{cut}…"


def exchanges(turns: Sequence[TurnLike]) -> list[Exchange]:
    """Pair each caller turn with the agent or human turn that followed it.

    Consecutive caller turns with no reply between them are one question (a caller who paused mid-sentence).
    A human agent's reply counts as answered: a person dealt with it.
    """
    result: list[Exchange] = []
    pending: list[str] = []
    for turn in turns:
        text = (turn.text or "").strip()
        if not text:
            continue
        if turn.role == "caller":
            pending.append(text)
        elif turn.role in ("agent", "human") and pending:
            cited = tuple(turn.citations or ())
            answered = bool(cited) or turn.role == "human"
            result.append(Exchange(" ".join(pending), answered, text, cited))
            pending = []
    if pending:
        result.append(Exchange(" ".join(pending), False, None, ()))
    return result


def summarize(turns: Sequence[TurnLike]) -> CallSummary:
    """Summarise a transcript: the questions asked, in order, each marked answered or not."""
    found = exchanges(turns)
    if not found:
        return CallSummary((), "The caller asked no question.")
    answered = [e for e in found if e.answered]
    open_ = [e for e in found if not e.answered]
    parts = [f"The caller asked {len(found)} question{'s' if len(found) != 1 else ''}."]
    if answered:
        parts.append("Answered: " + "; ".join(f'"{_shorten(e.question)}"' for e in answered) + ".")
    if open_:
        parts.append("Not answered: " + "; ".join(f'"{_shorten(e.question)}"' for e in open_) + ".")
    return CallSummary(tuple(found), " ".join(parts))
