"""Personal data: consents, data-subject requests (export, correction, erasure), retention (administrators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from control_api.db.models import Call, User
from control_api.deps import SessionDep, StateDep, actor_for, require
from control_api.problems import ProblemError
from control_api.rbac import Permission
from control_api.schemas.privacy import (
    ConsentCreate,
    ConsentPublic,
    ConsentsPublic,
    DataRequestCreate,
    DataRequestPublic,
    DataRequestReject,
    DataRequestsPublic,
    PurgeResult,
    RetentionPolicyPublic,
)
from control_api.services import audit, retention
from control_api.services import privacy as service

router = APIRouter(prefix="/api/privacy", tags=["privacy"])
Officer = Annotated[User, Depends(require(Permission.PRIVACY_MANAGE))]
RequestStatus = Annotated[str | None, Query(pattern="^(received|completed|rejected)$")]


@router.get("/consents", response_model=ConsentsPublic)
async def list_consents(
    session: SessionDep,
    user: Officer,
    phone: Annotated[str | None, Query(max_length=32)] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    call_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ConsentsPublic:
    """Consent records of a subject (phone or e-mail) or a call, newest first."""
    del user
    rows = await service.list_consents(session, phone=phone, email=email, call_id=call_id, limit=limit)
    return ConsentsPublic(items=[ConsentPublic.model_validate(c) for c in rows])


@router.post("/consents", response_model=ConsentPublic, status_code=201)
async def create_consent(body: ConsentCreate, request: Request, session: SessionDep, user: Officer) -> ConsentPublic:
    """Record a consent given outside a call, or correct one of a call (the voice side records its own)."""
    if body.call_id is not None and await session.get(Call, body.call_id) is None:
        raise ProblemError(422, "call_id names no call.", type_="validation-error")
    consent = await service.record_consent(
        session,
        notice_text=body.notice_text,
        recording=body.recording,
        call_id=body.call_id,
        subject_phone=body.subject_phone,
        subject_email=str(body.subject_email) if body.subject_email else None,
    )
    await audit.record(
        session,
        actor_for(request, user),
        "consents.create",
        target_type="consent",
        target_id=consent.id,
        detail={"recording": consent.recording, "call_id": consent.call_id},
    )
    return ConsentPublic.model_validate(consent)


@router.get("/requests", response_model=DataRequestsPublic)
async def list_requests(
    session: SessionDep,
    user: Officer,
    status: RequestStatus = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> DataRequestsPublic:
    """Data-subject requests, newest first."""
    del user
    rows = await service.list_requests(session, status=status, limit=limit, offset=offset)
    return DataRequestsPublic(items=[DataRequestPublic.model_validate(r) for r in rows])


@router.post("/requests", response_model=DataRequestPublic, status_code=201)
async def create_request(
    body: DataRequestCreate, request: Request, session: SessionDep, user: Officer
) -> DataRequestPublic:
    """Record a request (status ``received``); execute it once the requester's identity is verified."""
    details = body.correction.model_dump(exclude_none=True, mode="json") if body.correction else {}
    created = await service.create_request(
        session,
        kind=body.kind,
        subject=service.Subject(
            phone=body.subject_phone, email=str(body.subject_email) if body.subject_email else None
        ),
        details=details,
        requested_by=user.id,
    )
    await audit.record(
        session,
        actor_for(request, user),
        "privacy.request_created",
        target_type="data_subject_request",
        target_id=created.id,
        detail={"kind": created.kind},
    )
    return DataRequestPublic.model_validate(created)


@router.get("/requests/{request_id}", response_model=DataRequestPublic)
async def get_request(request_id: str, request: Request, session: SessionDep, user: Officer) -> DataRequestPublic:
    """One request with its result (for an export, the exported data: the read is audited)."""
    found = await service.get_request(session, request_id)
    if found.kind == "export" and found.status == "completed":
        await audit.record(
            session,
            actor_for(request, user),
            "privacy.export_read",
            target_type="data_subject_request",
            target_id=found.id,
        )
    return DataRequestPublic.model_validate(found)


@router.post("/requests/{request_id}/execute", response_model=DataRequestPublic)
async def execute_request(
    request_id: str, request: Request, session: SessionDep, state: StateDep, user: Officer
) -> DataRequestPublic:
    """Carry out a received request: export, correct, or erase.

    Erasure removes transcripts and recordings and anonymises the calls; the audit trail is kept.
    """
    done = await service.execute_request(session, request_id, recordings_dir=state.settings.recordings_dir)
    summary = {k: v for k, v in done.result.items() if isinstance(v, int | str) and k != "generated_at"}
    await audit.record(
        session,
        actor_for(request, user),
        f"privacy.{done.kind}",
        target_type="data_subject_request",
        target_id=done.id,
        detail=summary if done.kind != "export" else {"calls": len(done.result.get("calls", []))},
    )
    return DataRequestPublic.model_validate(done)


@router.post("/requests/{request_id}/reject", response_model=DataRequestPublic)
async def reject_request(
    request_id: str, body: DataRequestReject, request: Request, session: SessionDep, user: Officer
) -> DataRequestPublic:
    """Decline a received request, with the reason."""
    done = await service.reject_request(session, request_id, reason=body.reason)
    await audit.record(
        session,
        actor_for(request, user),
        "privacy.request_rejected",
        target_type="data_subject_request",
        target_id=done.id,
    )
    return DataRequestPublic.model_validate(done)


@router.get("/retention", response_model=RetentionPolicyPublic)
async def retention_policy(state: StateDep, user: Officer) -> RetentionPolicyPublic:
    """The retention policy in force (set in ``settings.retention``)."""
    del user
    r = state.settings.retention
    return RetentionPolicyPublic(
        recordings_days=r.recordings_days,
        transcripts_days=r.transcripts_days,
        purge_interval_minutes=r.purge_interval_minutes,
        redact_pii=r.redact_pii,
    )


def retention_policy_of(state: StateDep) -> retention.RetentionPolicy:
    """The purge policy built from the settings."""
    r = state.settings.retention
    return retention.RetentionPolicy(
        recordings_days=r.recordings_days,
        transcripts_days=r.transcripts_days,
        recordings_dir=state.settings.recordings_dir,
    )


@router.post("/retention/purge", response_model=PurgeResult)
async def purge_now(request: Request, state: StateDep, user: Officer) -> PurgeResult:
    """Run the retention purge now (it also runs on its own every ``purge_interval_minutes``)."""
    result = await retention.purge_and_audit(state.sessions, retention_policy_of(state), actor_for(request, user))
    return PurgeResult.model_validate(result)
