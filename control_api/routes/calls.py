"""Calls: list (filters, text search, cursor pagination), CSV export, register, annotate, transcript, recording."""

from __future__ import annotations

import csv
import io
import mimetypes
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, StreamingResponse

from control_api.db.models import Call, User
from control_api.deps import CurrentUser, SessionDep, StateDep, actor_for, require
from control_api.file_responses import ProblemFileResponse
from control_api.problems import ProblemError
from control_api.rbac import Permission
from control_api.schemas.calls import (
    CallCreate,
    CallPagePublic,
    CallPublic,
    CallUpdate,
    Channel,
    LatencyPublic,
    Outcome,
    TranscriptPublic,
    TurnPublic,
)
from control_api.schemas.common import InputDateTime, checked_input_time, decode_cursor, encode_cursor
from control_api.services import analysis as analysis_service
from control_api.services import audit
from control_api.services import calls as service

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/calls", tags=["calls"])
Reader = Annotated[User, Depends(require(Permission.CALLS_READ_OWN))]
Writer = Annotated[User, Depends(require(Permission.CALLS_WRITE))]
Exporter = Annotated[User, Depends(require(Permission.CALLS_READ_ALL))]
CSV_COLUMNS = (
    "id",
    "started_at",
    "ended_at",
    "channel",
    "direction",
    "status",
    "outcome",
    "end_reason",
    "duration_ms",
    "caller_name",
    "caller_number",
    "caller_email",
    "agent_user_id",
    "disposition",
    "tags",
    "sentiment",
    "sentiment_label",
    "latency_p50_ms",
    "latency_p95_ms",
    "notes",
)
MAX_EXPORT_ROWS = 100_000


def call_filter(
    since: Annotated[InputDateTime | None, Query(description="Started at or after")] = None,
    until: Annotated[InputDateTime | None, Query(description="Started before")] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    channel: Annotated[Channel | None, Query()] = None,
    outcome: Annotated[Outcome | None, Query(description="The outcome the call analysis checked")] = None,
    agent_user_id: Annotated[str | None, Query(max_length=36, description="The human agent")] = None,
    sentiment: Annotated[str | None, Query(pattern="^(positive|neutral|negative)$")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200, description="Words in the transcript")] = None,
    field: Annotated[
        list[str] | None,
        Query(description="Post-call analysis field, ``name:value`` (repeatable, all must hold)"),
    ] = None,
) -> service.CallFilter:
    """The filters shared by the listing and the CSV export."""
    return service.CallFilter(
        since=since,
        until=until,
        status=status,
        channel=channel,
        outcome=outcome,
        agent_user_id=agent_user_id,
        sentiment=sentiment,
        q=q,
        fields=tuple(analysis_service.field_filter(f) for f in field[:10]) if field else None,
    )


Filters = Annotated[service.CallFilter, Depends(call_filter)]


async def _public(session: SessionDep, calls: list[Call]) -> list[CallPublic]:
    recorded = await service.has_recordings(session, [c.id for c in calls])
    outcomes = await service.outcomes(session, calls)
    return [
        CallPublic.model_validate(c).model_copy(update={"has_recording": c.id in recorded, "outcome": outcomes[c.id]})
        for c in calls
    ]


@router.get("", response_model=CallPagePublic)
async def list_calls(
    session: SessionDep,
    user: Reader,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> CallPagePublic:
    """Calls, newest first (agents: theirs and their callbacks'); follow ``next_cursor`` for older ones."""
    after: tuple[datetime, str] | None = None
    if cursor:
        started, call_id = decode_cursor(cursor, size=2)
        try:
            after = (checked_input_time(datetime.fromisoformat(str(started))), str(call_id))
        except ValueError:
            raise ProblemError(400, "The cursor is not valid.", type_="invalid-cursor") from None
    rows = await service.list_calls(session, user, filters, limit=limit + 1, after=after)
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].started_at.isoformat(), page[-1].id) if len(rows) > limit else None
    return CallPagePublic(items=await _public(session, page), next_cursor=next_cursor)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # a number (a negative sentiment) is data, not a formula: keep it numeric
    text = ";".join(value) if isinstance(value, list) else str(value)
    # Spreadsheets run cells starting with these as formulas (CSV injection): make them text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@router.get(
    "/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "The filtered calls as CSV"}},
)
async def export_calls(
    request: Request,
    session: SessionDep,
    state: StateDep,
    user: Exporter,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=MAX_EXPORT_ROWS)] = 10_000,
) -> StreamingResponse:
    """The filtered calls as CSV, newest first (audited)."""
    await audit.record(
        session,
        actor_for(request, user),
        "calls.export",
        target_type="call",
        detail={"filters": filters.describe(), "limit": limit},
    )

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        # A session of its own: the request's session closes when the handler returns.
        async with state.sessions() as export_session:
            count = 0
            async for call, outcome in service.stream_calls(export_session, user, filters, max_rows=limit):
                writer.writerow(
                    [_csv_cell(outcome if column == "outcome" else getattr(call, column)) for column in CSV_COLUMNS]
                )
                count += 1
                if count % 200 == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="calls.csv"', "Cache-Control": "no-store"},
    )


@router.post("", response_model=CallPublic, status_code=201)
async def create_call(body: CallCreate, request: Request, session: SessionDep, user: Writer) -> CallPublic:
    """Register a call (e.g. one carried by an external switch)."""
    if body.agent_user_id is not None and await session.get(User, body.agent_user_id) is None:
        raise ProblemError(422, "agent_user_id names no account.", type_="validation-error")
    call = await service.create_call(
        session,
        channel=body.channel,
        direction=body.direction,
        caller_number=body.caller_number,
        caller_email=str(body.caller_email) if body.caller_email else None,
        caller_name=body.caller_name,
        created_by=user.id,
        agent_user_id=body.agent_user_id,
        consent_recording=body.consent_recording,
        status="ringing",
    )
    await audit.record(session, actor_for(request, user), "calls.create", target_type="call", target_id=call.id)
    return CallPublic.model_validate(call)


@router.get("/{call_id}", response_model=CallPublic)
async def get_call(call_id: str, session: SessionDep, user: Reader) -> CallPublic:
    """One call (agents: the calls they took or whose callback they hold or completed)."""
    call = await service.get_call_for(session, user, call_id)
    return (await _public(session, [call]))[0]


@router.put("/{call_id}", response_model=CallPublic)
async def update_call(
    call_id: str, body: CallUpdate, request: Request, session: SessionDep, user: CurrentUser
) -> CallPublic:
    """Set notes, disposition and tags (supervisors: any call; agents: the calls they took)."""
    call, changed = await service.annotate(
        session, user, call_id, changes=body.model_dump(include=body.model_fields_set, exclude_none=True)
    )
    await audit.record(
        session,
        actor_for(request, user),
        "calls.update",
        target_type="call",
        target_id=call.id,
        detail={"fields": changed},
    )
    return (await _public(session, [call]))[0]


@router.get("/{call_id}/transcript", response_model=TranscriptPublic)
async def get_transcript(call_id: str, request: Request, session: SessionDep, user: Reader) -> TranscriptPublic:
    """The call's transcript (PII redacted at storage) and per-turn latency (audited)."""
    call = await service.get_call_for(session, user, call_id)
    turns, latency = await service.transcript(session, call.id)
    await audit.record(session, actor_for(request, user), "transcripts.read", target_type="call", target_id=call.id)
    return TranscriptPublic(
        call_id=call.id,
        turns=[TurnPublic.model_validate(t) for t in turns],
        latency=[LatencyPublic.model_validate(e) for e in latency],
    )


def _recording_file(recordings_dir: Path, stored: str) -> Path | None:
    path = Path(stored)
    if not path.is_absolute():
        path = recordings_dir / path
    path = path.resolve()
    # Only files under the recordings directory are ever served.
    if not path.is_relative_to(recordings_dir.resolve()) or not path.is_file():
        return None
    return path


@router.get(
    "/{call_id}/recording",
    response_class=FileResponse,
    responses={
        200: {"content": {"audio/wav": {}}, "description": "The recording"},
        206: {"content": {"audio/wav": {}}, "description": "A byte range of the recording"},
        400: {"description": "Malformed Range header"},
        404: {"description": "No call, or no recording"},
        416: {"description": "Range outside the recording (with `Content-Range: bytes */SIZE`)"},
    },
)
async def get_recording(
    call_id: str, request: Request, session: SessionDep, state: StateDep, user: Reader
) -> FileResponse:
    """Stream the call's recording; byte ranges (``Range: bytes=...``) are honoured. Every read is audited."""
    call = await service.get_call_for(session, user, call_id)
    recording = await service.current_recording(session, call.id)
    path = _recording_file(state.settings.recordings_dir, recording.path) if recording else None
    if recording is None or path is None:
        if recording is not None:
            log.warning("recording_file_missing", call_id=call.id, recording_id=recording.id)
        raise ProblemError(404, "This call has no recording.", type_="not-found")
    await audit.record(
        session,
        actor_for(request, user),
        "recordings.read",
        target_type="recording",
        target_id=recording.id,
        detail={"call_id": call.id, "range": request.headers.get("range", "")[:100]},
    )
    media_type = mimetypes.guess_type(path.name)[0] or f"audio/{recording.format}"
    return ProblemFileResponse(path, media_type=media_type, filename=f"call-{call.id}.{recording.format}")
