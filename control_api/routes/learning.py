"""Post-call analysis of a call, operator-defined analysis fields, and autonomous learning's knowledge gaps."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from control_api.db.models import CallAnalysis, User
from control_api.deps import SessionDep, StateDep, actor_for, require
from control_api.problems import ProblemError
from control_api.rbac import Permission
from control_api.schemas.analysis import (
    AnalysisFieldCreate,
    AnalysisFieldListPublic,
    AnalysisFieldPublic,
    CallAnalysisPublic,
)
from control_api.schemas.learning import GapApprove, GapListPublic, GapPublic, GapQuestionPublic, SourcePublic
from control_api.services import analysis, audit, learning
from control_api.services import calls as calls_service
from control_api.services.knowledge import KnowledgeService
from control_api.state import AppState

router = APIRouter(tags=["learning"])
Reader = Annotated[User, Depends(require(Permission.CALLS_READ_OWN))]
Writer = Annotated[User, Depends(require(Permission.CALLS_WRITE))]
Manager = Annotated[User, Depends(require(Permission.LEARNING_MANAGE))]
INGEST_WAIT_S = 120.0


def _analysis_public(row: CallAnalysis) -> CallAnalysisPublic:
    return CallAnalysisPublic.model_validate(row)


@router.get("/api/calls/{call_id}/analysis", response_model=CallAnalysisPublic)
async def get_analysis(session: SessionDep, user: Reader, call_id: str) -> CallAnalysisPublic:
    """A call's post-call analysis (404 until the call has ended and its analysis was queued)."""
    await calls_service.get_call_for(session, user, call_id)
    row = await analysis.get(session, call_id)
    if row is None:
        raise ProblemError(404, "This call has no analysis yet.", type_="not-found")
    return _analysis_public(row)


@router.post("/api/calls/{call_id}/analysis", response_model=CallAnalysisPublic, status_code=202)
async def rerun_analysis(
    request: Request, session: SessionDep, state: StateDep, user: Writer, call_id: str
) -> CallAnalysisPublic:
    """Queue the analysis of an ended call again (the worker runs it within seconds); 409 while it is live."""
    call = await calls_service.get_call_for(session, user, call_id)
    if call.status not in calls_service.TERMINAL_STATUSES:
        raise ProblemError(409, "The call has not ended; it is analysed when it ends.", type_="call-live")
    row = await analysis.request(session, call_id, settle=timedelta(seconds=state.settings.analysis.delay_secs))
    await audit.record(session, actor_for(request, user), "calls.analysis.rerun", target_type="call", target_id=call_id)
    return _analysis_public(row)


@router.get("/api/analysis/fields", response_model=AnalysisFieldListPublic)
async def list_fields(
    session: SessionDep, _: Manager, persona: Annotated[str | None, Query(max_length=100)] = None
) -> AnalysisFieldListPublic:
    """The operator-defined fields post-call analysis extracts, per persona."""
    rows = await analysis.list_fields(session, persona=persona)
    return AnalysisFieldListPublic(items=[AnalysisFieldPublic.model_validate(r) for r in rows])


@router.post("/api/analysis/fields", response_model=AnalysisFieldPublic, status_code=201)
async def create_field(
    request: Request, session: SessionDep, user: Manager, body: AnalysisFieldCreate
) -> AnalysisFieldPublic:
    """Define a field (text, number, boolean or choice) for a persona's calls."""
    row = await analysis.create_field(
        session,
        persona=body.persona,
        name=body.name,
        kind=body.kind,
        description=body.description,
        patterns=body.patterns,
        choices=body.choices,
    )
    await audit.record(
        session, actor_for(request, user), "analysis.field.create", target_type="analysis_field", target_id=row.id
    )
    return AnalysisFieldPublic.model_validate(row)


@router.delete("/api/analysis/fields/{field_id}", status_code=204)
async def delete_field(request: Request, session: SessionDep, user: Manager, field_id: str) -> None:
    """Remove a field definition (analyses already stored keep their values)."""
    await analysis.delete_field(session, field_id)
    await audit.record(
        session, actor_for(request, user), "analysis.field.delete", target_type="analysis_field", target_id=field_id
    )


def gap_public(view: learning.GapView) -> GapPublic:
    """A gap as the API shows it."""
    gap = view.gap
    return GapPublic(
        id=gap.id,
        status=gap.status,
        question=view.question,
        count=view.count,
        calls=view.calls,
        last_asked_at=view.last_asked_at,
        reasons=view.reasons,
        questions=[
            GapQuestionPublic(
                question=q.question,
                call_id=q.call_id,
                reason=q.reason,
                score=q.score,
                asked_at=q.asked_at,
            )
            for q in view.questions
        ],
        draft_answer=gap.draft_answer,
        draft_sources=[SourcePublic.model_validate(s) for s in gap.draft_sources or []],
        final_question=gap.final_question,
        final_answer=gap.final_answer,
        document_id=gap.document_id,
        version=gap.version,
        decided_by=gap.decided_by,
        decided_at=gap.decided_at,
        coverage=gap.coverage or {},
    )


@router.get("/api/learning/gaps", response_model=GapListPublic)
async def list_gaps(
    session: SessionDep,
    _: Manager,
    status: Literal["open", "approved", "dismissed", "all"] = "open",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> GapListPublic:
    """Knowledge gaps: questions not answered, answered weakly or handed off, clustered by meaning."""
    views = await learning.list_gaps(session, status=None if status == "all" else status, limit=limit)
    return GapListPublic(items=[gap_public(v) for v in views])


@router.get("/api/learning/gaps/{gap_id}", response_model=GapPublic)
async def get_gap(session: SessionDep, _: Manager, gap_id: str) -> GapPublic:
    """One knowledge gap with its questions and calls."""
    return gap_public(await learning.get_gap(session, gap_id))


def knowledge_ingest(state: AppState) -> learning.Ingest:
    """How approvals reach the knowledge base: the one ingestion path and its worker (503 when not running)."""
    service: KnowledgeService | None = state.knowledge
    if service is None or service.worker is None:
        raise ProblemError(503, "The knowledge base is not running here.", type_="knowledge-unavailable")
    worker = service.worker

    async def wait_idle() -> None:
        try:
            await worker.wait_idle(INGEST_WAIT_S)
        except TimeoutError:
            raise ProblemError(
                503, "The document is queued but not ingested yet; try again shortly.", type_="ingestion-busy"
            ) from None

    return learning.Ingest(
        uploads_dir=state.settings.uploads_dir,
        max_bytes=state.settings.knowledge.max_upload_bytes,
        notify=worker.notify,
        wait_idle=wait_idle,
        retrieve=lambda q: service.retrieve(q, log=False),
    )


@router.post("/api/learning/gaps/{gap_id}/approve", response_model=GapPublic)
async def approve_gap(
    request: Request, session: SessionDep, state: StateDep, user: Manager, gap_id: str, body: GapApprove
) -> GapPublic:
    """Ingest the final entry as a knowledge document (versioned, with the approver); report coverage before/after."""
    await learning.get_gap(session, gap_id)
    view = await learning.approve(
        session,
        gap_id,
        question=body.question,
        answer=body.answer,
        user=user,
        actor=actor_for(request, user),
        ingest=knowledge_ingest(state),
    )
    return gap_public(view)


@router.post("/api/learning/gaps/{gap_id}/dismiss", response_model=GapPublic)
async def dismiss_gap(request: Request, session: SessionDep, user: Manager, gap_id: str) -> GapPublic:
    """Dismiss a gap (its questions stop showing; new ones of the same meaning join it silently)."""
    return gap_public(await learning.dismiss(session, gap_id, user=user, actor=actor_for(request, user)))
