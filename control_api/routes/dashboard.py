"""The dashboard's live figures (admin, supervisor, viewer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from control_api.db.models import User
from control_api.deps import SessionDep, require
from control_api.rbac import Permission
from control_api.schemas.analytics import DashboardStats
from control_api.services import analytics as service

router = APIRouter(prefix="/api/dashboard", tags=["analytics"])
Analyst = Annotated[User, Depends(require(Permission.ANALYTICS_READ))]


@router.get("/stats", response_model=DashboardStats)
async def stats(session: SessionDep, user: Analyst) -> DashboardStats:
    """Live calls, today's volume, containment and handoff rates, handle time, voice latency, sentiment mix."""
    del user
    return DashboardStats.model_validate(await service.dashboard(session))
