"""Knowledge ingestion: the worker that runs the queue, and the services the routes and the CLI call.

Guarantees, each kept by one module:

- **Stored before acknowledged** (:mod:`control_api.services.ingestion_uploads`): :func:`add_document` writes
  the original durably and commits the ``pending`` document and its queued job before it returns.
- **Idempotent** (the same module and :mod:`control_api.services.ingestion_pipeline`): a document is its
  content's SHA-256, chunk ids are ``<document_id>:<seq>``, and every (re)processing replaces a document's
  chunks, so nothing is duplicated.
- **Resumable** (:mod:`control_api.services.ingestion_jobs`): a claimed job is recorded before work starts;
  :meth:`IngestionWorker.recover` queues again whatever a crash or kill -9 interrupted, and after
  ``max_attempts`` a document ends ``failed`` with a reason.
- **One record of every chunk** (:mod:`control_api.services.ingestion_index`): the database holds the chunks;
  the vector store is an index restored from it on start.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_api.services.ingestion_index import restore_index
from control_api.services.ingestion_jobs import claim_next, requeue, requeue_interrupted
from control_api.services.ingestion_pipeline import fail_interrupted, process_document
from control_api.services.ingestion_uploads import AddOutcome, add_document
from knowledge.kb import KnowledgeBase

__all__ = ["AddOutcome", "IngestionWorker", "add_document", "requeue"]

log = structlog.get_logger(__name__)


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

    async def start(self) -> None:
        """Requeue interrupted work, then run the queue in a background task."""
        await self.recover()
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

    async def recover(self) -> int:
        """Requeue work interrupted by a crash; returns how many documents were put back in the queue."""
        count = await requeue_interrupted(self.sessions)
        if count:
            log.info("knowledge_ingestion_recovered", documents=count)
            self.notify()
        return count

    async def reconcile(self) -> None:
        """Restore the vector index from the database, queueing documents that cannot be restored."""
        if await restore_index(self.sessions, self.kb):
            self.notify()

    async def process_next(self) -> bool:
        """Claim and process one queued job; False when the queue is empty."""
        claim = await claim_next(self.sessions)
        if claim is None:
            return False
        if not claim.job_id:
            return True
        if claim.attempts > self.max_attempts:
            await fail_interrupted(self.sessions, self.kb, claim)
        else:
            await process_document(self.sessions, self.kb, claim, max_attempts=self.max_attempts)
        return True

    async def drain(self) -> None:
        """Process queued jobs in this task until none is left (the CLI; tests)."""
        while await self.process_next():
            pass

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
            if await self.process_next():
                continue
            self._idle.set()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
