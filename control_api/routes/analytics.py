"""Analytics: calls, sentiment and performance over a time window (dashboards: admin, supervisor, viewer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from control_api.db.models import User
from control_api.deps import SessionDep, require
from control_api.problems import ProblemError
from control_api.rbac import Permission
from control_api.schemas.analytics import (
    CallOutcomeReport,
    CallsReport,
    PerformanceReport,
    SentimentReport,
    TrendsReport,
)
from control_api.schemas.common import InputDateTime
from control_api.services import analytics as service
from control_api.services import calls as call_service

router = APIRouter(prefix="/api/analytics", tags=["analytics"])
Analyst = Annotated[User, Depends(require(Permission.ANALYTICS_READ))]
CallReader = Annotated[User, Depends(require(Permission.CALLS_READ_OWN))]
BucketQuery = Annotated[service.Bucket, Query(description="Group by hour or day (UTC)")]
MAX_WINDOW_DAYS = 366


def window(
    since: Annotated[InputDateTime | None, Query(description="From (default: 30 days before until)")] = None,
    until: Annotated[InputDateTime | None, Query(description="Before (default: now)")] = None,
) -> service.Window:
    """The time window of a report."""
    result = service.default_window(since, until)
    if result.since >= result.until:
        raise ProblemError(400, "since must be before until.", type_="invalid-window")
    if (result.until - result.since).days > MAX_WINDOW_DAYS:
        raise ProblemError(400, f"The window may span at most {MAX_WINDOW_DAYS} days.", type_="invalid-window")
    return result


WindowDep = Annotated[service.Window, Depends(window)]


@router.get("/calls", response_model=CallsReport)
async def calls_report(session: SessionDep, user: Analyst, span: WindowDep, bucket: BucketQuery = "day") -> CallsReport:
    """Call volume by hour or day, channel, direction and outcome; handle-time percentiles and histogram."""
    del user
    return CallsReport.model_validate(await service.calls_report(session, span, bucket=bucket))


@router.get("/sentiment", response_model=SentimentReport)
async def sentiment_report(
    session: SessionDep,
    user: Analyst,
    span: WindowDep,
    bucket: BucketQuery = "day",
    worst: Annotated[int, Query(ge=0, le=200, description="How many of the most negative calls to list")] = 20,
) -> SentimentReport:
    """Caller sentiment per call and its trend (VADER on each caller turn, offline)."""
    del user
    return SentimentReport.model_validate(await service.sentiment_report(session, span, bucket=bucket, worst=worst))


@router.get("/performance", response_model=PerformanceReport)
async def performance_report(session: SessionDep, user: Analyst, span: WindowDep) -> PerformanceReport:
    """Latency per stage (p50/p95), barge-ins, ASR confidence, answer coverage, first-contact resolution."""
    del user
    return PerformanceReport.model_validate(await service.performance_report(session, span))


@router.get("/trends", response_model=TrendsReport)
async def trends_report(
    session: SessionDep,
    user: Analyst,
    span: WindowDep,
    bucket: BucketQuery = "day",
    top: Annotated[int, Query(ge=1, le=50, description="How many topics to list")] = 10,
) -> TrendsReport:
    """Voice latency per stage over time, unanswered questions over time, handoff reasons, top topics."""
    del user
    return TrendsReport.model_validate(await service.trends_report(session, span, bucket=bucket, top=top))


@router.get("/calls/{call_id}/outcome", response_model=CallOutcomeReport)
async def call_outcome(call_id: str, session: SessionDep, user: CallReader) -> CallOutcomeReport:
    """One call's outcome by the containment rule: contained only if every question was answered, no handoff."""
    call = await call_service.get_call_for(session, user, call_id)
    return CallOutcomeReport.model_validate(await service.call_outcome(session, call))
