"""benchmarks.sentence_choice: its figures per passage shape and weight."""

from __future__ import annotations

import pytest

from benchmarks.heldout_eval import Question
from benchmarks.sentence_choice import Case, measure

pytestmark = pytest.mark.unit

ROW = "Students with a valid student card get 15% off any plan."
OTHERS = (
    "Customers aged 65 or over get $5 off every month.",
    "Paying by direct debit takes a further $3 off.",
    "Discounts show on your next bill.",
)
RULE = "Only one of these discounts can apply to an account."


def _case() -> Case:
    q = Question("s1", "I'm a student and a pensioner, can I have both?", ({"document": "d", "expect": "Only one"},))
    # Words alone pick the run from the student row, three sentences that stop short of the rule.
    own = (f"{ROW} {' '.join(OTHERS)} {RULE}", ((ROW, 0.20), *((o, 0.25) for o in OTHERS), (RULE, 0.45)))
    lead = "Our plans come with a router and free installation."
    merged = (f"{lead}\n\n{own[0]}", ((lead, 0.10), *own[1]))
    return ("sentence_dev", q, {"own": own, "prev+own": merged})


def test_each_shape_is_counted_and_the_weight_decides_the_sentence() -> None:
    words_only = measure([_case()], 0.0)
    by_meaning = measure([_case()], 6.0)
    assert words_only["right_answer"] == {"own": "0/1", "own/sentence_dev": "0/1", "prev+own": "0/1"}
    assert by_meaning["right_answer"] == {"own": "1/1", "own/sentence_dev": "1/1", "prev+own": "1/1"}
    assert by_meaning["right_answer_share"] == {"own": 1.0, "prev+own": 1.0}
    assert (words_only["own_answers_changed"], by_meaning["own_answers_changed"]) == (0, 1)
