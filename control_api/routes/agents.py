"""Human agents' presence: ``available`` (offered handoffs), ``busy`` (on one), ``away``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from control_api.db.models import User
from control_api.deps import SessionDep, require
from control_api.rbac import Permission
from control_api.schemas.handoffs import PresenceIn, PresenceList, PresencePublic
from control_api.services import handoffs as service

router = APIRouter(prefix="/api/agents", tags=["handoffs"])
Taker = Annotated[User, Depends(require(Permission.HANDOFFS_TAKE))]
Manager = Annotated[User, Depends(require(Permission.HANDOFFS_MANAGE))]


@router.put("/me/presence", response_model=PresencePublic)
async def put_presence(body: PresenceIn, session: SessionDep, user: Taker) -> PresencePublic:
    """Set your presence; going ``available`` offers you every handoff still waiting."""
    row = await service.set_presence(session, user.id, body.status)
    if body.status == "available":
        await service.offer_to(session, user.id)
    return PresencePublic(
        user_id=user.id, email=user.email, full_name=user.full_name, status=row.status, updated_at=row.updated_at
    )


@router.get("/presence", response_model=PresenceList)
async def list_presence(session: SessionDep, user: Manager) -> PresenceList:
    """Every agent's presence (supervisors): who is available, busy or away."""
    del user
    rows = await service.presence_list(session)
    return PresenceList(
        items=[
            PresencePublic(
                user_id=p.user_id, email=u.email, full_name=u.full_name, status=p.status, updated_at=p.updated_at
            )
            for p, u in rows
        ]
    )
