"""The brain's sentence choice by meaning: each found passage carries its sentences' closeness to the question.

The retriever scores every sentence of the base (its sentence views, real MiniLM) against the question anyway;
the found passages carry those cosines (``Passage.closeness``) through the server's retriever to the extractive
brain, which then reads out the sentence that answers a caller's own words rather than the one that shares the
most words with them or the section's lead.
"""

from __future__ import annotations

import pytest

from benchmarks.product_kb import DemoKnowledge
from knowledge.views import sentences
from pipelines.brain.extractive import best_sentences, sentence_closeness


@pytest.mark.unit
def test_closeness_is_matched_to_the_brains_own_sentences() -> None:
    pairs = (("Solid white: the router is online.", 0.30), ("Solid amber: no internet connection.", 0.62))
    # Matched whatever the markdown, case or punctuation; a sentence the views split differently takes the best
    # view sentence it holds; one with no view (too short to be one) takes the lowest known, never a favour.
    assert sentence_closeness(
        ["**Solid white**: the router is online.", "solid amber - no internet connection", "Restart it."], pairs
    ) == [0.30, 0.62, 0.30]
    assert sentence_closeness(["Solid white: the router is online. Solid amber: no internet connection."], pairs) == [
        0.62
    ]
    assert sentence_closeness(["Something else entirely."], pairs) is None
    assert sentence_closeness(["Solid white: the router is online."], ()) is None


@pytest.mark.unit
def test_meaning_outweighs_a_shared_word_but_not_when_the_sentences_are_as_close() -> None:
    passage = "Students with a valid student card get 15% off any plan. Only one discount can apply to an account."
    question = "I'm a student and a pensioner, can I have both?"
    # By words alone the sentence sharing "student" wins; the closer sentence in meaning wins with closeness ...
    assert best_sentences(question, passage, max_sentences=1).startswith("Students")
    close = (
        ("Students with a valid student card get 15% off any plan.", 0.20),
        ("Only one discount can apply to an account.", 0.45),
    )
    assert best_sentences(question, passage, max_sentences=1, closeness=close).startswith("Only one")
    # ... and equal closeness leaves the choice to the words.
    level = tuple((s, 0.4) for s, _ in close)
    assert best_sentences(question, passage, max_sentences=1, closeness=level).startswith("Students")


@pytest.mark.integration
async def test_found_passages_carry_each_sentences_closeness_through_the_servers_retriever(
    demo_kb: DemoKnowledge,
) -> None:
    # A caller's own words for one row of the early-termination table: "army", "posted overseas" against the row's
    # "Military deployment abroad"; the words alone pick the row that shares "need" and "address".
    question = "I'm in the army and I'm being posted overseas, so I need to cancel. What do you need from me?"
    retrieval = await demo_kb.retriever.retrieve(question, top_k=3, log=False)
    assert "refunds-and-cancellations.docx" in retrieval.passages[0].citation
    for passage in retrieval.passages:
        # One cosine per sentence view of the passage, in the passage's order.
        assert [s for s, _ in passage.closeness] == sentences(passage.body)
        assert all(-1.0 <= c <= 1.0 for _, c in passage.closeness)
    top = retrieval.passages[0]
    closest = max(top.closeness, key=lambda pair: pair[1])[0]
    assert "Military deployment abroad" in closest
    assert "deployment orders" in best_sentences(question, top.body, closeness=top.closeness)
    assert "deployment orders" not in best_sentences(question, top.body)
