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


@pytest.mark.parametrize(
    "text",
    [
        "I want to speak to a person please",
        "I would like to speak to someone",
        "I'd like to cancel my subscription",
        "Yes please",
        "No, that's not it",
        "Yes, that's right",
    ],
)
def test_a_polite_request_or_an_answer_is_not_a_feeling(text: str) -> None:
    # VADER alone: +0.38, +0.36, +0.13, +0.61, 0.0, +0.40 (on "please", "like", "yes").
    assert sentiment.label(sentiment.score(text)) == "neutral"


def test_please_no_longer_softens_frustration_and_liking_still_counts() -> None:
    assert sentiment.score("please just get me a human, this is useless") < sentiment.score("this is useless") + 0.01
    assert sentiment.label(sentiment.score("I like your service")) == "positive"
    assert sentiment.label(sentiment.score("I want to cancel, this is ridiculous and useless")) == "negative"


def test_question_detection() -> None:
    assert sentiment.is_question("Can I get a refund")
    assert sentiment.is_question("My bill is wrong?")
    assert not sentiment.is_question("I want to report a lost card")
    assert not sentiment.is_question("")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the internet's been dead for two days, do I get anything back", True),
        ("My order was damaged in transit. Can I get a replacement", True),
        ("the water went brown how quickly can it be fixed", True),
        ("what happens if I miss a payment", True),
        ("my card got declined twice does it cost me anything", True),
        ("the engineer never came will he be back tomorrow", True),
        ("This is terrible, I am furious", False),
        ("this is your fault and I want my money back", False),
        ("You are useless, absolutely useless.", False),
    ],
)
def test_a_question_anywhere_in_a_turn_is_found(text: str, expected: bool) -> None:
    assert sentiment.holds_question(text) is expected
