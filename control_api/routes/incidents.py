"""Security incidents and the 72-hour breach-notification clock (administrators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from control_api.db.models import Incident, User
from control_api.deps import SessionDep, actor_for, require
from control_api.rbac import Permission
from control_api.schemas.incidents import IncidentCreate, IncidentPublic, IncidentsPublic, IncidentUpdate, Status
from control_api.services import audit
from control_api.services import incidents as service

router = APIRouter(prefix="/api/incidents", tags=["incidents"])
Officer = Annotated[User, Depends(require(Permission.INCIDENTS_MANAGE))]


def _public(incident: Incident) -> IncidentPublic:
    return IncidentPublic.model_validate(incident).model_copy(update=service.clock(incident))


@router.get("", response_model=IncidentsPublic)
async def list_incidents(
    session: SessionDep,
    user: Officer,
    status: Annotated[Status | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> IncidentsPublic:
    """Incidents, open ones first, each with its notification clock."""
    del user
    rows = await service.list_incidents(session, status=status, limit=limit, offset=offset)
    return IncidentsPublic(items=[_public(i) for i in rows])


@router.post("", response_model=IncidentPublic, status_code=201)
async def create_incident(body: IncidentCreate, request: Request, session: SessionDep, user: Officer) -> IncidentPublic:
    """Record an incident; a personal-data breach must be notified within 72 hours of detection."""
    incident = await service.create(session, created_by=user.id, **body.model_dump())
    await audit.record(
        session,
        actor_for(request, user),
        "incidents.create",
        target_type="incident",
        target_id=incident.id,
        detail={"severity": incident.severity, "personal_data_breach": incident.personal_data_breach},
    )
    return _public(incident)


@router.get("/{incident_id}", response_model=IncidentPublic)
async def get_incident(incident_id: str, session: SessionDep, user: Officer) -> IncidentPublic:
    """One incident with its notification clock."""
    del user
    return _public(await service.get(session, incident_id))


@router.patch("/{incident_id}", response_model=IncidentPublic)
async def update_incident(
    incident_id: str, body: IncidentUpdate, request: Request, session: SessionDep, user: Officer
) -> IncidentPublic:
    """Update status, severity or breach flag; ``notified: true`` stops the clock."""
    incident, changed = await service.update(session, incident_id, body.model_dump(exclude_unset=True))
    await audit.record(
        session,
        actor_for(request, user),
        "incidents.update",
        target_type="incident",
        target_id=incident.id,
        detail={"fields": changed},
    )
    return _public(incident)
