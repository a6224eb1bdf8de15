"""The handoff queue, agents' presence, callback requests and the desk's live feed (issue 19).

Every state change of a handoff is one transaction here: the row (status, timeline), the call event, and the
``handoff.*`` outbox event (``control_api.integrations.outbox.emit``) commit together. The call's audio lives in
the voice process (``agent``), which this package never imports: the voice side registers a :class:`LiveHandoffs`
controller at start-up (:func:`register_live`), and the routes tell it what a person did (accept, decline,
complete, join the audio). The desk's live feed is :data:`BROKER`, an in-process publish/subscribe: the desk,
the API and the call must be served by the same process (see docs/handoff.md for the multi-process plan).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import (
    AgentPresence,
    Call,
    CallbackRequest,
    CallEvent,
    CallTurn,
    Consent,
    Handoff,
    HandoffPolicy,
    User,
    utcnow,
)
from control_api.integrations import outbox
from control_api.problems import ProblemError
from control_api.rbac import Permission, has_permission
from control_api.schemas.handoffs import HandoffPolicyModel
from control_api.services import calls as call_service
from control_api.services.analytics import request_turns
from control_api.services.summary import summarize

log = structlog.get_logger(__name__)

# Statuses a handoff can still change from; the others are final.
OPEN = ("queued", "accepted")
FINAL_AI_BACK = ("timed_out", "declined", "no_agents")


class LiveHandoffs(Protocol):
    """What the voice process does when a person acts on a handoff (registered with :func:`register_live`)."""

    async def accepted(self, handoff_id: str, user_id: str) -> None:
        """A person took the handoff: the call waits for their audio."""
        ...

    async def all_declined(self, handoff_id: str) -> None:
        """Every agent offered the handoff declined it: the AI takes the call back."""
        ...

    async def join(self, handoff_id: str, user_id: str, sdp: str) -> str:
        """Bridge the person's browser audio (an SDP offer) into the call; returns the SDP answer."""
        ...

    async def completed(self, handoff_id: str) -> None:
        """The person wrapped up: their audio leaves the call."""
        ...


_live: LiveHandoffs | None = None


def register_live(controller: LiveHandoffs | None) -> None:
    """Install (or remove, with ``None``) the voice process's live-handoff controller."""
    global _live  # one controller per process, set at start-up
    _live = controller


def live() -> LiveHandoffs | None:
    """The registered live-handoff controller (``None``: no voice runs in this process)."""
    return _live


class DeskBroker:
    """In-process publish/subscribe of desk events (handoff changes, presence, live transcript lines)."""

    def __init__(self, *, max_queue: int = 500) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._max_queue = max_queue

    def publish(self, event: dict[str, Any]) -> None:
        """Hand ``event`` to every subscriber (a subscriber that fell far behind loses it)."""
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """A queue receiving every event published while the context is open."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=self._max_queue)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        """How many desks listen now."""
        return len(self._subscribers)


BROKER = DeskBroker()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def wait_s(handoff: Handoff, *, now: datetime | None = None) -> float:
    """Seconds the handoff was (or is) queued."""
    end = handoff.accepted_at or handoff.ended_at or now or utcnow()
    start = handoff.requested_at
    if start.tzinfo is None or end.tzinfo is None:
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    return round(max(0.0, (end - start).total_seconds()), 3)


def _step(handoff: Handoff, status: str, **data: Any) -> None:
    handoff.timeline = [*handoff.timeline, {"status": status, "at": utcnow().isoformat(), **data}]


def handoff_event(handoff: Handoff) -> dict[str, Any]:
    """What the desk's live feed says of a handoff change."""
    return {
        "type": "handoff",
        "id": handoff.id,
        "call_id": handoff.call_id,
        "status": handoff.status,
        "queue": handoff.queue,
        "priority": handoff.priority,
        "reason": handoff.reason,
        "offered_to": list(handoff.offered_to),
        "agent_user_id": handoff.agent_user_id,
        "requested_at": _iso(handoff.requested_at),
        "wait_s": wait_s(handoff),
    }


def _payload(handoff: Handoff) -> dict[str, Any]:
    """The ``handoff.*`` outbox payload (no transcript: integrations get the summary and the reason)."""
    return {
        "handoff_id": handoff.id,
        "call_id": handoff.call_id,
        "status": handoff.status,
        "queue": handoff.queue,
        "priority": handoff.priority,
        "reason": handoff.reason,
        "summary": handoff.summary,
        "agent_user_id": handoff.agent_user_id,
        "wait_s": wait_s(handoff),
    }


# --- policy ---


async def get_policy(session: AsyncSession, persona_name: str) -> HandoffPolicyModel:
    """The persona's handoff policy (the defaults when none is stored)."""
    row = await session.get(HandoffPolicy, persona_name)
    return HandoffPolicyModel.model_validate(row.policy) if row is not None else HandoffPolicyModel()


async def put_policy(session: AsyncSession, persona_name: str, policy: HandoffPolicyModel) -> HandoffPolicyModel:
    """Store the persona's handoff policy. Commits."""
    row = await session.get(HandoffPolicy, persona_name)
    if row is None:
        session.add(HandoffPolicy(persona_name=persona_name, policy=policy.model_dump()))
    else:
        row.policy = policy.model_dump()
    await session.commit()
    return policy


# --- presence ---


async def set_presence(session: AsyncSession, user_id: str, status: str) -> AgentPresence:
    """Set an agent's presence. Commits; the desks hear of it."""
    row = await session.get(AgentPresence, user_id)
    if row is None:
        row = AgentPresence(user_id=user_id, status=status)
        session.add(row)
    row.status = status
    row.updated_at = utcnow()
    await session.commit()
    BROKER.publish({"type": "presence", "user_id": user_id, "status": status})
    return row


async def presence_list(session: AsyncSession) -> list[tuple[AgentPresence, User]]:
    """Every agent with a presence, with their account."""
    rows = await session.execute(
        select(AgentPresence, User).join(User, User.id == AgentPresence.user_id).order_by(User.email)
    )
    return [(p, u) for p, u in rows.all()]


async def available_agents(session: AsyncSession) -> list[str]:
    """Ids of active accounts that take handoffs and are ``available`` now."""
    rows = await session.execute(
        select(User.id, User.role)
        .join(AgentPresence, AgentPresence.user_id == User.id)
        .where(AgentPresence.status == "available", User.is_active.is_(True))
    )
    return [uid for uid, role in rows.all() if has_permission(role, Permission.HANDOFFS_TAKE)]


# --- briefing ---


async def build_briefing(
    session: AsyncSession, call_id: str, *, reason: str, sentiment: float | None = None, source: str | None = None
) -> dict[str, Any]:
    """The human agent's briefing: summary, transcript, caller and consent, passages used, sentiment, reason.

    ``source``: the trigger of the handoff being requested; for ``phrase`` the caller's last turn asked for a
    person and is not listed as an unanswered question.
    """
    call = await call_service.get_call(session, call_id)
    turns = list(
        (await session.execute(select(CallTurn).where(CallTurn.call_id == call_id).order_by(CallTurn.seq)))
        .scalars()
        .all()
    )
    asking = call_id if source == "phrase" else None
    requests = (await request_turns(session, [call_id], asking=asking)).get(call_id, set())
    summary = summarize(turns, requests=requests)
    consent = (
        (await session.execute(select(Consent).where(Consent.call_id == call_id).order_by(Consent.given_at)))
        .scalars()
        .first()
    )
    events = (
        await session.execute(
            select(CallEvent)
            .where(CallEvent.call_id == call_id, CallEvent.kind == "tool_result")
            .order_by(CallEvent.id)
        )
    ).scalars()
    passages: list[str] = []
    for event in events:
        for citation in (event.data or {}).get("citations") or []:
            if isinstance(citation, str) and citation not in passages:
                passages.append(citation)
    return {
        "summary": summary.text,
        "unanswered": summary.unanswered,
        "transcript": [{"seq": t.seq, "role": t.role, "text": t.text} for t in turns],
        "caller": {
            "name": call.caller_name,
            "number": call.caller_number,
            "email": call.caller_email,
            "channel": call.channel,
        },
        "consent": None
        if consent is None
        else {"notice": consent.notice_text, "recording": consent.recording, "given_at": _iso(consent.given_at)},
        "passages": passages,
        "sentiment": sentiment,
        "reason": reason,
    }


# --- the queue ---


async def queue_handoff(
    session: AsyncSession,
    *,
    call_id: str,
    reason: str,
    source: str,
    briefing: dict[str, Any],
    queue: str = "default",
    priority: int = 0,
    node: str | None = None,
    before: Sequence[tuple[str, dict[str, Any]]] = (),
) -> Handoff:
    """Queue a handoff offered to every available agent (``no_agents`` at once when nobody is). Commits.

    Emits ``handoff.requested`` in the same transaction. ``before``: timeline steps that came first (a cold
    transfer the caller's line could not make, one that failed).
    """
    offered = await available_agents(session)
    handoff = Handoff(
        call_id=call_id,
        status="queued" if offered else "no_agents",
        reason=reason,
        summary=str(briefing.get("summary") or ""),
        queue=queue,
        priority=priority,
        source=source,
        briefing=briefing,
        offered_to=offered,
        declined_by=[],
        timeline=[],
        node=node,
    )
    session.add(handoff)
    await session.flush()
    for status, data in before:
        _step(handoff, status, **data)
    _step(handoff, "queued", reason=reason, source=source)
    if offered:
        _step(handoff, "offered", to=offered)
    else:
        _step(handoff, "no_agents")
        handoff.ended_at = utcnow()
    await outbox.emit(session, "handoff.requested", _payload(handoff), call_id=call_id, key=f"{handoff.id}:requested")
    session.add(CallEvent(call_id=call_id, kind="handoff", data={"handoff_id": handoff.id, "status": handoff.status}))
    await session.commit()
    BROKER.publish(handoff_event(handoff))
    log.info("handoff_queued", call_id=call_id, handoff_id=handoff.id, offered=len(offered), source=source)
    return handoff


async def start_transfer(
    session: AsyncSession,
    *,
    call_id: str,
    reason: str,
    source: str,
    briefing: dict[str, Any],
    target: str,
    node: str | None = None,
) -> Handoff:
    """A cold transfer of the call to ``target`` (the persona's ``cold_transfer_to``) is under way. Commits.

    The handoff is ``transferring`` (offered to nobody) until :func:`end_transfer`; ``handoff.requested`` is emitted
    in the same transaction, as for a queued handoff.
    """
    handoff = Handoff(
        call_id=call_id,
        status="transferring",
        reason=reason,
        summary=str(briefing.get("summary") or ""),
        queue="cold_transfer",
        priority=0,
        source=source,
        briefing=briefing,
        offered_to=[],
        declined_by=[],
        timeline=[],
        node=node,
    )
    session.add(handoff)
    await session.flush()
    _step(handoff, "cold_transfer", to=target, reason=reason, source=source)
    await outbox.emit(session, "handoff.requested", _payload(handoff), call_id=call_id, key=f"{handoff.id}:requested")
    session.add(CallEvent(call_id=call_id, kind="handoff", data={"handoff_id": handoff.id, "status": handoff.status}))
    await session.commit()
    BROKER.publish(handoff_event(handoff))
    log.info("handoff_cold_transfer", call_id=call_id, handoff_id=handoff.id, source=source)
    return handoff


async def end_transfer(session: AsyncSession, handoff_id: str, status: str, **data: Any) -> Handoff | None:
    """End a ``transferring`` handoff as ``transferred`` or ``failed`` (timeline step, call event). Commits.

    Returns ``None`` when it had already ended.
    """
    done = await session.execute(
        update(Handoff)
        .where(Handoff.id == handoff_id, Handoff.status == "transferring")
        .values(status=status, ended_at=utcnow())
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE has rowcount
        await session.rollback()
        return None
    handoff = await get_handoff(session, handoff_id)
    await session.refresh(handoff)
    _step(handoff, status, **data)
    session.add(CallEvent(call_id=handoff.call_id, kind="handoff", data={"handoff_id": handoff.id, "status": status}))
    await session.commit()
    BROKER.publish(handoff_event(handoff))
    return handoff


async def get_handoff(session: AsyncSession, handoff_id: str) -> Handoff:
    """The handoff; 404 problem when absent."""
    handoff = await session.get(Handoff, handoff_id)
    if handoff is None:
        raise ProblemError(404, "No handoff with this id.", type_="not-found")
    return handoff


def may_see(handoff: Handoff, user: User) -> bool:
    """Supervisors see every handoff; an agent those offered to them or taken by them."""
    if has_permission(user.role, Permission.HANDOFFS_MANAGE):
        return True
    return user.id in handoff.offered_to or handoff.agent_user_id == user.id


async def get_for(session: AsyncSession, handoff_id: str, user: User) -> Handoff:
    """The handoff if ``user`` may see it; 404 otherwise (another agent's handoff is not revealed)."""
    handoff = await session.get(Handoff, handoff_id)
    if handoff is None or not may_see(handoff, user):
        raise ProblemError(404, "No handoff with this id.", type_="not-found")
    return handoff


async def list_for(
    session: AsyncSession,
    user: User,
    *,
    status: str | None = None,
    queue: str | None = None,
    call_id: str | None = None,
    limit: int = 100,
) -> list[Handoff]:
    """The queue as ``user`` may see it, highest priority then oldest first."""
    stmt = select(Handoff)
    if status is not None:
        stmt = stmt.where(Handoff.status == status)
    if queue is not None:
        stmt = stmt.where(Handoff.queue == queue)
    if call_id is not None:
        stmt = stmt.where(Handoff.call_id == call_id)
    stmt = stmt.order_by(Handoff.priority.desc(), Handoff.requested_at.desc()).limit(
        limit if has_permission(user.role, Permission.HANDOFFS_MANAGE) else 1000
    )
    rows = list((await session.execute(stmt)).scalars().all())
    return [h for h in rows if may_see(h, user)][:limit]


async def accept(session: AsyncSession, handoff_id: str, user: User) -> Handoff:
    """``user`` takes the handoff: 409 when it is no longer queued, 404 when it was not offered to them. Commits.

    The first accept wins (a conditional update); the call becomes the agent's call (``calls.agent_user_id``), the
    agent becomes ``busy``, and ``handoff.accepted`` is emitted in the same transaction.
    """
    handoff = await get_for(session, handoff_id, user)
    if user.id not in handoff.offered_to and not has_permission(user.role, Permission.HANDOFFS_MANAGE):
        raise ProblemError(404, "No handoff with this id.", type_="not-found")
    now = utcnow()
    won = await session.execute(
        update(Handoff)
        .where(Handoff.id == handoff_id, Handoff.status == "queued")
        .values(status="accepted", agent_user_id=user.id, accepted_at=now)
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE has rowcount
        await session.rollback()
        raise ProblemError(409, "This handoff is no longer waiting.", type_="handoff-not-waiting")
    await session.refresh(handoff)
    _step(handoff, "accepted", by=user.id)
    call = await session.get(Call, handoff.call_id)
    if call is not None:
        call.agent_user_id = user.id
    presence = await session.get(AgentPresence, user.id)
    if presence is None:
        session.add(AgentPresence(user_id=user.id, status="busy"))
    else:
        presence.status, presence.updated_at = "busy", now
    await outbox.emit(
        session, "handoff.accepted", _payload(handoff), call_id=handoff.call_id, key=f"{handoff.id}:accepted"
    )
    session.add(
        CallEvent(call_id=handoff.call_id, kind="handoff", data={"handoff_id": handoff.id, "status": "accepted"})
    )
    await session.commit()
    BROKER.publish(handoff_event(handoff))
    BROKER.publish({"type": "presence", "user_id": user.id, "status": "busy"})
    return handoff


async def decline(session: AsyncSession, handoff_id: str, user: User) -> tuple[Handoff, bool]:
    """``user`` declines the handoff offered to them. Commits. Returns it and whether everyone offered declined."""
    handoff = await get_for(session, handoff_id, user)
    if user.id not in handoff.offered_to:
        raise ProblemError(404, "No handoff with this id.", type_="not-found")
    if handoff.status != "queued":
        raise ProblemError(409, "This handoff is no longer waiting.", type_="handoff-not-waiting")
    if user.id not in handoff.declined_by:
        handoff.declined_by = [*handoff.declined_by, user.id]
        _step(handoff, "declined_by", by=user.id)
    everyone = set(handoff.offered_to) <= set(handoff.declined_by)
    await session.commit()
    BROKER.publish(handoff_event(handoff))
    return handoff, everyone


async def offer_to(session: AsyncSession, user_id: str) -> list[Handoff]:
    """Offer every queued handoff to an agent who just became available. Commits."""
    rows = list((await session.execute(select(Handoff).where(Handoff.status == "queued"))).scalars().all())
    changed = []
    for handoff in rows:
        if user_id not in handoff.offered_to:
            handoff.offered_to = [*handoff.offered_to, user_id]
            _step(handoff, "offered", to=[user_id])
            changed.append(handoff)
    await session.commit()
    for handoff in changed:
        BROKER.publish(handoff_event(handoff))
    return changed


async def end_unaccepted(session: AsyncSession, handoff_id: str, status: str) -> Handoff | None:
    """End a still-queued handoff as ``timed_out``, ``declined``, ``no_agents`` or ``abandoned``. Commits.

    Returns ``None`` when it was no longer queued (someone accepted it meanwhile).
    """
    now = utcnow()
    done = await session.execute(
        update(Handoff).where(Handoff.id == handoff_id, Handoff.status == "queued").values(status=status, ended_at=now)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE has rowcount
        await session.rollback()
        return None
    handoff = await get_handoff(session, handoff_id)
    await session.refresh(handoff)
    _step(handoff, status)
    session.add(CallEvent(call_id=handoff.call_id, kind="handoff", data={"handoff_id": handoff.id, "status": status}))
    await session.commit()
    BROKER.publish(handoff_event(handoff))
    return handoff


async def mark_waiting(session: AsyncSession, handoff_id: str) -> bool:
    """A queued handoff has waited past the alert threshold: ``handoff.waiting`` (same transaction). Commits."""
    handoff = await get_handoff(session, handoff_id)
    if handoff.status != "queued":
        return False
    _step(handoff, "waiting", wait_s=wait_s(handoff))
    await outbox.emit(
        session, "handoff.waiting", _payload(handoff), call_id=handoff.call_id, key=f"{handoff.id}:waiting"
    )
    await session.commit()
    BROKER.publish(handoff_event(handoff))
    return True


async def note(session: AsyncSession, handoff_id: str, status: str, **data: Any) -> None:
    """Add a step to the handoff's timeline (``ai_returned``, ``audio_connected``, ``caller_left`` ...). Commits."""
    handoff = await get_handoff(session, handoff_id)
    _step(handoff, status, **data)
    await session.commit()


async def complete(session: AsyncSession, handoff_id: str, user: User, *, notes: str, disposition: str) -> Handoff:
    """The person who took the handoff wraps up: notes and disposition on the handoff and the call. Commits."""
    handoff = await get_for(session, handoff_id, user)
    if handoff.agent_user_id != user.id and not has_permission(user.role, Permission.HANDOFFS_MANAGE):
        raise ProblemError(404, "No handoff with this id.", type_="not-found")
    if handoff.status != "accepted":
        raise ProblemError(409, "Only an accepted handoff can be completed.", type_="handoff-not-accepted")
    handoff.status = "completed"
    handoff.ended_at = utcnow()
    handoff.notes = notes
    handoff.disposition = disposition
    _step(handoff, "completed", by=user.id, disposition=disposition)
    call = await session.get(Call, handoff.call_id)
    if call is not None:
        call.notes = notes
        call.disposition = disposition
        call.outcome = "handed_off"
    if handoff.agent_user_id is not None:
        presence = await session.get(AgentPresence, handoff.agent_user_id)
        if presence is not None and presence.status == "busy":
            presence.status, presence.updated_at = "available", utcnow()
    session.add(
        CallEvent(call_id=handoff.call_id, kind="handoff", data={"handoff_id": handoff.id, "status": "completed"})
    )
    await session.commit()
    BROKER.publish(handoff_event(handoff))
    if handoff.agent_user_id is not None:
        BROKER.publish({"type": "presence", "user_id": handoff.agent_user_id, "status": "available"})
    return handoff


async def record_callback(session: AsyncSession, handoff: Handoff, *, reason: str) -> CallbackRequest:
    """A callback request for a handoff nobody took, with the caller's number and the briefing. Commits.

    With a ticketing integration a ``ticket.create`` delivery is queued in the same transaction (as the
    ``create_ticket`` tool does).
    """
    call = await session.get(Call, handoff.call_id)
    phone = call.caller_number if call is not None else None
    request = CallbackRequest(
        call_id=handoff.call_id,
        handoff_id=handoff.id,
        phone=phone,
        reason=reason,
        briefing=handoff.briefing,
        status="open",
    )
    session.add(request)
    await session.flush()
    deliveries = await outbox.emit(
        session,
        "ticket.create",
        {
            "subject": "Callback requested",
            "description": f"{handoff.summary or ''} Reason for the handoff: {handoff.reason or 'not given'}.",
            "priority": 2,
            "call_id": handoff.call_id,
            "email": call.caller_email if call is not None else None,
            "phone": phone,
            "name": call.caller_name if call is not None else None,
        },
        call_id=handoff.call_id,
        key=f"{request.id}:callback",
    )
    if deliveries:
        request.ticket_delivery_id = deliveries[0].id
    _step(handoff, "callback_requested", callback_id=request.id)
    await session.commit()
    return request
