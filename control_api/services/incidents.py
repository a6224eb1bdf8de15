"""Security and operational incidents; a personal-data breach starts the 72-hour notification clock.

DPDP Rules 2025 and GDPR Art. 33 both expect the authority to be told within 72 hours of becoming aware of a
personal-data breach: ``notify_by`` is ``detected_at`` + 72 h, and an incident past it without
``notified_at`` is overdue.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import Incident, utcnow
from control_api.problems import ProblemError

NOTIFICATION_WINDOW = timedelta(hours=72)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=utcnow().tzinfo)


def clock(incident: Incident, *, now: datetime | None = None) -> dict[str, Any]:
    """The notification clock of an incident: hours left (negative when late) and whether it is overdue."""
    notify_by = _aware(incident.notify_by)
    if notify_by is None or incident.notified_at is not None:
        return {"hours_left": None, "notification_overdue": False}
    left = (notify_by - (now or utcnow())).total_seconds() / 3600
    return {"hours_left": round(left, 2), "notification_overdue": left < 0}


def _apply_breach(incident: Incident) -> None:
    detected = _aware(incident.detected_at) or utcnow()
    incident.notify_by = detected + NOTIFICATION_WINDOW if incident.personal_data_breach else None


async def create(
    session: AsyncSession,
    *,
    title: str,
    description: str,
    kind: str,
    severity: str,
    personal_data_breach: bool,
    detected_at: datetime | None,
    created_by: str | None,
) -> Incident:
    """Record an incident. Commits."""
    detected = _aware(detected_at) or utcnow()
    if detected > utcnow() + timedelta(minutes=5):
        raise ProblemError(422, "detected_at cannot be in the future.", type_="validation-error")
    incident = Incident(
        title=title,
        description=description,
        kind=kind,
        severity=severity,
        personal_data_breach=personal_data_breach,
        detected_at=detected,
        created_by=created_by,
    )
    _apply_breach(incident)
    session.add(incident)
    await session.commit()
    return incident


async def get(session: AsyncSession, incident_id: str) -> Incident:
    """One incident; 404 when absent."""
    incident = await session.get(Incident, incident_id)
    if incident is None:
        raise ProblemError(404, "No incident with this id.", type_="not-found")
    return incident


async def list_incidents(
    session: AsyncSession, *, status: str | None = None, limit: int = 100, offset: int = 0
) -> list[Incident]:
    """Incidents: open ones first, then by detection time, newest first."""
    stmt = select(Incident).order_by(
        case((Incident.status == "resolved", 1), else_=0), Incident.detected_at.desc(), Incident.id
    )
    if status:
        stmt = stmt.where(Incident.status == status)
    return list((await session.execute(stmt.limit(limit).offset(offset))).scalars())


async def update(session: AsyncSession, incident_id: str, changes: dict[str, Any]) -> tuple[Incident, list[str]]:
    """Change an incident; ``notified: true`` stamps the notification, ``status: resolved`` the resolution. Commits."""
    incident = await get(session, incident_id)
    changed: list[str] = []
    for field in ("title", "description", "severity", "status", "personal_data_breach"):
        if field in changes and changes[field] is not None and getattr(incident, field) != changes[field]:
            setattr(incident, field, changes[field])
            changed.append(field)
    if "personal_data_breach" in changed:
        _apply_breach(incident)
    if changes.get("notified") and incident.notified_at is None:
        incident.notified_at = utcnow()
        changed.append("notified_at")
    if "status" in changed:
        incident.resolved_at = utcnow() if incident.status == "resolved" else None
    await session.commit()
    return incident, changed
