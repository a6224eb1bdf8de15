"""Retention: recordings and transcripts older than their policy are removed by a periodic purge job."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_api.db.models import Call, CallTurn, RagQuery, Recording, utcnow
from control_api.services import audit
from control_api.services.privacy import ERASED, erase_recordings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Days each kind of personal data is kept (from ``settings.retention``)."""

    recordings_days: int
    transcripts_days: int
    recordings_dir: Path


async def purge(session: AsyncSession, policy: RetentionPolicy, *, now: datetime | None = None) -> dict[str, Any]:
    """Delete recordings and transcripts past their retention. Commits. Returns what was removed."""
    current = now or utcnow()
    recordings_cutoff = current - timedelta(days=policy.recordings_days)
    transcripts_cutoff = current - timedelta(days=policy.transcripts_days)
    old_recordings = list(
        (
            await session.execute(
                select(Recording).where(Recording.created_at < recordings_cutoff, Recording.deleted_at.is_(None))
            )
        ).scalars()
    )
    files = await erase_recordings(session, old_recordings, policy.recordings_dir)
    old_calls = select(Call.id).where(Call.started_at < transcripts_cutoff).scalar_subquery()
    turns = await session.execute(delete(CallTurn).where(CallTurn.call_id.in_(old_calls)))
    questions = await session.execute(
        update(RagQuery)
        .where(RagQuery.created_at < transcripts_cutoff, RagQuery.question != ERASED)
        .values(question=ERASED)
    )
    await session.commit()
    return {
        "recordings_deleted": len(old_recordings),
        "recording_files_removed": files,
        "turns_deleted": int(getattr(turns, "rowcount", 0) or 0),
        "questions_erased": int(getattr(questions, "rowcount", 0) or 0),
        "recordings_cutoff": recordings_cutoff.isoformat(),
        "transcripts_cutoff": transcripts_cutoff.isoformat(),
    }


REMOVED_KEYS = ("recordings_deleted", "turns_deleted", "questions_erased")


async def purge_and_audit(
    sessions: async_sessionmaker[AsyncSession],
    policy: RetentionPolicy,
    actor: audit.Actor,
    *,
    audit_empty: bool = True,
) -> dict[str, Any]:
    """Run one purge in its own session and record it in the audit log (``audit_empty``: even when nothing went)."""
    async with sessions() as session:
        result = await purge(session, policy)
        if audit_empty or any(result[k] for k in REMOVED_KEYS):
            await audit.record(session, actor, "retention.purge", target_type="retention", detail=result)
    return result


async def run_periodically(
    sessions: async_sessionmaker[AsyncSession],
    policy: RetentionPolicy,
    *,
    interval_seconds: float,
    initial_delay_seconds: float = 30.0,
) -> None:
    """Purge every ``interval_seconds`` (first after ``initial_delay_seconds``) until cancelled.

    A failed run is logged and retried at the next interval; the job never dies of one error.
    """
    await asyncio.sleep(initial_delay_seconds)
    while True:
        try:
            result = await purge_and_audit(sessions, policy, audit.Actor.system("retention"), audit_empty=False)
            log.info("retention_purge_done", **{k: v for k, v in result.items() if not k.endswith("cutoff")})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention_purge_failed")
        await asyncio.sleep(interval_seconds)


def start_purge_job(
    sessions: async_sessionmaker[AsyncSession],
    policy: RetentionPolicy,
    *,
    interval_seconds: float,
    initial_delay_seconds: float = 30.0,
) -> Callable[[], Awaitable[None]]:
    """Start the periodic purge as a task owned by the caller (the app's lifespan); returns its stop function."""
    task = asyncio.create_task(
        run_periodically(
            sessions, policy, interval_seconds=interval_seconds, initial_delay_seconds=initial_delay_seconds
        ),
        name="retention-purge",
    )

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop
