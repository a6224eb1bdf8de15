"""One document through ingestion: stored original → parse and chunk → embed → vector index → database.

The vector index is written first and the database last: the database commit (chunks with their embeddings,
document ``ready``) is what makes the work done. A process killed in between leaves the document
``processing``; on the next start the index is restored from the database (which drops the half-written
chunks) and the job runs again, replacing rather than duplicating, since chunk ids are ``<document_id>:<seq>``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import numpy as np
import structlog
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_api.db.models import IngestionJob, KnowledgeChunk, KnowledgeDocument, utcnow
from control_api.services import audit
from control_api.services.ingestion_jobs import Claim, fail, retry
from knowledge.errors import DocumentError, KnowledgeError
from knowledge.ingest import PreparedDocument
from knowledge.kb import KnowledgeBase
from knowledge.titles import display_title
from knowledge.types import StoredChunk

log = structlog.get_logger(__name__)


def db_heading(heading: str | None) -> str | None:
    """A heading path as the database keeps it (``knowledge_chunks.heading`` holds 500 characters)."""
    return (heading or "")[:500] or None


def index_title(title: str | None, filename: str) -> str:
    """The document's name as keyword search reads it: its stored title with its file name, or the file name.

    Built from the stored title (``knowledge_documents.title``: the document's own title, or its file name
    where it gives none) as it always was, so making titles readable leaves the indexed text as it was: a
    readable title differs from the file's only in letter case, which keyword search ignores, and a title made
    from the file name appears only in :func:`citation_title`.
    """
    shown = title or filename
    return shown if shown == filename else f"{shown} ({filename})"


def citation_title(title: str | None, filename: str) -> str:
    """The document's name as citations show it: the title a person reads with its file name.

    ``"Kestrel Broadband - Service Guide (guide.txt)"``; ``"Pricing plans (pricing_plans.csv)"`` for a file
    that gives no title (see :func:`knowledge.titles.display_title`).
    """
    return index_title(display_title(title, filename), filename)


async def process_document(
    sessions: async_sessionmaker[AsyncSession], kb: KnowledgeBase, claim: Claim, *, max_attempts: int
) -> None:
    """Ingest the claimed document; a failure is retried (transient) or ends the document ``failed``."""
    document_id = claim.document_id
    async with sessions() as session:
        document = await session.get(KnowledgeDocument, document_id)
        if document is None:
            return
        path, filename = Path(document.storage_path), document.filename
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError:
        await _fail(sessions, kb, claim, "The stored original of this document is missing; upload it again.")
        return
    try:
        prepared = await kb.prepare(data, name_hint=filename)
        embedded = await kb.embed_chunks(
            document_id,
            index_title(prepared.title, filename),
            prepared.chunks,
            display_title=citation_title(prepared.title, filename),
        )
        # Index exactly what the database will hold, so a restore from it finds the index up to date.
        chunks = [replace(c, heading=db_heading(c.heading)) for c in embedded]
        await kb.store.delete_document(document_id)
        await kb.store.add(chunks)
    except DocumentError as exc:
        await _fail(sessions, kb, claim, exc.message)
        return
    except KnowledgeError as exc:
        log.warning("knowledge_ingestion_attempt_failed", document_id=document_id, error=exc.message)
        await _retry_or_fail(sessions, kb, claim, exc.message, max_attempts=max_attempts)
        return
    except Exception as exc:  # any failure of one document must end as a retry or a reason, never a crash
        log.exception("knowledge_ingestion_unexpected_error", document_id=document_id)
        reason = f"Internal error while processing ({type(exc).__name__})."
        await _retry_or_fail(sessions, kb, claim, reason, max_attempts=max_attempts)
        return
    if await _record(sessions, claim, prepared, chunks, model=kb.embedder.model_id):
        log.info("knowledge_document_ready", document_id=document_id, chunks=len(chunks))
    else:  # deleted while it was being processed
        await kb.store.delete_document(document_id)


async def _record(
    sessions: async_sessionmaker[AsyncSession],
    claim: Claim,
    prepared: PreparedDocument,
    chunks: list[StoredChunk],
    *,
    model: str,
) -> bool:
    """Commit the chunks and the ``ready`` document; False when the document no longer exists."""
    document_id = claim.document_id
    async with sessions() as session:
        document = await session.get(KnowledgeDocument, document_id)
        if document is None:
            return False
        await session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.document_id == document_id))
        session.add_all(
            KnowledgeChunk(
                id=chunk.id,
                document_id=document_id,
                seq=chunk.seq,
                text=chunk.text,
                heading=chunk.heading,
                page=chunk.page,
                token_count=source.token_count,
                embedding=np.asarray(chunk.vector, dtype=np.float32).tobytes(),
            )
            for chunk, source in zip(chunks, prepared.chunks, strict=True)
        )
        document.status = "ready"
        document.error = None
        # The document's own title, or its file name: what index_title and citation_title are built from.
        document.title = (prepared.title or document.filename)[:500] or None
        document.pages = prepared.pages
        document.chunk_count = len(chunks)
        document.embedding_model = model[:200]
        document.processed_at = utcnow()
        job = await session.get(IngestionJob, claim.job_id)
        if job is not None:
            job.status = "done"
            job.error = None
            job.finished_at = utcnow()
        await audit.record(
            session,
            audit.Actor.system("ingestion"),
            "knowledge.ingest",
            target_type="knowledge_document",
            target_id=document_id,
            detail={"chunks": len(chunks), "pages": prepared.pages, "format": prepared.format},
            commit=False,
        )
        await session.commit()
    return True


async def _retry_or_fail(
    sessions: async_sessionmaker[AsyncSession], kb: KnowledgeBase, claim: Claim, reason: str, *, max_attempts: int
) -> None:
    if not await retry(sessions, claim, reason, max_attempts=max_attempts):
        await _fail(sessions, kb, claim, f"{reason} Gave up after {max_attempts} attempts.")


async def _fail(sessions: async_sessionmaker[AsyncSession], kb: KnowledgeBase, claim: Claim, error: str) -> None:
    await fail(sessions, claim, error=error)
    await kb.store.delete_document(claim.document_id)
    log.info("knowledge_document_failed", document_id=claim.document_id)


async def fail_interrupted(sessions: async_sessionmaker[AsyncSession], kb: KnowledgeBase, claim: Claim) -> None:
    """Fail a document whose processing was interrupted (the server stopped) more often than allowed."""
    await _fail(
        sessions,
        kb,
        claim,
        f"Processing was interrupted {claim.attempts - 1} times (the server stopped while reading this "
        "file). Re-process it, or split it into smaller files if it keeps happening.",
    )
