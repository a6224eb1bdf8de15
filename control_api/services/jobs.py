"""A database table as a durable job queue: the one claim rule of the ingestion and post-call analysis queues.

A row is ``queued``, then ``running`` while a worker has it, with an attempt counter. Claiming happens in its own
transaction, so a kill -9 at any later point leaves a ``running`` row that :meth:`JobTable.requeue_running` puts
back on the next start:

- the oldest queued row is selected ``FOR UPDATE SKIP LOCKED`` (PostgreSQL: several workers skip each other's
  rows instead of waiting; SQLite ignores it and serialises writers itself);
- it is taken by a conditional ``UPDATE ... WHERE status = 'queued'`` (one winner even where ``FOR UPDATE``
  does nothing: SQLite with several processes); a worker that loses gets an empty claim, not ``None``, because
  the queue was not empty.

(The integrations outbox has its own claim: a batch with leases, since a delivery's process may die mid-send
and the row must come back by itself; ``control_api/integrations/dispatcher.py``.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

QUEUED, RUNNING = "queued", "running"
# Runs in the claiming transaction with the row's key: False means the row cannot be worked on (the hook dealt
# with it, e.g. deleted it); the transaction is committed and the claim comes back empty.
Check = Callable[[AsyncSession, Any], Awaitable[bool]]
# Runs in the claiming transaction after the row was taken (e.g. marks what the job is about as in progress).
OnClaim = Callable[[AsyncSession, Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claim: the row's key and which attempt this is (1-based); ``key`` None: nothing to work on this time."""

    key: Any | None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class JobTable:
    """Which columns of a table make it a job queue.

    Attributes:
        key: The primary key column (what a claim returns).
        status: The status column (``queued``/``running`` here; the table's other states are its own).
        attempts: The attempt counter, raised by one per claim.
        order_by: The order in which queued rows are claimed (oldest first).

    """

    key: InstrumentedAttribute[Any]
    status: InstrumentedAttribute[str]
    attempts: InstrumentedAttribute[int]
    order_by: tuple[Any, ...] = field(default=())

    async def claim(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *conditions: ColumnElement[bool],
        started: Mapping[str, Any] | None = None,
        check: Check | None = None,
        on_claim: OnClaim | None = None,
    ) -> Claimed | None:
        """Claim the first queued row that meets ``conditions``; None when there is none.

        ``started`` are further column values set with ``running`` (e.g. ``started_at``).
        """
        async with sessions() as session:
            key = await session.scalar(
                select(self.key)
                .where(self.status == QUEUED, *conditions)
                .order_by(*self.order_by)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if key is None:
                return None
            if check is not None and not await check(session, key):
                await session.commit()
                return Claimed(None)
            taken = await session.execute(
                update(self.key.class_)
                .where(self.key == key, self.status == QUEUED)
                .values({self.status.key: RUNNING, self.attempts.key: self.attempts + 1, **(started or {})})
                .execution_options(synchronize_session=False)
            )
            if getattr(taken, "rowcount", 1) != 1:
                await session.rollback()
                return Claimed(None)
            if on_claim is not None:
                await on_claim(session, key)
            await session.commit()
            attempts = await session.scalar(select(self.attempts).where(self.key == key))
            return Claimed(key, int(attempts or 1))

    async def requeue_running(self, session: AsyncSession) -> int:
        """Queue again every row a dead process left ``running`` (not committed); returns how many."""
        result = await session.execute(
            update(self.key.class_)
            .where(self.status == RUNNING)
            .values({self.status.key: QUEUED})
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)
