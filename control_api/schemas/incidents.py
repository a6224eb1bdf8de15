"""Incident schemas."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from control_api.schemas.common import InputDateTime, UTCDateTime

Kind = Literal["operational", "security"]
Severity = Literal["low", "medium", "high", "critical"]
Status = Literal["open", "mitigated", "resolved"]


class IncidentCreate(BaseModel):
    """A new incident; ``personal_data_breach`` starts the 72-hour notification clock from ``detected_at``."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    kind: Kind = "security"
    severity: Severity = "medium"
    personal_data_breach: bool = False
    detected_at: InputDateTime | None = Field(default=None, description="When it was detected (default: now)")


class IncidentUpdate(BaseModel):
    """Changes; ``notified: true`` records that the authority and the people affected were told."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=20_000)
    severity: Severity | None = None
    status: Status | None = None
    personal_data_breach: bool | None = None
    notified: bool | None = None


class IncidentPublic(BaseModel):
    """An incident with its notification clock."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    description: str
    kind: str
    severity: str
    status: str
    personal_data_breach: bool
    detected_at: UTCDateTime
    notify_by: UTCDateTime | None
    notified_at: UTCDateTime | None
    resolved_at: UTCDateTime | None
    created_by: str | None
    hours_left: float | None = Field(default=None, description="Hours until notify_by (negative: late)")
    notification_overdue: bool = False


class IncidentsPublic(BaseModel):
    """Incidents, open first."""

    items: list[IncidentPublic]
