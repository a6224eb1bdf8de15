"""The audit log (administrators, read-only: no route edits or deletes it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from control_api.db.models import User
from control_api.deps import SessionDep, require
from control_api.rbac import Permission
from control_api.schemas.audit import AuditEntryPublic, AuditPagePublic
from control_api.schemas.common import InputDateTime, decode_cursor, encode_cursor
from control_api.services import audit as service

router = APIRouter(prefix="/api/audit", tags=["audit"])
Auditor = Annotated[User, Depends(require(Permission.AUDIT_READ))]
_Text = Query(max_length=200)


@router.get("", response_model=AuditPagePublic)
async def list_audit(
    session: SessionDep,
    user: Auditor,
    actor_user_id: Annotated[str | None, _Text] = None,
    action: Annotated[str | None, Query(max_length=80, description="Exact action, e.g. calls.update")] = None,
    action_prefix: Annotated[str | None, Query(max_length=80, description="e.g. 'auth.' for every auth action")] = None,
    target_type: Annotated[str | None, Query(max_length=40)] = None,
    target_id: Annotated[str | None, Query(max_length=64)] = None,
    outcome: Annotated[str | None, Query(max_length=20)] = None,
    since: Annotated[InputDateTime | None, Query(description="From this time (inclusive)")] = None,
    until: Annotated[InputDateTime | None, Query(description="Before this time")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AuditPagePublic:
    """Audit entries, newest first, filtered; follow ``next_cursor`` for older ones."""
    del user
    before_id = int(decode_cursor(cursor, size=1)[0]) if cursor else None
    filters = service.AuditFilter(
        actor_user_id=actor_user_id,
        action=action,
        action_prefix=action_prefix,
        target_type=target_type,
        target_id=target_id,
        outcome=outcome,
        since=since,
        until=until,
    )
    rows = await service.list_entries(session, filters, limit=limit + 1, before_id=before_id)
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].id) if len(rows) > limit else None
    return AuditPagePublic(items=[AuditEntryPublic.model_validate(r) for r in page], next_cursor=next_cursor)
