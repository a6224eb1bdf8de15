"""Audit log schemas (read-only: the API never creates, edits or deletes entries directly)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from control_api.schemas.common import UTCDateTime


class AuditEntryPublic(BaseModel):
    """One audit entry: who did what to which object, when, from where, and how it ended."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: UTCDateTime
    actor_user_id: str | None
    actor_role: str | None
    action: str
    target_type: str | None
    target_id: str | None
    ip: str | None
    request_id: str | None
    outcome: str
    detail: dict[str, Any]


class AuditPagePublic(BaseModel):
    """Newest first; pass ``next_cursor`` as ``cursor`` for the next page (null at the end)."""

    items: list[AuditEntryPublic]
    next_cursor: str | None
