"""The retriever adapter over the real knowledge service: passages copied, "not found" when it is not running."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.wiring.knowledge import KnowledgeRetriever
from config import Settings
from control_api.db.engine import create_engine, session_factory
from control_api.db.migrate import upgrade
from control_api.services import knowledge as knowledge_service
from control_api.services.knowledge import KnowledgeService
from pipelines.brain.extractive import best_sentences
from pipelines.contracts import Passage, Retrieval

DOC = Path(__file__).resolve().parents[2] / "demo" / "knowledge" / "account-and-security.md"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[KnowledgeService]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    await upgrade(engine)
    started = await knowledge_service.start(settings=settings, sessions=session_factory(engine), run_worker=False)
    try:
        yield started
    finally:
        await knowledge_service.stop(started)
        await engine.dispose()


async def test_not_running_means_not_found() -> None:
    retrieval = await KnowledgeRetriever(lambda: None).retrieve("how do i reset my password", call_id="c1")
    assert isinstance(retrieval, Retrieval)
    assert retrieval.found is False and list(retrieval.passages) == []


async def test_real_service_answers_in_pipeline_types(service: KnowledgeService) -> None:
    adapter = KnowledgeRetriever(lambda: service)
    empty = await adapter.retrieve("how do i reset my password", top_k=3)
    assert isinstance(empty, Retrieval) and empty.found is False

    kb = service.kb
    prepared = await kb.prepare(DOC.read_bytes(), name_hint=DOC.name)
    await kb.store.add(await kb.embed_chunks("doc-account", prepared.title, prepared.chunks))
    retrieval = await adapter.retrieve("How do I reset my password?", top_k=3)
    assert isinstance(retrieval, Retrieval) and retrieval.found is True
    best = retrieval.passages[0]
    assert type(best) is Passage
    assert "reset link" in best.text and best.document_id == "doc-account"
    assert best.score > 0 and best.chunk_id and best.citation
    assert retrieval.latency_ms > 0.0

    # The stored chunk starts with its heading path, for search; what a caller hears starts after it.
    assert best.heading is not None and " > " in best.heading
    assert best.text.startswith(best.heading + "\n")
    assert best.body == best.text[len(best.heading) + 1 :]
    answer = best_sentences("How do I reset my password?", best.body)
    assert "reset link" in answer and best.heading not in answer and ">" not in answer
