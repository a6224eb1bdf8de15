"""Knowledge ingestion: originals stored before acknowledgement, an idempotent, resumable job runner.

Guarantees:

- **Stored before acknowledged.** :func:`add_document` writes the original under ``uploads/`` (temp file,
  fsync, atomic rename) and commits the ``pending`` document and its queued job before it returns.
- **Idempotent.** A document is identified by the SHA-256 of its bytes (unique in the database): uploading
  the same content again returns the existing document. Chunk ids are ``<document_id>:<seq>`` and every
  (re)processing replaces a document's chunks in the store and the database, so nothing is duplicated.
- **Resumable.** A job is claimed (``running``, attempt counted, document ``processing``) in its own
  transaction. On start, :meth:`IngestionWorker.recover` puts every ``processing`` document left by a crash
  or kill -9 back in the queue. After ``max_attempts`` interrupted or failed attempts the document ends
  ``failed`` with a reason, so nothing stays stuck.
- **Store and database agree.** On start, :meth:`IngestionWorker.reconcile` re-adds chunks that a ready
  document has in the database but not in the vector store (from the stored embeddings: no re-embedding),
  and removes store chunks of documents the database no longer has.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_api.db.models import IngestionJob, KnowledgeChunk, KnowledgeDocument, utcnow
from control_api.problems import ProblemError
from control_api.services import audit
from knowledge.errors import DocumentError, KnowledgeError
from knowledge.kb import KnowledgeBase
from knowledge.sniff import sniff
from knowledge.types import StoredChunk

log = structlog.get_logger(__name__)

EXTENSIONS = {
    "pdf": ".pdf",
    "docx": ".docx",
    "xlsx": ".xlsx",
    "html": ".html",
    "markdown": ".md",
    "text": ".txt",
    "csv": ".csv",
}
MEDIA_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html",
    "markdown": "text/markdown",
    "text": "text/plain",
    "csv": "text/csv",
}


@dataclass(frozen=True, slots=True)
class AddOutcome:
    """The document an upload created, or the existing one with the same content (``duplicate``)."""

    document: KnowledgeDocument
    duplicate: bool


def _write_original(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` durably: temp file, fsync, atomic rename, fsync of the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    if target.exists() and target.stat().st_size == len(data):
        return target
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def _sniff(data: bytes, filename: str) -> str:
    try:
        return sniff(data, name_hint=filename)
    except DocumentError as exc:
        raise ProblemError(415, exc.message, type_="unsupported-document", extra={"filename": filename}) from None


async def add_document(
    session: AsyncSession,
    *,
    uploads_dir: Path,
    data: bytes,
    filename: str,
    max_bytes: int,
    created_by: str | None,
    source_url: str | None = None,
) -> AddOutcome:
    """Store an original and queue it for ingestion (or return the document that has the same content).

    Raises:
        ProblemError: 413 when too large, 415 when the content is not a supported, safe document.

    """
    if len(data) > max_bytes:
        raise ProblemError(
            413,
            f"{filename} is larger than the {max_bytes} bytes allowed.",
            type_="file-too-large",
            extra={"filename": filename},
        )
    fmt = await asyncio.to_thread(_sniff, data, filename)
    if fmt == "sitemap":
        raise ProblemError(
            415,
            "A sitemap lists pages; import it with /api/knowledge/import-url.",
            type_="unsupported-document",
            extra={"filename": filename},
        )
    digest = hashlib.sha256(data).hexdigest()
    existing = await session.scalar(select(KnowledgeDocument).where(KnowledgeDocument.sha256 == digest))
    if existing is not None:
        return AddOutcome(existing, duplicate=True)
    path = await asyncio.to_thread(_write_original, uploads_dir / digest[:2], digest + EXTENSIONS[fmt], data)
    document = KnowledgeDocument(
        filename=Path(filename).name[:255] or "document",
        content_type=MEDIA_TYPES[fmt],
        source_url=source_url,
        sha256=digest,
        size_bytes=len(data),
        storage_path=str(path),
        status="pending",
        created_by=created_by,
    )
    session.add(document)
    try:
        await session.flush()
        session.add(IngestionJob(document_id=document.id, status="queued"))
        await session.commit()
    except IntegrityError:
        await session.rollback()
        existing = await session.scalar(select(KnowledgeDocument).where(KnowledgeDocument.sha256 == digest))
        if existing is None:
            raise
        return AddOutcome(existing, duplicate=True)
    return AddOutcome(document, duplicate=False)


async def requeue(session: AsyncSession, document: KnowledgeDocument) -> None:
    """Queue a document for (re)processing unless a job for it is already waiting or running."""
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


class IngestionWorker:
    """Processes queued ingestion jobs one at a time, as a supervised background task.

    Args:
        sessions: The database session factory.
        kb: The knowledge base (parser, embedder, store).
        max_attempts: Attempts (including ones interrupted by a crash) before a document is failed.
        poll_interval_s: How often the queue is polled when nobody calls :meth:`notify`.

    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        kb: KnowledgeBase,
        max_attempts: int = 3,
        poll_interval_s: float = 5.0,
    ) -> None:
        self.sessions = sessions
        self.kb = kb
        self.max_attempts = max_attempts
        self.poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover interrupted work, reconcile the store, then run the queue in a background task."""
        await self.recover()
        await self.reconcile()
        self._task = asyncio.create_task(self._supervise(), name="knowledge-ingestion")

    async def stop(self) -> None:
        """Stop the background task (a job in progress resumes on the next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def running(self) -> bool:
        """Whether the background task is alive."""
        return self._task is not None and not self._task.done()

    def notify(self) -> None:
        """Wake the worker: a job was queued."""
        self._idle.clear()
        self._wake.set()

    async def wait_idle(self, timeout_s: float = 60.0) -> None:
        """Wait until the queue is empty (tests and the CLI)."""
        await asyncio.wait_for(self._idle.wait(), timeout_s)

    async def _supervise(self) -> None:
        backoff = 1.0
        while True:
            try:
                await self._loop()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("knowledge_ingestion_loop_crashed")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)

    async def _loop(self) -> None:
        while True:
            processed = await self.process_next()
            if processed:
                continue
            self._idle.set()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)

    # -- recovery --------------------------------------------------------------------------------------------

    async def recover(self) -> int:
        """Requeue work interrupted by a crash; returns how many documents were put back in the queue."""
        async with self.sessions() as session:
            await session.execute(update(IngestionJob).where(IngestionJob.status == "running").values(status="queued"))
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
        if stuck:
            log.info("knowledge_ingestion_recovered", documents=len(stuck))
            self.notify()
        return len(stuck)

    async def reconcile(self) -> None:
        """Make the vector store hold exactly the chunks of the database's ready documents."""
        store_counts = dict(await self.kb.store.document_counts())
        async with self.sessions() as session:
            ready = dict(
                (
                    await session.execute(
                        select(KnowledgeDocument.id, KnowledgeDocument.chunk_count).where(
                            KnowledgeDocument.status == "ready"
                        )
                    )
                ).all()
            )
            for document_id in set(store_counts) - set(ready):
                await self.kb.store.delete_document(document_id)
            stale = [doc_id for doc_id, count in ready.items() if store_counts.get(doc_id) != count]
            reembed = self.kb.store.needs_reindex  # the stored embeddings belong to another model
            for document_id in stale:
                if reembed or not await self._restore_from_db(session, document_id):
                    document = await session.get(KnowledgeDocument, document_id)
                    if document is not None:
                        await requeue(session, document)
            await session.commit()
        if stale:
            log.info("knowledge_store_reconciled", documents=len(stale))
            self.notify()

    async def _restore_from_db(self, session: AsyncSession, document_id: str) -> bool:
        document = await session.get(KnowledgeDocument, document_id)
        rows = (
            await session.scalars(
                select(KnowledgeChunk).where(KnowledgeChunk.document_id == document_id).order_by(KnowledgeChunk.seq)
            )
        ).all()
        dimension = self.kb.embedder.dimension
        if document is None or not rows or any(r.embedding is None or len(r.embedding) != dimension * 4 for r in rows):
            return False
        title = _title(document)
        chunks = [
            StoredChunk(
                id=r.id,
                document_id=document_id,
                seq=r.seq,
                text=r.text,
                vector=tuple(float(x) for x in np.frombuffer(r.embedding or b"", dtype=np.float32)),
                title=title,
                heading=r.heading,
                page=r.page,
            )
            for r in rows
        ]
        await self.kb.store.delete_document(document_id)
        await self.kb.store.add(chunks)
        return True

    # -- processing ------------------------------------------------------------------------------------------

    async def _claim(self) -> tuple[str, str, int] | None:
        async with self.sessions() as session:
            job = await session.scalar(
                select(IngestionJob)
                .where(IngestionJob.status == "queued")
                .order_by(IngestionJob.created_at, IngestionJob.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if job is None:
                return None
            document = await session.get(KnowledgeDocument, job.document_id)
            if document is None:
                await session.delete(job)
                await session.commit()
                return ("", "", 0)
            # A conditional update claims the job even where FOR UPDATE does nothing (SQLite, several processes).
            claimed = await session.execute(
                update(IngestionJob)
                .where(IngestionJob.id == job.id, IngestionJob.status == "queued")
                .values(status="running", attempts=IngestionJob.attempts + 1, started_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if getattr(claimed, "rowcount", 1) != 1:
                await session.rollback()
                return ("", "", 0)
            document.status = "processing"
            await session.commit()
            attempts = await session.scalar(select(IngestionJob.attempts).where(IngestionJob.id == job.id))
            return job.id, document.id, int(attempts or 1)

    async def process_next(self) -> bool:
        """Claim and process one queued job; False when the queue is empty."""
        claimed = await self._claim()
        if claimed is None:
            return False
        job_id, document_id, attempts = claimed
        if not job_id:
            return True
        if attempts > self.max_attempts:
            await self._finish(
                job_id,
                document_id,
                error=f"Processing was interrupted {attempts - 1} times (the server stopped while reading this "
                "file). Re-process it, or split it into smaller files if it keeps happening.",
            )
            return True
        await self._process(job_id, document_id)
        return True

    async def _process(self, job_id: str, document_id: str) -> None:
        async with self.sessions() as session:
            document = await session.get(KnowledgeDocument, document_id)
            if document is None:
                return
            path, filename = Path(document.storage_path), document.filename
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError:
            await self._finish(
                job_id, document_id, error="The stored original of this document is missing; upload it again."
            )
            return
        try:
            prepared = await self.kb.prepare(data, name_hint=filename)
            title = prepared.title or filename
            chunks = await self.kb.embed_chunks(document_id, _display_title(title, filename), prepared.chunks)
            await self.kb.store.delete_document(document_id)
            await self.kb.store.add(chunks)
        except DocumentError as exc:
            await self._finish(job_id, document_id, error=exc.message)
            return
        except KnowledgeError as exc:
            log.warning("knowledge_ingestion_attempt_failed", document_id=document_id, error=exc.message)
            await self._retry_or_fail(job_id, document_id, exc.message)
            return
        except Exception as exc:
            log.exception("knowledge_ingestion_unexpected_error", document_id=document_id)
            await self._retry_or_fail(job_id, document_id, f"Internal error while processing ({type(exc).__name__}).")
            return
        async with self.sessions() as session:
            document = await session.get(KnowledgeDocument, document_id)
            if document is None:  # deleted while it was being processed
                await self.kb.store.delete_document(document_id)
                return
            await session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.document_id == document_id))
            session.add_all(
                KnowledgeChunk(
                    id=chunk.id,
                    document_id=document_id,
                    seq=chunk.seq,
                    text=chunk.text,
                    heading=(chunk.heading or "")[:500] or None,
                    page=chunk.page,
                    token_count=source.token_count,
                    embedding=np.asarray(chunk.vector, dtype=np.float32).tobytes(),
                )
                for chunk, source in zip(chunks, prepared.chunks, strict=True)
            )
            document.status = "ready"
            document.error = None
            document.title = (title or "")[:500] or None
            document.pages = prepared.pages
            document.chunk_count = len(chunks)
            document.processed_at = utcnow()
            job = await session.get(IngestionJob, job_id)
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
        log.info("knowledge_document_ready", document_id=document_id, chunks=len(chunks))

    async def _retry_or_fail(self, job_id: str, document_id: str, reason: str) -> None:
        async with self.sessions() as session:
            job = await session.get(IngestionJob, job_id)
            document = await session.get(KnowledgeDocument, document_id)
            if job is None or document is None:
                return
            if job.attempts < self.max_attempts:
                job.status = "queued"
                job.error = reason
                document.status = "pending"
                await session.commit()
                return
        await self._finish(job_id, document_id, error=f"{reason} Gave up after {self.max_attempts} attempts.")

    async def _finish(self, job_id: str, document_id: str, *, error: str) -> None:
        async with self.sessions() as session:
            document = await session.get(KnowledgeDocument, document_id)
            job = await session.get(IngestionJob, job_id)
            if job is not None:
                job.status = "failed"
                job.error = error
                job.finished_at = utcnow()
            if document is not None:
                document.status = "failed"
                document.error = error
                document.chunk_count = 0
                document.processed_at = utcnow()
                await session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.document_id == document_id))
                await audit.record(
                    session,
                    audit.Actor.system("ingestion"),
                    "knowledge.ingest",
                    target_type="knowledge_document",
                    target_id=document_id,
                    outcome="failure",
                    detail={"reason": error[:300]},
                    commit=False,
                )
            await session.commit()
        await self.kb.store.delete_document(document_id)
        log.info("knowledge_document_failed", document_id=document_id)

    async def drain(self) -> None:
        """Process queued jobs in this task until none is left (the CLI; tests)."""
        while await self.process_next():
            pass


def _display_title(title: str, filename: str) -> str:
    return title if title == filename else f"{title} ({filename})"


def _title(document: KnowledgeDocument) -> str:
    return _display_title(document.title or document.filename, document.filename)
