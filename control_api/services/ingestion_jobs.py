"""The ingestion job queue in the database: queue, claim, retry, fail, and requeue what a crash interrupted.

A job is claimed (``running``, attempt counted, document ``processing``) in its own transaction, so a kill -9
at any later point leaves a trace that :func:`requeue_interrupted` finds on the next start. After
``max_attempts`` interrupted or failed attempts the document ends ``failed`` with a reason, so nothing stays
stuck.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_api.db.models import IngestionJob, KnowledgeChunk, KnowledgeDocument, utcnow
from control_api.services import audit
from control_api.services.jobs import JobTable

# Claimed by the one rule of durable queues (``services.jobs``): FOR UPDATE SKIP LOCKED, then a conditional update.
JOBS = JobTable(
    key=IngestionJob.id,
    status=IngestionJob.status,
    attempts=IngestionJob.attempts,
    order_by=(IngestionJob.created_at, IngestionJob.id),
)


@dataclass(frozen=True, slots=True)
class Claim:
    """A claimed job: which document to process, and which attempt this is (1-based)."""

    job_id: str
    document_id: str
    attempts: int


async def requeue(session: AsyncSession, document: KnowledgeDocument) -> None:
    """Queue a document for (re)processing unless a job for it is already waiting or running (not committed)."""
    active = await session.scalar(
        select(func.count())
        .select_from(IngestionJob)
        .where(IngestionJob.document_id == document.id, IngestionJob.status.in_(("queued", "running")))
    )
    if not active:
        session.add(IngestionJob(document_id=document.id, status="queued"))
    if document.status != "processing":
        document.status = "pending"
        document.error = None


async def requeue_interrupted(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Put every job and document a crash left ``running``/``processing`` back in the queue; returns how many."""
    async with sessions() as session:
        await JOBS.requeue_running(session)
        stuck = (
            await session.scalars(
                select(KnowledgeDocument).where(KnowledgeDocument.status.in_(("processing", "pending")))
            )
        ).all()
        for document in stuck:
            if document.status == "processing":
                document.status = "pending"
            await requeue(session, document)
        await session.commit()
    return len(stuck)


async def claim_next(sessions: async_sessionmaker[AsyncSession]) -> Claim | None:
    """Claim the oldest queued job; None when the queue is empty.

    A job that another process claimed first, or whose document is gone, comes back as a ``Claim`` with an
    empty ``job_id``: the queue was not empty, but there is nothing to process this time.
    """
    documents: dict[str, KnowledgeDocument] = {}

    async def document_exists(session: AsyncSession, job_id: str) -> bool:
        job = await session.get(IngestionJob, job_id)
        document = await session.get(KnowledgeDocument, job.document_id) if job is not None else None
        if document is None:
            if job is not None:
                await session.delete(job)
            return False
        documents[job_id] = document
        return True

    async def processing(session: AsyncSession, job_id: str) -> None:
        del session
        documents[job_id].status = "processing"

    claimed = await JOBS.claim(sessions, started={"started_at": utcnow()}, check=document_exists, on_claim=processing)
    if claimed is None:
        return None
    if claimed.key is None:
        return Claim("", "", 0)
    return Claim(str(claimed.key), documents[claimed.key].id, claimed.attempts)


async def retry(sessions: async_sessionmaker[AsyncSession], claim: Claim, reason: str, *, max_attempts: int) -> bool:
    """Queue the job again if it has attempts left; False when it has none (the caller then fails it)."""
    async with sessions() as session:
        job = await session.get(IngestionJob, claim.job_id)
        document = await session.get(KnowledgeDocument, claim.document_id)
        if job is None or document is None:
            return True  # deleted meanwhile: nothing left to fail
        if job.attempts >= max_attempts:
            return False
        job.status = "queued"
        job.error = reason
        document.status = "pending"
        await session.commit()
        return True


async def fail(sessions: async_sessionmaker[AsyncSession], claim: Claim, *, error: str) -> None:
    """End the job and the document ``failed`` with ``error``, drop the document's chunks, and audit it."""
    async with sessions() as session:
        document = await session.get(KnowledgeDocument, claim.document_id)
        job = await session.get(IngestionJob, claim.job_id)
        if job is not None:
            job.status = "failed"
            job.error = error
            job.finished_at = utcnow()
        if document is not None:
            document.status = "failed"
            document.error = error
            document.chunk_count = 0
            document.processed_at = utcnow()
            await session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.document_id == claim.document_id))
            await audit.record(
                session,
                audit.Actor.system("ingestion"),
                "knowledge.ingest",
                target_type="knowledge_document",
                target_id=claim.document_id,
                outcome="failure",
                detail={"reason": error[:300]},
                commit=False,
            )
        await session.commit()
