"""Personas: list, read, create and edit (each edit stores a new active version)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from control_api.db.models import User
from control_api.deps import CurrentUser, SessionDep, actor_for, require
from control_api.rbac import Permission
from control_api.schemas.personas import PersonaCreate, PersonaPublic, PersonasPublic, PersonaUpdate
from control_api.services import audit
from control_api.services import personas as service

router = APIRouter(prefix="/api/personas", tags=["personas"])
Manager = Annotated[User, Depends(require(Permission.PERSONAS_MANAGE))]
_NULLABLE = frozenset({"voice"})


@router.get("", response_model=PersonasPublic)
async def list_personas(session: SessionDep, user: CurrentUser) -> PersonasPublic:
    """The active version of every persona."""
    del user
    rows = await service.list_active(session)
    return PersonasPublic(data=[PersonaPublic.model_validate(p) for p in rows], count=len(rows))


@router.get("/{name}", response_model=PersonaPublic)
async def get_persona(name: str, session: SessionDep, user: CurrentUser) -> PersonaPublic:
    """The active version of persona ``name``."""
    del user
    return PersonaPublic.model_validate(await service.get_active(session, name))


@router.get("/{name}/versions", response_model=PersonasPublic)
async def list_persona_versions(name: str, session: SessionDep, user: Manager) -> PersonasPublic:
    """Every version of persona ``name``, newest first."""
    del user
    rows = await service.list_versions(session, name)
    return PersonasPublic(data=[PersonaPublic.model_validate(p) for p in rows], count=len(rows))


@router.post("", response_model=PersonaPublic, status_code=201)
async def create_persona(body: PersonaCreate, request: Request, session: SessionDep, user: Manager) -> PersonaPublic:
    """Create a persona (version 1, active)."""
    persona = await service.create(session, created_by=user.id, **body.model_dump())
    await audit.record(
        session,
        actor_for(request, user),
        "personas.create",
        target_type="persona",
        target_id=persona.id,
        detail={"name": persona.name, "version": persona.version},
    )
    return PersonaPublic.model_validate(persona)


@router.put("/{name}", response_model=PersonaPublic)
async def update_persona(
    name: str, body: PersonaUpdate, request: Request, session: SessionDep, user: Manager
) -> PersonaPublic:
    """Store an edit of persona ``name`` as a new version that becomes the active one."""
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None or k in _NULLABLE}
    if not changes:  # nothing to change: no new version
        return PersonaPublic.model_validate(await service.get_active(session, name))
    persona = await service.new_version(session, name, changes=changes, created_by=user.id)
    await audit.record(
        session,
        actor_for(request, user),
        "personas.update",
        target_type="persona",
        target_id=persona.id,
        detail={"name": persona.name, "version": persona.version, "fields": sorted(changes)},
    )
    return PersonaPublic.model_validate(persona)
