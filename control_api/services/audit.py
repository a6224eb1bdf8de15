"""Append-only audit trail. Nothing in the code base updates or deletes audit rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import AuditLog


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did something and from where (filled from the request, or ``system``/``cli``)."""

    user_id: str | None
    role: str | None
    ip: str | None = None
    request_id: str | None = None

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        """An actor for jobs and the CLI."""
        return cls(user_id=None, role=name)


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    outcome: str = "success",
    detail: dict[str, Any] | None = None,
    commit: bool = True,
) -> AuditLog:
    """Append one audit entry (``action`` like ``calls.update`` or ``recordings.read``)."""
    entry = AuditLog(
        actor_user_id=actor.user_id,
        actor_role=actor.role,
        action=action,
        target_type=target_type,
        target_id=target_id,
        ip=actor.ip,
        request_id=actor.request_id,
        outcome=outcome,
        detail=detail or {},
    )
    session.add(entry)
    if commit:
        await session.commit()
    return entry


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Filters of the audit log listing (all optional, combined with AND)."""

    actor_user_id: str | None = None
    action: str | None = None
    action_prefix: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_entries(
    session: AsyncSession, filters: AuditFilter, *, limit: int = 50, before_id: int | None = None
) -> list[AuditLog]:
    """Audit entries, newest first, with ids below ``before_id`` (keyset pagination)."""
    stmt = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(AuditLog.id < before_id)
    if filters.actor_user_id:
        stmt = stmt.where(AuditLog.actor_user_id == filters.actor_user_id)
    if filters.action:
        stmt = stmt.where(AuditLog.action == filters.action)
    if filters.action_prefix:
        stmt = stmt.where(AuditLog.action.startswith(filters.action_prefix, autoescape=True))
    if filters.target_type:
        stmt = stmt.where(AuditLog.target_type == filters.target_type)
    if filters.target_id:
        stmt = stmt.where(AuditLog.target_id == filters.target_id)
    if filters.outcome:
        stmt = stmt.where(AuditLog.outcome == filters.outcome)
    if filters.since:
        stmt = stmt.where(AuditLog.at >= filters.since)
    if filters.until:
        stmt = stmt.where(AuditLog.at < filters.until)
    return list((await session.execute(stmt)).scalars())
