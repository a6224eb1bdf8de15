"""The extractive brain picks the sentence that answers the question's type, on real demo passages."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from knowledge.ingest import prepare
from pipelines.brain import extractive
from pipelines.brain.answer_type import AnswerType, fits, question_type
from pipelines.brain.extractive import best_sentences
from pipelines.contracts import Passage

pytestmark = pytest.mark.unit

DEMO = Path(__file__).resolve().parents[2] / "demo" / "knowledge"


@cache
def passage(document: str, heading_end: str) -> str:
    """The spoken body of the demo chunk of ``document`` whose heading ends with ``heading_end``.

    Parsed and chunked as ingestion does it; the heading line is left out as the brain leaves it out.
    """
    prepared = prepare((DEMO / document).read_bytes(), name_hint=document, max_tokens=180, overlap_tokens=30)
    for chunk in prepared.chunks:
        if (chunk.heading or "").endswith(heading_end):
            return Passage(
                text=chunk.text, score=1.0, document_id=document, chunk_id="c", citation="c", heading=chunk.heading
            ).body
    raise AssertionError(f"no chunk {heading_end!r} in {document}")


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("When will my refund arrive?", AnswerType.WHEN),
        ("How long does the installation take?", AnswerType.WHEN),
        ("What happens when I miss a payment?", AnswerType.OTHER),
        ("How much is the early termination fee?", AnswerType.AMOUNT),
        ("How many extenders do I get?", AnswerType.AMOUNT),
        ("What does a second move cost?", AnswerType.AMOUNT),
        ("Can I change my appointment?", AnswerType.ACTION),
        ("How do I pay the fee?", AnswerType.ACTION),
        ("Where do I send suspicious emails?", AnswerType.PLACE),
        ("Who handles bereavement calls?", AnswerType.PERSON),
        ("Tell me about the router", AnswerType.OTHER),
    ],
)
def test_question_type(question: str, kind: AnswerType) -> None:
    assert question_type(question) is kind


def test_sentence_kinds() -> None:
    assert fits("We reply to emails within 2 business days.", AnswerType.WHEN)
    assert fits("Lines open Monday to Friday 8am to 8pm.", AnswerType.WHEN)
    assert not fits("You may cancel by phone.", AnswerType.WHEN)  # "may" is no month
    assert fits("Any further move within 12 months costs $49.", AnswerType.AMOUNT)
    assert fits("Standard installation is free on every contract.", AnswerType.AMOUNT)
    assert not fits("Please do not send card details by email.", AnswerType.AMOUNT)
    assert fits("You can reschedule an appointment in the app.", AnswerType.ACTION)
    assert fits("Go to Account > Moving home.", AnswerType.PLACE)
    assert fits("Forward suspicious emails to phishing@kestrel.example.", AnswerType.PLACE)
    assert fits("Our bereavement team will call you back.", AnswerType.PERSON)
    assert not fits("Anything at all.", AnswerType.OTHER)


# (question, document, heading, a phrase the one chosen sentence must hold)
CASES = [
    # when -> a time or a span
    (
        "When will the refund reach me?",
        "refunds-and-cancellations.docx",
        "How refunds are paid",
        "5 to 7 business days",
    ),
    ("When do you answer emails?", "contact-and-opening-hours.html", "Email", "within 2 business days"),
    (
        "How long is the engineer visit?",
        "installation-appointments.txt",
        "How long does the installation take?",
        "2 hours",
    ),
    ("When must I tell you about my move?", "moving-home.docx", "When to tell us", "21 days"),
    # how much -> a price or an amount
    (
        "How much does installation cost on Kestrel Flex?",
        "installation-appointments.txt",
        "How much does installation cost?",
        "$79",
    ),
    (
        "How much does it cost to change my appointment late?",
        "installation-appointments.txt",
        "Can I change my appointment?",
        "$30",
    ),
    ("How much is the early termination fee?", "refunds-and-cancellations.docx", "Early termination fee", "$15"),
    # can I / how do I -> a permission or a step
    (
        "Can I change my appointment?",
        "installation-appointments.txt",
        "Can I change my appointment?",
        "You can reschedule",
    ),
    ("How do I cancel a new contract?", "refunds-and-cancellations.docx", "Cooling-off period", "You can cancel"),
    # where -> a place, an address or a menu path
    (
        "Where do I forward phishing emails?",
        "online-safety.html",
        "Scam calls and phishing emails",
        "phishing@kestrel.example",
    ),
    ("Where do I send a letter?", "contact-and-opening-hours.html", "Post and head office", "40 Harbour Row"),
    # who -> a person or a team
    ("Who do I call about moving home?", "contact-and-opening-hours.html", "Phone", "Team: Moving home"),
]


@pytest.mark.parametrize(("question", "document", "heading", "phrase"), CASES)
def test_sentence_by_question_type(question: str, document: str, heading: str, phrase: str) -> None:
    answer = best_sentences(question, passage(document, heading), max_sentences=1)
    assert phrase in answer, answer


def test_type_decides_between_sentences_that_share_the_question_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sentence of the email passage is about email; "when" gets the one with the reply time."""
    text = passage("contact-and-opening-hours.html", "Email")
    question = "When do you answer emails?"
    assert "within 2 business days" in best_sentences(question, text, max_sentences=1)
    monkeypatch.setattr(extractive, "TYPE_BONUS", 0.0)
    assert "within 2 business days" not in best_sentences(question, text, max_sentences=1)


def test_falls_back_to_the_lead_when_no_sentence_fits() -> None:
    """A "when" question about a passage with no time in it is answered with the passage's lead."""
    text = passage("contact-and-opening-hours.html", "Contact us")
    answer = best_sentences("When can I reach Kestrel Broadband?", text, max_sentences=1)
    assert answer.startswith("You can reach Kestrel Broadband")


def test_type_bonus_is_what_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the question-type preference some of the cases above get a neighbouring sentence."""
    monkeypatch.setattr(extractive, "TYPE_BONUS", 0.0)
    wrong = [
        case for case in CASES if case[3] not in best_sentences(case[0], passage(case[1], case[2]), max_sentences=1)
    ]
    assert wrong, "every case passes without the preference: the cases do not test it"
