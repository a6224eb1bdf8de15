"""The extractive call summary: questions paired with replies, answered only when a reply cites the base."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from control_api.services.summary import request_seqs, summarize

pytestmark = pytest.mark.unit


@dataclass
class Turn:
    role: str
    text: str
    citations: list[str] = field(default_factory=list)
    seq: int = 0


def test_a_cited_reply_answers_the_question_and_an_uncited_one_does_not() -> None:
    summary = summarize(
        [
            Turn("agent", "Hello, how can I help?"),
            Turn("caller", "How do I reset my password?"),
            Turn("agent", "Tap Forgot password on the sign-in screen.", ["c1"]),
            Turn("caller", "Do you sell gift cards?"),
            Turn("agent", "I couldn't find that in our help articles."),
        ]
    )
    assert [(e.question, e.answered) for e in summary.exchanges] == [
        ("How do I reset my password?", True),
        ("Do you sell gift cards?", False),
    ]
    assert summary.unanswered == ["Do you sell gift cards?"]
    assert summary.text == (
        'The caller asked 2 questions. Answered: "How do I reset my password?". '
        'Not answered: "Do you sell gift cards?".'
    )


def test_split_caller_turns_are_one_question_and_a_human_reply_counts_as_answered() -> None:
    summary = summarize(
        [Turn("caller", "I want to"), Turn("caller", "cancel my plan"), Turn("human", "I can do that for you.")]
    )
    assert [(e.question, e.answered) for e in summary.exchanges] == [("I want to cancel my plan", True)]


def test_a_question_left_hanging_at_hang_up_is_unanswered_and_long_ones_are_cut() -> None:
    long = "word " * 60
    summary = summarize([Turn("caller", long)])
    assert summary.unanswered == [long.strip()]
    assert summary.text.endswith('…".')
    assert len(summary.text) < 220
    assert summarize([]).text == "The caller asked no question."


def test_a_turn_the_agent_ran_a_request_tool_on_is_not_a_question() -> None:
    turns = [
        Turn("caller", "When are you open?", seq=1),
        Turn("agent", "Nine to five.", ["c1"], seq=2),
        Turn("caller", "I want to speak", seq=3),
        Turn("caller", "to a person please.", seq=4),
        Turn("agent", "Nobody is free; we will call you back.", seq=5),
        Turn("caller", "And a ticket for my broken router.", seq=6),
    ]
    events = [("tool_call", 4, {"tool": "transfer_to_human"}), ("tool_call", 6, {"tool": "create_ticket"})]
    events += [("tool_call", 1, {"tool": "search_knowledge_base"}), ("handoff", None, {})]
    requests = request_seqs(events)
    assert requests == {4, 6}
    summary = summarize(turns, requests=requests)
    assert [e.question for e in summary.exchanges] == ["When are you open?"]
    assert summary.unanswered == [] and summary.text == (
        'The caller asked 1 question. Answered: "When are you open?". '
        'Asked for: "I want to speak to a person please."; "And a ticket for my broken router.".'
    )
    assert summary.requests == ("I want to speak to a person please.", "And a ticket for my broken router.")
    # Only a request: the person taking the call still reads what the caller wanted.
    alone = summarize(turns[2:5], requests={4})
    assert alone.text == 'The caller asked no question. Asked for: "I want to speak to a person please.".'
    # Without the tool events the request counts as an unanswered question (what the transcript alone says).
    assert summarize(turns).unanswered == ["I want to speak to a person please.", "And a ticket for my broken router."]
