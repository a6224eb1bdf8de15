"""Retrieval quality on the labelled eval set (a loose floor; the measured figures are in benchmarks/)."""

from __future__ import annotations

import pytest

from benchmarks.retrieval import build_demo_kb, evaluate, load_eval
from knowledge.embedders.minilm import MiniLMEmbedder

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_eval_set_is_well_formed() -> None:
    answerable, unanswerable = load_eval()
    assert len(answerable) >= 100 and len(unanswerable) >= 20
    assert len({q["id"] for q in answerable}) == len(answerable)
    documents = {q["document"] for q in answerable}
    assert len(documents) >= 15
    assert {d.rsplit(".", 1)[1] for d in documents} == {"pdf", "docx", "html", "md", "txt", "csv", "xlsx"}


async def test_every_evidence_string_is_in_its_document(tmp_path: object) -> None:
    kb = await build_demo_kb(MiniLMEmbedder())
    answerable, _ = load_eval()
    texts: dict[str, str] = {}
    for chunk in await kb.store.get([f"{q['document']}:{i}" for q in answerable for i in range(30)]):
        texts[chunk.document_id] = texts.get(chunk.document_id, "") + " " + " ".join(chunk.text.split()).lower()
    for question in answerable:
        evidence = " ".join(question["evidence"].split()).lower()
        assert evidence in texts[question["document"]], question["id"]


async def test_retrieval_quality_floor() -> None:
    quality = await evaluate(await build_demo_kb(MiniLMEmbedder()))
    assert quality.recall_at_5 >= 0.9, quality.misses
    assert quality.recall_at_1 >= 0.75, quality.misses
    assert quality.not_found_accuracy >= 0.75
    assert quality.answerable_found >= 0.9
