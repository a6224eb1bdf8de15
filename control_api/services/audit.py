"""Append-only audit trail. Nothing in the code base updates or deletes audit rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
