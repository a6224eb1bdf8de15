"""Sentence views of passages (knowledge/views.py): real MiniLM, real embedded store, a small base.

Each mechanism on its own: a caller's plain-words question about one fact of a long passage is lifted by that
fact's sentence; an off-topic question is still "not found" with the threshold calibrated under views; the
views' vectors are stored and reused for an unchanged base; a calibration made under the plain rule is not
reused once views are on; views are dropped when the base changes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from knowledge import calibration as calib
from knowledge import retrieval as retrieval_module
from knowledge import views as views_module
from knowledge.embedders import create_embedder
from knowledge.embedders.base import Embedder
from knowledge.kb import KnowledgeBase
from knowledge.retrieval import HybridRetriever, RetrievalConfig
from knowledge.stores.embedded import EmbeddedStore
from knowledge.types import Chunk, StoredChunk

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# Long passages of several facts each (the shape that hides one fact from a whole-passage embedding).
PASSAGES: dict[str, tuple[str, str]] = {
    "discounts": (
        "Plans > Discounts",
        "Plans > Discounts\nWe offer several ways to lower your monthly bill. Students with a valid student card "
        "get 15% off any plan. Customers aged 65 or over get $5 off every month. Paying by direct debit takes a "
        "further $3 off. Only one of the student and the age discount can apply to an account.",
    ),
    "router": (
        "Router > What the lights mean",
        "Router > What the lights mean\nSolid white means the router is online and working normally. Flashing "
        "white means it is starting up. Solid amber means it has no internet connection: restart it and check "
        "the cables. Red means there is no signal from the fibre line.",
    ),
    "moving": (
        "Moving home > When to tell us",
        "Moving home > When to tell us\nTell us about your move at least 21 days before your moving date in the "
        "app. The first move in any twelve months is free and a further move costs $49. Your contract and price "
        "lock continue unchanged.",
    ),
    "mail": (
        "Mail > Mailboxes",
        "Mail > Mailboxes\nEvery account includes up to five email addresses. Each mailbox holds 10 GB of email. "
        "Suspected spam is moved to the Junk folder and deleted after 30 days.",
    ),
    "installation": (
        "Installation > Appointments",
        "Installation > Appointments\nEngineers visit Monday to Friday in a morning or an afternoon slot. Someone "
        "aged 18 or over must be at home for the whole visit. You can move an appointment free of charge up to 48 "
        "hours before it starts.",
    ),
    "payment": (
        "Billing > Paying late",
        "Billing > Paying late\nIf a payment is more than 10 days late we add a fee of $7.50. If you are "
        "struggling to pay, call us and we can set up a payment plan of up to six months with no late fees.",
    ),
}


async def _embedder() -> Embedder:
    embedder = create_embedder("minilm", cache_dir=ROOT / "data" / "models")
    await embedder.warm()
    return embedder


async def _base(embedder: Embedder, *, views: bool = True) -> KnowledgeBase:
    store = EmbeddedStore(dimension=embedder.dimension)
    retriever = HybridRetriever(
        embedder=embedder, store=store, config=RetrievalConfig(score_threshold=0.47, views=views)
    )
    kb = KnowledgeBase(embedder=embedder, store=store, retriever=retriever)
    for doc, (heading, text) in PASSAGES.items():
        await store.add(
            await kb.embed_chunks(
                doc, doc, [Chunk(seq=0, text=text, heading=heading, page=None, token_count=len(text.split()))]
            )
        )
    return kb


def test_views_are_the_sentences_with_their_section_name() -> None:
    heading, text = PASSAGES["discounts"]
    chunk = StoredChunk(id="d:0", document_id="d", seq=0, text=text, vector=(0.0,), title="t", heading=heading)
    views = views_module.passage_views(chunk)
    assert views[0] == "Discounts: We offer several ways to lower your monthly bill."
    assert "Discounts: Customers aged 65 or over get $5 off every month." in views
    assert all(not v.startswith("Discounts: Plans") for v in views)  # the heading line is not a view
    assert views_module.sentences("- Solid white.\n- Red: no signal from the fibre line.") == [
        "Red: no signal from the fibre line."  # list dashes stripped; a two-word line is not a view
    ]


async def test_a_plain_words_question_is_lifted_by_the_sentence_that_answers_it(tmp_path: Path) -> None:
    embedder = await _embedder()
    question = "my mum is seventy, does she get anything knocked off?"
    plain = await _base(embedder, views=False)
    with_views = await _base(embedder)
    await plain.retriever.enable_calibration(tmp_path / "plain")
    await with_views.retriever.enable_calibration(tmp_path / "views")
    assert plain.retriever.views is None
    assert with_views.retriever.views is not None and len(with_views.retriever.views) >= 15

    before = await plain.retrieve(question)
    after = await with_views.retrieve(question)
    assert after.passages[0].document_id == "discounts"
    top_before = next(p.score for p in before.passages if p.document_id == "discounts")
    # The passage's score rose by half of what its best sentence adds over the whole passage.
    assert after.passages[0].score > top_before + 0.02
    views = with_views.retriever.views
    cosine, best = views.scores(np.asarray((await embedder.embed_array([question]))[0], dtype=np.float32))
    i = next(i for i, c in enumerate(views.chunks) if c.document_id == "discounts")
    assert best[i] > cosine[i]
    assert views_module.lifted(float(cosine[i]), float(best[i])) == pytest.approx(
        float(cosine[i]) + 0.5 * (float(best[i]) - float(cosine[i]))
    )


async def test_off_topic_questions_are_still_not_found_with_views(tmp_path: Path) -> None:
    embedder = await _embedder()
    kb = await _base(embedder)
    cal = await kb.retriever.enable_calibration(tmp_path)
    assert cal.source == "calibrated" and cal.rule == calib.rule(views=True)
    assert cal.negative_p95 is not None and cal.negative_p95 < cal.threshold
    for question in ("Who won the football cup final?", "What is a good recipe for pancakes?"):
        assert not (await kb.retrieve(question)).found, question
    for question in ("How long before my moving date should I tell you?", "How much space does a mailbox have?"):
        assert (await kb.retrieve(question)).found, question


async def test_views_are_stored_and_reused_and_a_plain_rule_calibration_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = await _embedder()
    plain = await _base(embedder, views=False)
    plain_cal = await plain.retriever.enable_calibration(tmp_path)
    assert plain_cal.rule == calib.rule(views=False) and not (tmp_path / views_module.FILE_NAME).exists()

    kb = await _base(embedder)
    cal = await kb.retriever.enable_calibration(tmp_path)
    assert cal.rule == calib.rule(views=True) and cal.calibrated_at  # derived again under the new rule
    assert json.loads((tmp_path / calib.FILE_NAME).read_text())["rule"] == calib.rule(views=True)
    assert (tmp_path / views_module.FILE_NAME).exists()

    # An unchanged base: the views' vectors are loaded, not embedded again.
    calls: list[int] = []
    original = embedder.embed_array

    async def counting(texts: list[str]) -> object:
        calls.append(len(texts))
        return await original(texts)

    monkeypatch.setattr(embedder, "embed_array", counting)
    again = await _base(embedder)
    calls.clear()
    assert await again.retriever.enable_calibration(tmp_path) == cal
    assert calls == [] and again.retriever.views is not None
    assert np.allclose(again.retriever.views.vectors, kb.retriever.views.vectors)  # type: ignore[union-attr]


async def test_views_follow_the_base_when_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = await _embedder()
    kb = await _base(embedder)
    await kb.retriever.enable_calibration(tmp_path)
    monkeypatch.setattr(retrieval_module, "CHANGE_CHECK_S", 0.0)
    await kb.store.delete_document("discounts")
    await kb.retrieve("anything")
    await kb.retriever.calibration_settled()
    views = kb.retriever.views
    assert views is not None and all(c.document_id != "discounts" for c in views.chunks)
    result = await kb.retrieve("Do customers aged 65 or over get money off?")
    assert all(p.document_id != "discounts" for p in result.passages)


async def test_a_document_added_or_removed_counts_at_once_not_after_the_next_calibration(tmp_path: Path) -> None:
    """Views are a snapshot of the base: a retrieval right after an ingest or a delete must see the base as it is
    now (the new passage found, the removed one gone), before the background calibration rebuilds them."""
    embedder = await _embedder()
    kb = await _base(embedder)
    await kb.retriever.enable_calibration(tmp_path)
    assert kb.retriever.views is not None
    text = "Car insurance\nWe do not sell car insurance. We sell broadband, TV and phone plans only."
    await kb.store.add(
        await kb.embed_chunks(
            "faq", "faq", [Chunk(seq=0, text=text, heading="Car insurance", page=None, token_count=len(text.split()))]
        )
    )
    added = await kb.retrieve("Can I buy car insurance from you?")
    assert added.found and added.passages[0].document_id == "faq"
    await kb.store.delete_document("discounts")
    removed = await kb.retrieve("Do customers aged 65 or over get money off?")
    assert all(p.document_id != "discounts" for p in removed.passages)
    for _ in range(2):  # a change during a calibration is seen by the next retrieval, which starts another
        await kb.retriever.calibration_settled()
        await kb.retrieve("anything")
    await kb.retriever.calibration_settled()
    views = kb.retriever.views
    assert (
        views is not None
        and {c.document_id for c in views.chunks} >= {"faq"}
        and "discounts" not in {c.document_id for c in views.chunks}
    )


async def test_a_large_base_or_a_reranker_keeps_the_plain_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = await _embedder()
    monkeypatch.setattr(retrieval_module, "VIEW_MAX_CHUNKS", 3)
    kb = await _base(embedder)
    cal = await kb.retriever.enable_calibration(tmp_path)
    assert kb.retriever.views is None and cal.rule == calib.rule(views=False)
    assert (await kb.retrieve("How much space does a mailbox have?")).passages[0].document_id == "mail"


async def test_a_slow_calibration_does_not_start_another_over_its_own_probes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The calibration's off-topic probes retrieve; with no wait between change checks they must not see a
    "changed" base (which would drop the views half-way and calibrate again)."""
    embedder = await _embedder()
    monkeypatch.setattr(retrieval_module, "CHANGE_CHECK_S", 0.0)
    kb = await _base(embedder)
    cal = await kb.retriever.enable_calibration(tmp_path)
    assert kb.retriever._calibrating is None  # no second calibration was started by the probes
    assert cal.rule == calib.rule(views=True) and kb.retriever.views is not None
    await kb.retrieve("How much space does a mailbox have?")  # an unchanged base: nothing to redo
    await kb.retriever.calibration_settled()
    assert kb.retriever.calibration == cal and kb.retriever.views is not None
