"""Calls: the write path used by the voice side (through the agent's ``CallSink``) and by the API.

Every function commits, so a record survives a crash the moment the function returns: a call exists
from its first packet, and each transcript turn is stored as soon as it ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import (
    Call,
    CallbackRequest,
    CallEvent,
    CallOutcome,
    CallTurn,
    Recording,
    User,
    utcnow,
)
from control_api.integrations import outbox
from control_api.problems import ProblemError
from control_api.rbac import Permission, has_permission
from control_api.services import analysis, analytics, redaction
from control_api.services import sentiment as sentiment_analysis

TERMINAL_STATUSES = frozenset({"ended", "failed"})


async def create_call(
    session: AsyncSession,
    *,
    channel: str,
    caller_number: str | None = None,
    caller_email: str | None = None,
    caller_name: str | None = None,
    persona_id: str | None = None,
    created_by: str | None = None,
    status: str = "ringing",
    meta: dict[str, Any] | None = None,
    call_id: str | None = None,
    direction: str = "inbound",
    agent_user_id: str | None = None,
    consent_recording: bool | None = None,
) -> Call:
    """Register a new call."""
    call = Call(
        channel=channel,
        direction=direction,
        agent_user_id=agent_user_id,
        consent_recording=consent_recording,
        caller_number=caller_number,
        caller_email=caller_email,
        caller_name=caller_name,
        persona_id=persona_id,
        created_by=created_by,
        status=status,
        meta=meta or {},
    )
    if call_id is not None:
        call.id = call_id
    session.add(call)
    await session.flush()
    # Integrations learn of the call in the transaction that records it (transactional outbox).
    await outbox.emit(session, "call.started", _call_event(call), call_id=call.id, key=call.id)
    await session.commit()
    return call


def _call_event(call: Call) -> dict[str, Any]:
    """What integrations are told about a call (no transcript, no caller details)."""
    return {
        "call_id": call.id,
        "channel": call.channel,
        "direction": call.direction,
        "status": call.status,
        "outcome": call.outcome,
        "end_reason": call.end_reason,
        "started_at": call.started_at.isoformat() if call.started_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "duration_ms": call.duration_ms,
    }


async def get_call(session: AsyncSession, call_id: str) -> Call:
    """The call with ``call_id``; 404 problem when absent."""
    call = await session.get(Call, call_id)
    if call is None:
        raise ProblemError(404, "No call with this id.", type_="not-found")
    return call


async def set_status(session: AsyncSession, call_id: str, status: str) -> Call:
    """Move a call to ``status`` (``active`` stamps ``answered_at`` once)."""
    call = await get_call(session, call_id)
    if call.status in TERMINAL_STATUSES:
        return call
    call.status = status
    if status == "active" and call.answered_at is None:
        call.answered_at = utcnow()
    await session.commit()
    return call


async def append_turn(
    session: AsyncSession,
    call_id: str,
    *,
    seq: int,
    role: str,
    text: str,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    interrupted: bool = False,
    asr_confidence: float | None = None,
    sentiment: float | None = None,
    citations: Sequence[str] = (),
    redact: bool = True,
    score_sentiment: bool = True,
) -> CallTurn:
    """Store one transcript turn, redacted, with the caller's sentiment.

    Args:
        session: Database session (committed before returning).
        call_id: The call.
        seq: Turn number within the call.
        role: ``caller``, ``agent``, ``human`` or ``system``.
        text: The raw utterance. Only its redacted form is stored when ``redact`` is on.
        started_at: When the speaker started.
        ended_at: When the speaker stopped (now when omitted).
        interrupted: The agent was cut off by the caller (barge-in).
        asr_confidence: Recogniser confidence in [0, 1].
        sentiment: A precomputed compound score; computed with VADER for caller turns when omitted.
        citations: Knowledge-base chunk ids the answer used.
        redact: Replace PII (cards, phones, e-mails, PAN, Aadhaar) before storage
            (pass ``settings.retention.redact_pii``); the desk's turns keep the contacts the business
            published (``redaction.redact_turn``).
        score_sentiment: Score caller turns and keep the call's mean sentiment up to date.

    """
    is_caller = role == "caller"
    if sentiment is None and score_sentiment and is_caller:
        # Scored on the utterance in memory; only the redacted text reaches the database.
        sentiment = sentiment_analysis.score(text)
    stored = await redaction.redact_turn(session, call_id, role=role, text=text) if redact else text
    turn = CallTurn(
        call_id=call_id,
        seq=seq,
        role=role,
        text=stored,
        started_at=started_at,
        ended_at=ended_at or utcnow(),
        interrupted=interrupted,
        asr_confidence=asr_confidence,
        sentiment=sentiment,
        citations=list(citations),
    )
    session.add(turn)
    if is_caller and sentiment is not None:
        await session.flush()
        mean = (
            await session.execute(
                select(func.avg(CallTurn.sentiment)).where(
                    CallTurn.call_id == call_id, CallTurn.role == "caller", CallTurn.sentiment.is_not(None)
                )
            )
        ).scalar_one()
        call = await session.get(Call, call_id)
        if call is not None and mean is not None:
            call.sentiment = round(float(mean), 4)
            call.sentiment_label = sentiment_analysis.label(float(mean))
    await session.commit()
    return turn


async def add_event(
    session: AsyncSession,
    call_id: str,
    *,
    kind: str,
    turn_seq: int | None = None,
    data: dict[str, Any] | None = None,
    total_ms: float | None = None,
    vad_ms: float | None = None,
    asr_ms: float | None = None,
    retrieval_ms: float | None = None,
    llm_ms: float | None = None,
    tts_ms: float | None = None,
) -> CallEvent:
    """Store one call event (latency, barge-in, tool call, handoff, error, status)."""
    event = CallEvent(
        call_id=call_id,
        kind=kind,
        turn_seq=turn_seq,
        data=data or {},
        total_ms=total_ms,
        vad_ms=vad_ms,
        asr_ms=asr_ms,
        retrieval_ms=retrieval_ms,
        llm_ms=llm_ms,
        tts_ms=tts_ms,
    )
    session.add(event)
    await session.commit()
    return event


async def end_call(
    session: AsyncSession,
    call_id: str,
    *,
    reason: str,
    outcome: str | None = None,
    failed: bool = False,
    latency_p50_ms: float | None = None,
    latency_p95_ms: float | None = None,
) -> Call:
    """Close a call with its end reason and outcome (idempotent)."""
    call = await get_call(session, call_id)
    if call.status in TERMINAL_STATUSES:
        return call
    now = utcnow()
    call.status = "failed" if failed else "ended"
    call.end_reason = reason
    call.outcome = outcome or call.outcome or ("failed" if failed else "resolved")
    call.ended_at = now
    started = call.started_at if call.started_at.tzinfo else call.started_at.replace(tzinfo=now.tzinfo)
    call.duration_ms = int((now - started).total_seconds() * 1000)
    if latency_p50_ms is not None:
        call.latency_p50_ms = latency_p50_ms
    if latency_p95_ms is not None:
        call.latency_p95_ms = latency_p95_ms
    await outbox.emit(session, "call.ended", _call_event(call), call_id=call.id, key=call.id)
    await analysis.enqueue(session, call.id)  # post-call analysis: a durable job, committed with the call's end
    await session.commit()
    return call


async def fail_orphaned_calls(session: AsyncSession, *, node: str, reason: str = "process_restart") -> list[str]:
    """Close, as failed, the calls a voice process (``node``) left open when it stopped without ending them.

    Only calls stamped with this node's id (``metadata.node``) are touched, so replicas sharing one database
    never close each other's live calls. The records, turns and events are kept. Returns the closed call ids.
    """
    result = await session.execute(select(Call.id, Call.meta).where(Call.status.not_in(TERMINAL_STATUSES)))
    orphaned = [call_id for call_id, meta in result.all() if isinstance(meta, dict) and meta.get("node") == node]
    for call_id in orphaned:
        await end_call(session, call_id, reason=reason, outcome="failed", failed=True)
    return orphaned


async def add_recording(
    session: AsyncSession,
    call_id: str,
    *,
    path: str,
    format: str,
    channels: int,
    sample_rate: int,
    duration_ms: int | None,
    size_bytes: int | None,
    sha256: str | None,
) -> Recording:
    """Register a recording file of a call; refused (409) when the caller declined recording."""
    call = await get_call(session, call_id)
    if call.consent_recording is False:
        raise ProblemError(409, "The caller declined recording; it is not kept.", type_="no-consent")
    recording = Recording(
        call_id=call_id,
        path=path,
        format=format,
        channels=channels,
        sample_rate=sample_rate,
        duration_ms=duration_ms,
        size_bytes=size_bytes,
        sha256=sha256,
    )
    session.add(recording)
    await session.commit()
    return recording


# --- reading and annotating calls (the API side) ---


@dataclass(frozen=True, slots=True)
class CallFilter:
    """Filters of the calls listing (all optional, combined with AND)."""

    since: datetime | None = None
    until: datetime | None = None
    status: str | None = None
    channel: str | None = None
    outcome: str | None = None
    agent_user_id: str | None = None
    sentiment: str | None = None
    q: str | None = None
    # Post-call analysis fields (issue 20): ``(name, value)`` pairs the call's analysis must hold.
    fields: tuple[tuple[str, str], ...] | None = None

    def describe(self) -> dict[str, str]:
        """The filters in use, as text (for the audit log)."""
        return {name: str(getattr(self, name)) for name in self.__slots__ if getattr(self, name) is not None}


def _scoped(stmt: Select[Any], user: User) -> Select[Any]:
    """``stmt`` limited to the calls ``user`` may read: the one rule of every call read (list, CSV, page, transcript).

    Supervisors and admins read every call. An agent reads the calls they took, and the calls of the callback
    requests they hold: the ones they claimed and that are still open, and the ones they completed (what their
    callback queue shows them). Releasing a claim, or a supervisor handing it to someone else, takes the call away
    again. Reading is all it gives: annotating stays with the agent who took the call (:func:`annotate`).
    """
    if has_permission(user.role, Permission.CALLS_READ_ALL):
        return stmt
    if has_permission(user.role, Permission.CALLS_READ_OWN):
        callbacks = select(CallbackRequest.call_id).where(
            CallbackRequest.call_id.is_not(None),
            or_(
                and_(CallbackRequest.status == "open", CallbackRequest.claimed_by == user.id),
                and_(CallbackRequest.status == "done", CallbackRequest.completed_by == user.id),
            ),
        )
        return stmt.where(or_(Call.agent_user_id == user.id, Call.id.in_(callbacks)))
    raise ProblemError(403, "Your role does not allow reading calls.", type_="forbidden")


def _filtered(stmt: Select[Any], filters: CallFilter) -> Select[Any]:
    if filters.since is not None:
        stmt = stmt.where(Call.started_at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(Call.started_at < filters.until)
    if filters.status:
        stmt = stmt.where(Call.status == filters.status)
    if filters.channel:
        stmt = stmt.where(Call.channel == filters.channel)
    if filters.outcome:
        # The outcome the call analysis checked (``analytics.classify``), not the one stored at hang-up.
        stmt = stmt.where(analytics.outcome_expr() == filters.outcome)
    if filters.agent_user_id:
        stmt = stmt.where(Call.agent_user_id == filters.agent_user_id)
    if filters.sentiment:
        stmt = stmt.where(Call.sentiment_label == filters.sentiment)
    if filters.q:
        # Bound parameter with LIKE wildcards escaped: the text is data, never SQL or a pattern.
        matching = select(CallTurn.call_id).where(CallTurn.text.icontains(filters.q, autoescape=True))
        stmt = stmt.where(Call.id.in_(matching))
    for name, wanted in filters.fields or ():
        stmt = stmt.where(Call.id.in_(analysis.field_match(name, wanted)))
    return stmt


async def list_calls(
    session: AsyncSession,
    user: User,
    filters: CallFilter,
    *,
    limit: int = 50,
    after: tuple[datetime, str] | None = None,
) -> list[Call]:
    """Calls ``user`` may see, newest first, after the ``(started_at, id)`` keyset position."""
    stmt = _filtered(_scoped(_with_outcome(select(Call)), user), filters)
    if after is not None:
        started, call_id = after
        stmt = stmt.where(or_(Call.started_at < started, and_(Call.started_at == started, Call.id < call_id)))
    stmt = stmt.order_by(Call.started_at.desc(), Call.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def stream_calls(
    session: AsyncSession, user: User, filters: CallFilter, *, max_rows: int
) -> AsyncIterator[tuple[Call, str | None]]:
    """Calls ``user`` may see with their checked outcome, newest first, fetched in batches (CSV export)."""
    stmt = (
        _filtered(_scoped(_with_outcome(select(Call)), user), filters)
        .add_columns(analytics.outcome_expr())
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(max_rows)
        .execution_options(yield_per=500)
    )
    result = await session.stream(stmt)
    async for call, outcome in result:
        yield call, outcome


def _with_outcome(stmt: Select[Any]) -> Select[Any]:
    """``stmt`` joined to each call's checked outcome (``call_outcomes``, one row per ended call at most)."""
    return stmt.outerjoin(CallOutcome, CallOutcome.call_id == Call.id)


async def outcomes(session: AsyncSession, calls: Sequence[Call]) -> dict[str, str | None]:
    """Each call's outcome by the one rule (``analytics.classify``); ``None`` while a call is live.

    What every page shows as a call's outcome (the list, the call page, the analytics): the checked outcome of
    ``call_outcomes``, written by the post-call analysis; an ended call still without one gets it here.
    """
    ids = [c.id for c in calls]
    if not ids:
        return {}
    ended = [c.id for c in calls if c.status in TERMINAL_STATUSES]
    if ended:
        await analytics.refresh_outcomes(session, Call.id.in_(ended))
    rows = await session.execute(select(CallOutcome.call_id, CallOutcome.outcome).where(CallOutcome.call_id.in_(ids)))
    checked = {call_id: outcome for call_id, outcome in rows}
    return {c.id: checked.get(c.id, analytics.stored_outcome(c.outcome, c.status)) for c in calls}


async def get_call_for(session: AsyncSession, user: User, call_id: str) -> Call:
    """The call if ``user`` may see it; 404 otherwise (another agent's call is not revealed to exist)."""
    stmt = _scoped(select(Call).where(Call.id == call_id), user)
    call: Call | None = (await session.execute(stmt)).scalar_one_or_none()
    if call is None:
        raise ProblemError(404, "No call with this id.", type_="not-found")
    return call


async def annotate(
    session: AsyncSession,
    user: User,
    call_id: str,
    *,
    changes: dict[str, Any],
) -> tuple[Call, list[str]]:
    """Set notes, disposition and/or tags of a call ``user`` may annotate. Returns the changed fields. Commits."""
    call = await get_call_for(session, user, call_id)
    if not has_permission(user.role, Permission.CALLS_WRITE) and not (
        has_permission(user.role, Permission.CALLS_ANNOTATE_OWN) and call.agent_user_id == user.id
    ):
        raise ProblemError(403, "Your role does not allow editing this call.", type_="forbidden")
    changed: list[str] = []
    for name in ("notes", "disposition", "tags"):
        if name in changes and getattr(call, name) != changes[name]:
            setattr(call, name, changes[name])
            changed.append(name)
    await session.commit()
    return call, changed


async def transcript(session: AsyncSession, call_id: str) -> tuple[list[CallTurn], list[CallEvent]]:
    """The turns of a call in order, and its latency events."""
    turns = (
        await session.execute(select(CallTurn).where(CallTurn.call_id == call_id).order_by(CallTurn.seq))
    ).scalars()
    events = (
        await session.execute(
            select(CallEvent)
            .where(CallEvent.call_id == call_id, CallEvent.kind == "latency")
            .order_by(CallEvent.turn_seq, CallEvent.id)
        )
    ).scalars()
    return list(turns), list(events)


async def current_recording(session: AsyncSession, call_id: str) -> Recording | None:
    """The newest recording of a call that has not been purged or erased."""
    stmt = (
        select(Recording)
        .where(Recording.call_id == call_id, Recording.deleted_at.is_(None))
        .order_by(Recording.created_at.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def has_recordings(session: AsyncSession, call_ids: Sequence[str]) -> set[str]:
    """Which of ``call_ids`` have a live recording."""
    if not call_ids:
        return set()
    stmt = select(Recording.call_id).where(Recording.call_id.in_(call_ids), Recording.deleted_at.is_(None)).distinct()
    return set((await session.execute(stmt)).scalars())
