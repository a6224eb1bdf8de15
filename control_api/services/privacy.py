"""Personal data (DPDP Act 2023 and GDPR shaped): consent records and data-subject requests.

A data subject is found by phone number (compared on digits and a leading ``+``, ignoring spaces, dashes, dots
and brackets) or by e-mail (case-insensitive). Requests are recorded first (``received``), then executed
(``completed``) or rejected; each step is audited by the caller of these functions.

- export: every call of the subject with its transcript, recording links and consents, as JSON.
- correction: replaces the subject's name, number or e-mail on their calls and consents.
- erasure: removes transcripts and recording files, blanks the subject's identifiers, notes and the payloads
  derived from the calls (tool arguments, handoff summaries, integration payloads, knowledge questions); the
  call rows stay, anonymised, so counts and the audit trail stay whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import (
    Call,
    CallEvent,
    CallTurn,
    Consent,
    DataSubjectRequest,
    Handoff,
    IntegrationRun,
    OutboxDelivery,
    RagQuery,
    Recording,
    utcnow,
)
from control_api.problems import ProblemError
from control_api.services.calls import get_call

log = structlog.get_logger(__name__)
ERASED = "[erased]"
# The status of a delivery cancelled by an erasure request (the dispatcher never claims it, nothing retries it).
ERASED_DELIVERY = "erased"
REQUEST_KINDS = ("export", "correction", "erasure")
CORRECTABLE = ("caller_name", "caller_number", "caller_email")


def normalise_phone(value: str) -> str:
    """A phone number reduced to a leading ``+`` (if any) and its digits."""
    value = value.strip()
    digits = re.sub(r"\D", "", value)
    return ("+" if value.startswith("+") else "") + digits


def _phone_sql(column: Any) -> ColumnElement[str]:
    expr = column
    for ch in (" ", "-", "(", ")", "."):
        expr = func.replace(expr, ch, "")
    return expr  # type: ignore[no-any-return]  # func.replace is typed loosely


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a request is about: a phone number, an e-mail, or both."""

    phone: str | None = None
    email: str | None = None

    def __post_init__(self) -> None:
        if not self.phone and not self.email:
            raise ProblemError(422, "Give the subject's phone number or e-mail.", type_="validation-error")

    def calls_clause(self) -> ColumnElement[bool]:
        """Matches the subject's calls."""
        parts: list[ColumnElement[bool]] = []
        if self.phone:
            parts.append(_phone_sql(Call.caller_number) == normalise_phone(self.phone))
        if self.email:
            parts.append(func.lower(Call.caller_email) == self.email.strip().lower())
        return or_(*parts)

    def consents_clause(self, call_ids: list[str]) -> ColumnElement[bool]:
        """Matches the subject's consent records (by identifier or by one of their calls)."""
        parts: list[ColumnElement[bool]] = []
        if self.phone:
            parts.append(_phone_sql(Consent.subject_phone) == normalise_phone(self.phone))
        if self.email:
            parts.append(func.lower(Consent.subject_email) == self.email.strip().lower())
        if call_ids:
            parts.append(Consent.call_id.in_(call_ids))
        return or_(*parts)


# --- consent ---


async def record_consent(
    session: AsyncSession,
    *,
    notice_text: str,
    recording: bool,
    call_id: str | None = None,
    subject_phone: str | None = None,
    subject_email: str | None = None,
) -> Consent:
    """Store what the caller was told and whether they agreed to recording. Commits.

    With ``call_id``, the call's ``consent_recording`` is set too (``add_recording`` refuses a recording of a
    call whose caller declined). The voice side calls this right after the greeting's notice.
    """
    if call_id is not None:
        call = await get_call(session, call_id)
        call.consent_recording = recording
        subject_phone = subject_phone or call.caller_number
        subject_email = subject_email or call.caller_email
    consent = Consent(
        call_id=call_id,
        subject_phone=subject_phone,
        subject_email=subject_email,
        notice_text=notice_text,
        recording=recording,
    )
    session.add(consent)
    await session.commit()
    return consent


async def list_consents(
    session: AsyncSession, *, phone: str | None, email: str | None, call_id: str | None, limit: int = 100
) -> list[Consent]:
    """Consent records, newest first, of a subject or a call (all when no filter is given)."""
    stmt = select(Consent).order_by(Consent.given_at.desc(), Consent.id).limit(limit)
    if phone:
        stmt = stmt.where(_phone_sql(Consent.subject_phone) == normalise_phone(phone))
    if email:
        stmt = stmt.where(func.lower(Consent.subject_email) == email.strip().lower())
    if call_id:
        stmt = stmt.where(Consent.call_id == call_id)
    return list((await session.execute(stmt)).scalars())


# --- data-subject requests ---


async def create_request(
    session: AsyncSession,
    *,
    kind: str,
    subject: Subject,
    details: dict[str, Any],
    requested_by: str | None,
) -> DataSubjectRequest:
    """Record a request (status ``received``). Commits."""
    if kind not in REQUEST_KINDS:
        raise ProblemError(422, f"kind must be one of {', '.join(REQUEST_KINDS)}.", type_="validation-error")
    if kind == "correction":
        unknown = set(details) - set(CORRECTABLE)
        if unknown or not details:
            raise ProblemError(
                422, f"A correction sets one or more of {', '.join(CORRECTABLE)}.", type_="validation-error"
            )
    request = DataSubjectRequest(
        kind=kind,
        subject_phone=subject.phone,
        subject_email=subject.email.strip().lower() if subject.email else None,
        details=details,
        requested_by=requested_by,
    )
    session.add(request)
    await session.commit()
    return request


async def get_request(session: AsyncSession, request_id: str) -> DataSubjectRequest:
    """One request; 404 when absent."""
    request = await session.get(DataSubjectRequest, request_id)
    if request is None:
        raise ProblemError(404, "No data-subject request with this id.", type_="not-found")
    return request


async def list_requests(
    session: AsyncSession, *, status: str | None = None, limit: int = 100, offset: int = 0
) -> list[DataSubjectRequest]:
    """Requests, newest first."""
    stmt = select(DataSubjectRequest).order_by(DataSubjectRequest.created_at.desc(), DataSubjectRequest.id)
    if status:
        stmt = stmt.where(DataSubjectRequest.status == status)
    return list((await session.execute(stmt.limit(limit).offset(offset))).scalars())


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


async def _subject_calls(session: AsyncSession, subject: Subject) -> list[Call]:
    stmt = select(Call).where(subject.calls_clause()).order_by(Call.started_at)
    return list((await session.execute(stmt)).scalars())


async def export_subject(session: AsyncSession, subject: Subject) -> dict[str, Any]:
    """Every call of the subject with transcript, recording links and consents (JSON-ready)."""
    calls = await _subject_calls(session, subject)
    ids = [c.id for c in calls]
    turns: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    recordings: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        for t in (
            await session.execute(
                select(CallTurn).where(CallTurn.call_id.in_(ids)).order_by(CallTurn.call_id, CallTurn.seq)
            )
        ).scalars():
            turns[t.call_id].append(
                {"seq": t.seq, "role": t.role, "text": t.text, "ended_at": _iso(t.ended_at), "sentiment": t.sentiment}
            )
        for r in (
            await session.execute(select(Recording).where(Recording.call_id.in_(ids), Recording.deleted_at.is_(None)))
        ).scalars():
            recordings[r.call_id].append(
                {
                    "id": r.id,
                    "url": f"/api/calls/{r.call_id}/recording",
                    "format": r.format,
                    "duration_ms": r.duration_ms,
                }
            )
    consents = (await session.execute(select(Consent).where(subject.consents_clause(ids)))).scalars()
    return {
        "subject": {"phone": subject.phone, "email": subject.email},
        "generated_at": utcnow().isoformat(),
        "calls": [
            {
                "id": c.id,
                "channel": c.channel,
                "started_at": _iso(c.started_at),
                "ended_at": _iso(c.ended_at),
                "status": c.status,
                "outcome": c.outcome,
                "caller_name": c.caller_name,
                "caller_number": c.caller_number,
                "caller_email": c.caller_email,
                "consent_recording": c.consent_recording,
                "disposition": c.disposition,
                "notes": c.notes,
                "tags": c.tags,
                "sentiment": c.sentiment,
                "transcript": turns[c.id],
                "recordings": recordings[c.id],
            }
            for c in calls
        ],
        "consents": [
            {
                "id": k.id,
                "call_id": k.call_id,
                "notice_text": k.notice_text,
                "recording": k.recording,
                "given_at": _iso(k.given_at),
                "withdrawn_at": _iso(k.withdrawn_at),
            }
            for k in consents
        ],
    }


async def correct_subject(session: AsyncSession, subject: Subject, changes: dict[str, str]) -> dict[str, Any]:
    """Apply corrections to the subject's calls and consents. Does not commit."""
    calls = await _subject_calls(session, subject)
    ids = [c.id for c in calls]
    for call in calls:
        for field, value in changes.items():
            setattr(call, field, value)
    consent_values: dict[str, Any] = {}
    if "caller_number" in changes:
        consent_values["subject_phone"] = changes["caller_number"]
    if "caller_email" in changes:
        consent_values["subject_email"] = changes["caller_email"]
    consents = 0
    if consent_values:
        result = await session.execute(update(Consent).where(subject.consents_clause(ids)).values(**consent_values))
        consents = int(getattr(result, "rowcount", 0) or 0)
    return {"calls_corrected": len(calls), "consents_corrected": consents, "fields": sorted(changes)}


def _delete_file(recordings_dir: Path, stored: str) -> bool:
    path = Path(stored)
    if not path.is_absolute():
        path = recordings_dir / path
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


async def erase_recordings(session: AsyncSession, recordings: list[Recording], recordings_dir: Path) -> int:
    """Delete recording files and mark their rows deleted. Returns the number of files removed."""
    removed = 0
    now = utcnow()
    for recording in recordings:
        if _delete_file(recordings_dir, recording.path):
            removed += 1
        recording.deleted_at = now
        recording.path = ERASED
        recording.sha256 = None
    return removed


async def erase_subject(session: AsyncSession, subject: Subject, *, recordings_dir: Path) -> dict[str, Any]:
    """Remove the subject's transcripts and recordings and anonymise their calls. Does not commit."""
    calls = await _subject_calls(session, subject)
    ids = [c.id for c in calls]
    summary: dict[str, Any] = {"calls_anonymised": len(calls), "turns_deleted": 0, "recordings_deleted": 0}
    if ids:
        turns = await session.execute(delete(CallTurn).where(CallTurn.call_id.in_(ids)))
        summary["turns_deleted"] = int(getattr(turns, "rowcount", 0) or 0)
        recordings = list((await session.execute(select(Recording).where(Recording.call_id.in_(ids)))).scalars())
        summary["recordings_deleted"] = await erase_recordings(session, recordings, recordings_dir)
        await session.execute(update(CallEvent).where(CallEvent.call_id.in_(ids)).values(data={}))
        await session.execute(update(Handoff).where(Handoff.call_id.in_(ids)).values(summary=None, reason=None))
        await session.execute(
            update(IntegrationRun).where(IntegrationRun.call_id.in_(ids)).values(request={}, response={})
        )
        await session.execute(update(RagQuery).where(RagQuery.call_id.in_(ids)).values(question=ERASED))
        # Deliveries owed to integrations carry the caller's details (a ticket's requester): delivered ones keep
        # only their status; those not yet sent are not sent at all.
        outbox = await session.execute(
            update(OutboxDelivery)
            .where(OutboxDelivery.call_id.in_(ids), OutboxDelivery.status.in_(("pending", "in_flight", "dead")))
            .values(payload={}, status=ERASED_DELIVERY, last_error="erased at the caller's request")
        )
        summary["deliveries_cancelled"] = int(getattr(outbox, "rowcount", 0) or 0)
        await session.execute(update(OutboxDelivery).where(OutboxDelivery.call_id.in_(ids)).values(payload={}))
    now = utcnow()
    for call in calls:
        call.caller_name = None
        call.caller_number = None
        call.caller_email = None
        call.notes = None
        call.meta = {}
        call.anonymised_at = now
    consents = await session.execute(
        update(Consent).where(subject.consents_clause(ids)).values(subject_phone=None, subject_email=None)
    )
    summary["consents_anonymised"] = int(getattr(consents, "rowcount", 0) or 0)
    return summary


async def execute_request(session: AsyncSession, request_id: str, *, recordings_dir: Path) -> DataSubjectRequest:
    """Carry out a received request and store its result (``completed``). Commits."""
    request = await get_request(session, request_id)
    if request.status != "received":
        raise ProblemError(409, f"The request is already {request.status}.", type_="request-closed")
    subject = Subject(phone=request.subject_phone, email=request.subject_email)
    if request.kind == "export":
        result = await export_subject(session, subject)
    elif request.kind == "correction":
        result = await correct_subject(session, subject, {k: str(v) for k, v in request.details.items()})
    else:
        result = await erase_subject(session, subject, recordings_dir=recordings_dir)
    request.result = result
    request.status = "completed"
    request.completed_at = utcnow()
    await session.commit()
    log.info("data_subject_request_completed", request_id=request.id, kind=request.kind)
    return request


async def reject_request(session: AsyncSession, request_id: str, *, reason: str) -> DataSubjectRequest:
    """Close a received request without acting on it. Commits."""
    request = await get_request(session, request_id)
    if request.status != "received":
        raise ProblemError(409, f"The request is already {request.status}.", type_="request-closed")
    request.status = "rejected"
    request.result = {"reason": reason}
    request.completed_at = utcnow()
    await session.commit()
    return request
