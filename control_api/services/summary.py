"""The offline, extractive summary of a call: what the caller asked and whether each question was answered.

One implementation, used wherever a call is summarised: post-call analysis, a ticket's description, a human
agent's handoff briefing. It works on the stored transcript alone (no model), so it is cheap enough to run while
the call is still going. An agent turn that cites knowledge passages answered the caller turn before it; one
without citations did not (the agent said it could not find the answer, asked back, or made small talk).

A caller turn on which the agent ran a request tool (``REQUEST_TOOLS``: a transfer to a person, a ticket) was a
request, not a knowledge question: it is neither answered nor unanswered, is left out of the questions, and is
named apart ("Asked for: …").
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

# A question longer than this is cut at a word boundary (a summary line, not a transcript).
_QUESTION_CHARS = 140
# The call tools that act on a caller's request (``pipelines.tools`` TRANSFER and TICKET, named as the voice side
# records them in ``tool_call`` events): the caller turn they answer is a request, not a knowledge question.
REQUEST_TOOLS = frozenset({"transfer_to_human", "create_ticket"})


class TurnLike(Protocol):
    """What the summary reads of a transcript turn (``CallTurn`` rows satisfy it)."""

    @property
    def seq(self) -> int:
        """The turn's position in the call (what ``tool_call`` events name as their ``turn_seq``)."""
        ...

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
    requests: tuple[str, ...] = ()

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


def exchanges(turns: Sequence[TurnLike], *, requests: Collection[int] = ()) -> list[Exchange]:
    """Pair each caller question with the agent or human turn that followed it.

    Consecutive caller turns with no reply between them are one question (a caller who paused mid-sentence).
    A human agent's reply counts as answered: a person dealt with it.

    Args:
        turns: The call's transcript, in order.
        requests: The seqs of caller turns on which the agent ran a request tool (:func:`request_seqs`): those
            turns, with the reply to them, are requests and are left out.
    """
    return _pair(turns, requests)[0]


def _pair(turns: Sequence[TurnLike], requests: Collection[int]) -> tuple[list[Exchange], list[str]]:
    """The call's questions (:func:`exchanges`) and, apart, the words of its requests."""
    result: list[Exchange] = []
    asked_for: list[str] = []
    pending: list[str] = []
    request = False
    for turn in turns:
        text = (turn.text or "").strip()
        if not text:
            continue
        if turn.role == "caller":
            pending.append(text)
            request = request or turn.seq in requests
        elif turn.role in ("agent", "human") and pending:
            cited = tuple(turn.citations or ())
            answered = bool(cited) or turn.role == "human"
            if request:
                asked_for.append(" ".join(pending))
            else:
                result.append(Exchange(" ".join(pending), answered, text, cited))
            pending, request = [], False
    if pending:
        if request:
            asked_for.append(" ".join(pending))
        else:
            result.append(Exchange(" ".join(pending), False, None, ()))
    return result, asked_for


def request_seqs(events: Sequence[tuple[str, int | None, dict[str, object] | None]]) -> set[int]:
    """The caller turns that were requests, from a call's ``(kind, turn_seq, data)`` events.

    A ``tool_call`` event of a ``REQUEST_TOOLS`` tool names the caller turn the agent was answering.
    """
    return {
        seq
        for kind, seq, data in events
        if kind == "tool_call" and seq is not None and (data or {}).get("tool") in REQUEST_TOOLS
    }


def summarize(turns: Sequence[TurnLike], *, requests: Collection[int] = ()) -> CallSummary:
    """Summarise a transcript: the questions asked, in order, each marked answered or not, then the requests.

    A request (a person, a ticket) is not a question, so it is neither answered nor unanswered; the summary
    still says what the caller asked for, which is what a person taking the call reads first.
    """
    found, asked_for = _pair(turns, requests)
    answered = [e for e in found if e.answered]
    open_ = [e for e in found if not e.answered]
    if found:
        parts = [f"The caller asked {len(found)} question{'s' if len(found) != 1 else ''}."]
    else:
        parts = ["The caller asked no question."]
    if answered:
        parts.append("Answered: " + "; ".join(f'"{_shorten(e.question)}"' for e in answered) + ".")
    if open_:
        parts.append("Not answered: " + "; ".join(f'"{_shorten(e.question)}"' for e in open_) + ".")
    if asked_for:
        parts.append("Asked for: " + "; ".join(f'"{_shorten(text)}"' for text in asked_for) + ".")
    return CallSummary(tuple(found), " ".join(parts), tuple(asked_for))
