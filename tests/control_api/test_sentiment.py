"""Caller sentiment: a neutral question does not make a call negative; real feelings still count."""

from __future__ import annotations

import pytest

from control_api.services import sentiment

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text",
    [
        "How do I cancel my order?",
        "Is there a problem with my account?",
        "how do i stop the payment",
        "Why was I charged twice?",
    ],
)
def test_a_plain_question_is_neutral(text: str) -> None:
    # VADER alone scores these between -0.2 and -0.4 (on "cancel", "problem", "stop", "charged").
    assert sentiment.score(text) == 0.0
    assert sentiment.label(sentiment.score(text)) == "neutral"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Why is your service so awful and useless?", "negative"),
        ("This is terrible, I am furious", "negative"),
        ("Thanks, that sounds helpful!", "positive"),
    ],
)
def test_feelings_still_count(text: str, expected: str) -> None:
    assert sentiment.label(sentiment.score(text)) == expected


def test_question_detection() -> None:
    assert sentiment.is_question("Can I get a refund")
    assert sentiment.is_question("My bill is wrong?")
    assert not sentiment.is_question("I want to report a lost card")
    assert not sentiment.is_question("")
