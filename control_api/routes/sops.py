"""The SOP generator: draft a procedure from calls (a knowledge gap's or a topic's), edit it, approve it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from control_api.db.models import User
from control_api.deps import SessionDep, StateDep, actor_for, require
from control_api.rbac import Permission
from control_api.routes.learning import knowledge_ingest
from control_api.schemas.sops import SopCreate, SopListPublic, SopPublic, SopUpdate
from control_api.services import audit, sops

router = APIRouter(prefix="/api/sops", tags=["sops"])
Manager = Annotated[User, Depends(require(Permission.SOPS_MANAGE))]


@router.get("", response_model=SopListPublic)
async def list_sops(session: SessionDep, _: Manager, limit: Annotated[int, Query(ge=1, le=200)] = 100) -> SopListPublic:
    """Procedures, newest first."""
    return SopListPublic(items=[SopPublic.model_validate(s) for s in await sops.list_all(session, limit=limit)])


@router.post("", response_model=SopPublic, status_code=201)
async def create_sop(
    request: Request, session: SessionDep, state: StateDep, user: Manager, body: SopCreate
) -> SopPublic:
    """Draft a procedure offline from the calls of a knowledge gap or of a search topic (422: no call matches)."""
    service = state.knowledge
    sop = await sops.generate(
        session,
        user=user,
        embedder=service.embedder if service is not None else None,
        similarity=state.settings.analysis.cluster_similarity,
        gap_id=body.gap_id,
        topic=body.topic,
        title=body.title,
        max_calls=body.max_calls,
    )
    await audit.record(session, actor_for(request, user), "sops.create", target_type="sop", target_id=sop.id)
    return SopPublic.model_validate(sop)


@router.get("/{sop_id}", response_model=SopPublic)
async def get_sop(session: SessionDep, _: Manager, sop_id: str) -> SopPublic:
    """One procedure with its steps, the calls each step cites, passages, tools and escalation points."""
    return SopPublic.model_validate(await sops.get(session, sop_id))


@router.put("/{sop_id}", response_model=SopPublic)
async def update_sop(request: Request, session: SessionDep, user: Manager, sop_id: str, body: SopUpdate) -> SopPublic:
    """Edit the title or steps (a new version; approved procedures go back to draft)."""
    sop = await sops.update(
        session,
        sop_id,
        title=body.title,
        steps=[s.model_dump() for s in body.steps] if body.steps is not None else None,
    )
    await audit.record(session, actor_for(request, user), "sops.update", target_type="sop", target_id=sop_id)
    return SopPublic.model_validate(sop)


@router.post("/{sop_id}/approve", response_model=SopPublic)
async def approve_sop(request: Request, session: SessionDep, state: StateDep, user: Manager, sop_id: str) -> SopPublic:
    """Ingest the procedure as a knowledge document (versioned, with the approver)."""
    await sops.get(session, sop_id)
    sop = await sops.approve(session, sop_id, user=user, actor=actor_for(request, user), ingest=knowledge_ingest(state))
    return SopPublic.model_validate(sop)
