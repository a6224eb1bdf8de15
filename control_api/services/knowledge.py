"""Knowledge base services: documents, queries (every one logged with its top score), context, corpus text.

:class:`KnowledgeService` is what ``AppState.knowledge`` holds; the agent and the voice side use it:

- ``await service.retrieve(question, top_k=5, call_id=None) -> knowledge.types.Retrieval``: fields as
  ``pipelines.contracts.Retrieval`` (``found``, ``passages`` of ``text, score, document_id, chunk_id,
  citation``, ``latency_ms``); the query is logged to ``rag_queries``.
- ``service.embedder`` (``await embed(texts) -> list[list[float]]``, unit vectors): ``TextEmbedder``.
- ``await service.corpus_text() -> str``: the text of every ready document (for a speech-recognition LM).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from config import Settings
from control_api.db.models import IngestionJob, KnowledgeChunk, KnowledgeDocument, RagQuery
from control_api.metrics import KNOWLEDGE_QUESTIONS
from control_api.problems import ProblemError
from control_api.services import redaction
from control_api.services.ingestion import IngestionWorker
from knowledge.calibration import Calibration
from knowledge.calibration import directory_for as calibration_directory
from knowledge.embedders.base import Embedder
from knowledge.kb import KnowledgeBase, build_knowledge_base
from knowledge.retrieval import CONFIRM_BAND
from knowledge.types import Passage, Retrieval

log = structlog.get_logger(__name__)
STATUSES = ("pending", "processing", "ready", "failed")
MAX_CONTEXT_CHARS = 6000


async def list_documents(
    session: AsyncSession, *, status: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[KnowledgeDocument], int]:
    """Documents newest first, with the total count for the filter."""
    query = select(KnowledgeDocument)
    counter = select(func.count()).select_from(KnowledgeDocument)
    if status is not None:
        query = query.where(KnowledgeDocument.status == status)
        counter = counter.where(KnowledgeDocument.status == status)
    rows = (
        await session.scalars(
            query.order_by(KnowledgeDocument.created_at.desc(), KnowledgeDocument.id).limit(limit).offset(offset)
        )
    ).all()
    return list(rows), int(await session.scalar(counter) or 0)


async def get_document(session: AsyncSession, document_id: str) -> KnowledgeDocument:
    """One document; 404 problem JSON when it does not exist."""
    document = await session.get(KnowledgeDocument, document_id)
    if document is None:
        raise ProblemError(404, "No such knowledge document.", type_="not-found")
    return document


async def latest_job(session: AsyncSession, document_id: str) -> IngestionJob | None:
    """The most recent ingestion job of a document."""
    return await session.scalar(
        select(IngestionJob)
        .where(IngestionJob.document_id == document_id)
        .order_by(IngestionJob.created_at.desc(), IngestionJob.id.desc())
        .limit(1)
    )


async def delete_document(session: AsyncSession, kb: KnowledgeBase, document: KnowledgeDocument) -> None:
    """Remove a document, its chunks (database and store) and its stored original."""
    path = Path(document.storage_path)
    await session.delete(document)
    await session.commit()
    await kb.store.delete_document(document.id)
    await asyncio.to_thread(path.unlink, missing_ok=True)


def question_outcome(retrieval: Retrieval) -> str:
    """``found``, ``unanswerable``, ``borderline`` or ``not_found``: ``voxdesk_knowledge_questions_total``'s label."""
    if retrieval.found:
        return "found"
    if retrieval.unanswerable:
        return "unanswerable"
    return "borderline" if retrieval.borderline else "not_found"


async def log_query(
    session: AsyncSession,
    question: str,
    retrieval: Retrieval,
    *,
    call_id: str | None = None,
    redact: bool = True,
) -> RagQuery:
    """Record one query with its top score (read by the "unanswered questions" review).

    A caller's question is transcript text: with ``redact`` (``settings.retention.redact_pii``) only its
    PII-redacted form is stored, like a transcript turn.
    """
    KNOWLEDGE_QUESTIONS.labels(outcome=question_outcome(retrieval)).inc()
    top = retrieval.passages[0] if retrieval.passages else None
    stored = redaction.redact(question).text if redact else question
    entry = RagQuery(
        question=stored[:2000],
        found=retrieval.found,
        top_score=retrieval.top_score,
        top_chunk_id=top.chunk_id if top else None,
        latency_ms=round(retrieval.latency_ms, 3),
        call_id=call_id,
    )
    session.add(entry)
    await session.commit()
    return entry


def context_block(retrieval: Retrieval, *, max_chars: int = MAX_CONTEXT_CHARS) -> str:
    """The context the LLM gets: numbered passages with their citations, or a "nothing found" note."""
    if not retrieval.found:
        return (
            "No passage of the knowledge base answers this question. Say you do not know and offer to "
            "transfer the caller to a person."
        )
    parts: list[str] = []
    used = 0
    for index, passage in enumerate(retrieval.passages, start=1):
        block = f"[{index}] {passage.citation}\n{passage.text}"
        if parts and used + len(block) > max_chars:
            break
        parts.append(block)
        used += len(block)
    return "Answer only from these knowledge-base passages and cite them by number.\n\n" + "\n\n".join(parts)


# What the voice agent would say from a passage: (question, the found passage) -> the sentences it speaks. The
# voice side registers its brain's own choice (this package never imports the pipelines); without one (an LLM brain
# composes its own words, or a control-plane-only process), the passage's text stands in.
SpokenAnswer = Callable[[str, Passage], str]
_spoken: SpokenAnswer | None = None


def register_spoken(choose: SpokenAnswer | None) -> None:
    """Register (or, with ``None``, remove) how the voice agent turns a found passage into spoken sentences."""
    global _spoken  # one registration per process, like the live handoff controller
    _spoken = choose


def spoken_answer(question: str, retrieval: Retrieval) -> str | None:
    """What the agent would say for ``question``: ``None`` when nothing was found (it says it does not know)."""
    if not retrieval.found or not retrieval.passages:
        return None
    top = retrieval.passages[0]
    if _spoken is None:
        return top.text
    return _spoken(question, top) or top.text


@dataclass(frozen=True, slots=True)
class Unanswered:
    """A question the knowledge base could not answer, grouped by text."""

    question: str
    count: int
    last_asked_at: object
    best_score: float | None
    typed: int = 0


async def unanswered(session: AsyncSession, *, limit: int = 50) -> list[Unanswered]:
    """Questions that found nothing, most recent first, grouped by exact text.

    ``typed`` counts the times it was typed as a test (``POST /api/rag/query``: no call), not asked in a call.
    """
    rows = (
        await session.execute(
            select(
                RagQuery.question,
                func.count().label("n"),
                func.max(RagQuery.created_at).label("last"),
                func.max(RagQuery.top_score).label("best"),
                func.coalesce(func.sum(case((RagQuery.call_id.is_(None), 1), else_=0)), 0).label("typed"),
            )
            .where(RagQuery.found.is_(False))
            .group_by(RagQuery.question)
            .order_by(func.max(RagQuery.created_at).desc())
            .limit(limit)
        )
    ).all()
    return [
        Unanswered(question=q, count=int(n), last_asked_at=last, best_score=best, typed=int(typed))
        for q, n, last, best, typed in rows
    ]


async def corpus_text(session: AsyncSession) -> str:
    """Every ready document's chunk text, in document and chunk order, one chunk per paragraph."""
    rows = await session.scalars(
        select(KnowledgeChunk.text)
        .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
        .where(KnowledgeDocument.status == "ready")
        .order_by(KnowledgeDocument.created_at, KnowledgeChunk.document_id, KnowledgeChunk.seq)
    )
    return "\n\n".join(rows)


class KnowledgeService:
    """The knowledge base as the rest of the process sees it (held in ``AppState.knowledge``).

    Args:
        kb: The knowledge base.
        sessions: Database session factory (queries are logged, documents listed).
        worker: The ingestion worker (None where nothing ingests, e.g. a read-only replica).
        default_top_k: Passages per query when the caller does not say.
        redact_queries: Store logged questions PII-redacted (``settings.retention.redact_pii``).

    """

    def __init__(
        self,
        *,
        kb: KnowledgeBase,
        sessions: async_sessionmaker[AsyncSession],
        worker: IngestionWorker | None,
        default_top_k: int = 5,
        redact_queries: bool = True,
    ) -> None:
        self.kb = kb
        self.redact_queries = redact_queries
        self.sessions = sessions
        self.worker = worker
        self.default_top_k = default_top_k

    @property
    def embedder(self) -> Embedder:
        """The embedder (``TextEmbedder`` protocol)."""
        return self.kb.embedder

    async def retrieve(
        self, question: str, *, top_k: int | None = None, call_id: str | None = None, log: bool = True
    ) -> Retrieval:
        """Retrieve passages and log the query (see the module docstring); ``log=False`` for speculative ones."""
        retrieval = await self.kb.retrieve(question, top_k=top_k or self.default_top_k)
        if log:
            await self.log(question, retrieval, call_id=call_id)
        return retrieval

    async def log(self, question: str, retrieval: Retrieval, *, call_id: str | None = None) -> None:
        """Log a question and what its retrieval found (the "unanswered questions" review reads it)."""
        async with self.sessions() as session:
            await log_query(session, question, retrieval, call_id=call_id, redact=self.redact_queries)

    async def corpus_text(self) -> str:
        """All ready documents' text."""
        async with self.sessions() as session:
            return await corpus_text(session)

    def calibration(self) -> Calibration | None:
        """The "not found" calibration in force (None when calibration is off: the configured threshold rules)."""
        return self.kb.retriever.calibration

    async def ready(self) -> None:
        """Readiness: the embedder answers and the ingestion worker runs."""
        await self.kb.embedder.embed_array(["ready?"])
        if self.worker is not None and not self.worker.running:
            raise RuntimeError("the knowledge ingestion worker is not running")


async def calibration_payload(service: KnowledgeService) -> dict[str, object]:
    """The calibration in force as plain values (``KnowledgeCalibrationPublic``); a stale one is re-derived."""
    retriever = service.kb.retriever
    current = await retriever.calibration_current()
    calibration = service.calibration()
    payload: dict[str, object] = {
        "threshold": retriever.config.score_threshold,
        "source": "configured",
        "configured_threshold": retriever.configured_threshold,
        "confirm_from": round(retriever.config.score_threshold - CONFIRM_BAND, 3),
        "current": current,
        "calibrating": retriever.recalibrating,
    }
    if calibration is not None:
        payload.update(calibration.to_dict())
    return payload


def passages_payload(retrieval: Retrieval) -> Sequence[dict[str, object]]:
    """Passages as plain dicts (API responses)."""
    return [
        {
            "text": p.text,
            "score": p.score,
            "document_id": p.document_id,
            "chunk_id": p.chunk_id,
            "citation": p.citation,
            "title": p.title,
            "heading": p.heading,
            "page": p.page,
        }
        for p in retrieval.passages
    ]


async def start(
    *,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    run_worker: bool = True,
) -> KnowledgeService:
    """Build the knowledge base from settings, restore its index from the database, and start the worker.

    The embedding model loads once per process (module-level cache), so calling this for every app built in
    a test run costs the load only once.
    """
    ks = settings.knowledge
    kb = await build_knowledge_base(
        data_dir=settings.data_dir,
        store=ks.store,
        embedder=ks.embedder,
        embedder_model=ks.embedder_model,
        embedder_base_url=ks.embedder_base_url,
        embedder_api_key=ks.embedder_api_key.get_secret_value() if ks.embedder_api_key else None,
        weaviate_url=ks.weaviate_url,
        weaviate_api_key=ks.weaviate_api_key.get_secret_value() if ks.weaviate_api_key else None,
        chunk_tokens=ks.chunk_tokens,
        chunk_overlap=ks.chunk_overlap,
        score_threshold=ks.score_threshold,
        reranker_path=ks.reranker_path,
        models_dir=settings.models_dir,
    )
    worker = IngestionWorker(sessions=sessions, kb=kb)
    try:
        await worker.reconcile()  # every process that retrieves needs the index; the database holds the chunks
        if ks.calibrate:
            # The "not found" threshold of this base (stored beside the index; re-derived when the base changes).
            await kb.retriever.enable_calibration(calibration_directory(settings.data_dir))
        if run_worker:
            await worker.start()
    except BaseException:
        await kb.close()
        raise
    return KnowledgeService(
        kb=kb,
        sessions=sessions,
        worker=worker if run_worker else None,
        default_top_k=ks.top_k,
        redact_queries=settings.retention.redact_pii,
    )


async def stop(service: KnowledgeService) -> None:
    """Stop the worker and persist the store."""
    if service.worker is not None:
        await service.worker.stop()
    await service.kb.close()
