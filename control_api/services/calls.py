"""Calls: the write path used by the voice side (through the agent's ``CallSink``) and by the API.

Every function commits, so a record survives a crash the moment the function returns: a call exists
from its first packet, and each transcript turn is stored as soon as it ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import Call, CallEvent, CallTurn, Recording, utcnow
from control_api.problems import ProblemError
from control_api.services import redaction
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
) -> Call:
    """Register a new call."""
    call = Call(
        channel=channel,
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
    await session.commit()
    return call


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
            (pass ``settings.retention.redact_pii``).
        score_sentiment: Score caller turns and keep the call's mean sentiment up to date.

    """
    is_caller = role == "caller"
    if sentiment is None and score_sentiment and is_caller:
        # Scored on the utterance in memory; only the redacted text reaches the database.
        sentiment = sentiment_analysis.score(text)
    stored = redaction.redact(text).text if redact else text
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
    await session.commit()
    return call


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
    """Register a recording file of a call."""
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
