"""The post-call analysis queue: the ``call_analyses`` row is the job (the ingestion queue's pattern).

A call's end queues its row (``analysis.enqueue``, in the transaction that ends the call). The worker claims
due rows (``running``, attempt counted) in their own transaction with the one claim rule of durable queues
(``services.jobs.JobTable``), so a kill -9 at any later point leaves a ``running`` row that
:func:`requeue_interrupted` puts back on the next start. After
``max_attempts`` the row ends ``failed`` with a reason; ``POST /api/calls/{id}/analysis`` queues it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog
from prometheus_client import Counter, Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_api.db.models import Call, CallAnalysis, utcnow
from control_api.services import analysis, analytics, learning
from control_api.services.jobs import JobTable
from control_api.services.knowledge import KnowledgeService
from control_api.state import AppState
from knowledge.types import Retrieval

log = structlog.get_logger(__name__)
ANALYSED = Counter("voxdesk_call_analyses_total", "Post-call analyses run, by result.", ["result"])
ANALYSIS_SECONDS = Histogram(
    "voxdesk_call_analysis_seconds", "Wall time of one post-call analysis.", buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30)
)


# The ``call_analyses`` row is the job (one claim rule for every durable queue: ``services.jobs``).
ANALYSES = JobTable(
    key=CallAnalysis.call_id,
    status=CallAnalysis.status,
    attempts=CallAnalysis.attempts,
    order_by=(CallAnalysis.due_at, CallAnalysis.call_id),
)


async def requeue_interrupted(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Queue again every analysis a dead process left ``running``; returns how many."""
    async with sessions() as session:
        count = await ANALYSES.requeue_running(session)
        await session.commit()
    return count


async def claim_next(sessions: async_sessionmaker[AsyncSession], *, settle: timedelta) -> tuple[str, int] | None:
    """Claim the oldest queued analysis due ``settle`` ago or earlier: ``(call_id, attempt)``; None when none is.

    An empty call id means another worker won the row: the queue was not empty, try again.
    """
    claimed = await ANALYSES.claim(sessions, CallAnalysis.due_at <= utcnow() - settle)
    if claimed is None:
        return None
    if claimed.key is None:
        return "", 0
    return str(claimed.key), claimed.attempts


async def _give_up_or_retry(
    sessions: async_sessionmaker[AsyncSession], call_id: str, error: str, *, attempts: int, max_attempts: int
) -> None:
    async with sessions() as session:
        row = await session.get(CallAnalysis, call_id)
        if row is None:
            return
        row.error = error[:500]
        if attempts >= max_attempts:
            row.status = "failed"
        else:
            row.status = "queued"
            row.due_at = utcnow() + timedelta(seconds=5 * attempts)
        await session.commit()


class AnalysisWorker:
    """Runs queued post-call analyses one at a time, as a supervised background task.

    Args:
        sessions: Database session factory.
        knowledge: A callable returning the knowledge service (None while it is not started or failed).
        settle: How long after a call's end its analysis waits (its last turns are stored just after the end).
        max_attempts: Attempts before a call's analysis is failed.
        poll_interval_s: How often the queue is polled.
        low_confidence: Answers whose best passage scored below this are logged as knowledge gaps.
        cluster_similarity: Cosine similarity at which a question joins an existing gap.

    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        knowledge: Callable[[], KnowledgeService | None],
        settle: timedelta = timedelta(seconds=5),
        max_attempts: int = 3,
        poll_interval_s: float = 2.0,
        low_confidence: float = 0.55,
        cluster_similarity: float = 0.5,
    ) -> None:
        self.sessions = sessions
        self._knowledge = knowledge
        self.settle = settle
        self.max_attempts = max_attempts
        self.poll_interval_s = poll_interval_s
        self.low_confidence = low_confidence
        self.cluster_similarity = cluster_similarity
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Requeue interrupted analyses, then run the queue in a background task."""
        count = await requeue_interrupted(self.sessions)
        if count:
            log.info("call_analysis_recovered", analyses=count)
        self._task = asyncio.create_task(self._supervise(), name="call-analysis")

    async def stop(self) -> None:
        """Stop the task (an analysis in progress is queued again on the next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def notify(self) -> None:
        """Wake the worker (an analysis was queued)."""
        self._wake.set()

    def _retrieve(self) -> Callable[[str], Awaitable[Retrieval]] | None:
        service = self._knowledge()
        if service is None:
            return None

        async def retrieve(question: str) -> Retrieval:
            return await service.retrieve(question, log=False)

        return retrieve

    async def run_one(self, call_id: str) -> None:
        """Analyse one call now (the worker's step; also the re-run path in tests and the benchmark)."""
        service = self._knowledge()
        recorder = None
        if service is not None:
            recorder = learning.GapIntake(
                embedder=service.embedder, retrieve=self._retrieve(), similarity=self.cluster_similarity
            )
        async with self.sessions() as session:
            # The call's outcome for the analytics (issue 21), now that its last turns are in (this job waited).
            await analytics.refresh_outcomes(session, Call.id == call_id, settle=timedelta(0), source="analysis")
            await analysis.analyse(
                session,
                call_id,
                retrieve=self._retrieve(),
                record_gaps=recorder,
                low_confidence=self.low_confidence,
            )

    async def process_next(self) -> bool:
        """Claim and run one due analysis; False when none is due."""
        claim = await claim_next(self.sessions, settle=self.settle)
        if claim is None:
            return False
        call_id, attempts = claim
        if not call_id:
            return True
        started = time.perf_counter()
        try:
            await self.run_one(call_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one bad call must not stop the queue: retried, then failed with its reason
            log.exception("call_analysis_failed", call_id=call_id, attempt=attempts)
            ANALYSED.labels("error").inc()
            await _give_up_or_retry(
                self.sessions,
                call_id,
                f"{type(exc).__name__}: {str(exc)[:300]}",
                attempts=attempts,
                max_attempts=self.max_attempts,
            )
            return True
        ANALYSED.labels("done").inc()
        ANALYSIS_SECONDS.observe(time.perf_counter() - started)
        log.info("call_analysed", call_id=call_id)
        return True

    async def drain(self) -> None:
        """Run every due analysis in this task (tests, the benchmark)."""
        while await self.process_next():
            pass

    async def _supervise(self) -> None:
        backoff = 1.0
        while True:
            try:
                while True:
                    if await self.process_next():
                        continue
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("call_analysis_loop_crashed")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)


async def start_worker(state: AppState) -> Callable[[], Awaitable[None]]:
    """Start the analysis worker of this process from ``state`` (the app's lifespan); returns its stop."""
    section = state.settings.analysis
    worker = AnalysisWorker(
        sessions=state.sessions,
        knowledge=lambda: state.knowledge,
        settle=timedelta(seconds=section.delay_secs),
        max_attempts=section.max_attempts,
        poll_interval_s=section.poll_interval_secs,
        low_confidence=section.low_confidence_score,
        cluster_similarity=section.cluster_similarity,
    )
    await worker.start()
    return worker.stop
