"""The handoff queue and the desk: list, brief, accept, decline, join the audio, complete; the live feed (SSE).

An agent sees and accepts only the handoffs offered to them and completes only those they took; supervisors see
every one. What happens to the call's audio is the voice process's job, reached through the registered
:class:`~control_api.services.handoffs.LiveHandoffs` (this package never imports the voice side).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from control_api.db.models import Handoff, User
from control_api.deps import SessionDep, actor_for, require
from control_api.problems import ProblemError
from control_api.rbac import Permission, has_permission
from control_api.schemas.handoffs import (
    CallbackAssignee,
    CallbackAssignees,
    CallbackComplete,
    CallbackPublic,
    CallbackReassign,
    CallbacksPublic,
    CallbackStatus,
    DeskAnswer,
    DeskOffer,
    HandoffComplete,
    HandoffDetail,
    HandoffPolicyModel,
    HandoffPublic,
    HandoffsPublic,
    HandoffStatus,
)
from control_api.services import audit
from control_api.services import callbacks as callback_service
from control_api.services import handoffs as service
from control_api.services import personas as persona_service

router = APIRouter(prefix="/api/handoffs", tags=["handoffs"])
Taker = Annotated[User, Depends(require(Permission.HANDOFFS_TAKE))]
Manager = Annotated[User, Depends(require(Permission.HANDOFFS_MANAGE))]
PersonaEditor = Annotated[User, Depends(require(Permission.PERSONAS_MANAGE))]
# A comment line keeps proxies from closing a quiet event stream.
HEARTBEAT_S = 15.0


def _public(handoff: Handoff) -> HandoffPublic:
    return HandoffPublic.model_validate(handoff).model_copy(update={"wait_s": service.wait_s(handoff)})


def _detail(handoff: Handoff) -> HandoffDetail:
    return HandoffDetail.model_validate(
        {
            **_public(handoff).model_dump(),
            "briefing": handoff.briefing,
            "timeline": handoff.timeline,
            "notes": handoff.notes,
            "disposition": handoff.disposition,
        }
    )


def _live() -> service.LiveHandoffs:
    controller = service.live()
    if controller is None:
        raise ProblemError(503, "No voice runs in this process.", type_="voice-unavailable")
    return controller


@router.get("", response_model=HandoffsPublic)
async def list_handoffs(
    session: SessionDep,
    user: Taker,
    status: Annotated[HandoffStatus | None, Query()] = None,
    queue: Annotated[str | None, Query(max_length=50)] = None,
    call_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> HandoffsPublic:
    """The queue: handoffs offered to you or taken by you (supervisors: all), highest priority first."""
    rows = await service.list_for(session, user, status=status, queue=queue, call_id=call_id, limit=limit)
    return HandoffsPublic(items=[_public(h) for h in rows])


def _visible(event: dict[str, Any], user: User, manager: bool) -> bool:
    if manager:
        return True
    if event.get("type") == "presence":
        return event.get("user_id") == user.id
    return user.id in (event.get("offered_to") or []) or event.get("agent_user_id") == user.id


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."}},
)
async def desk_events(request: Request, session: SessionDep, user: Taker) -> StreamingResponse:
    """The desk's live feed (server-sent events): handoff changes, presence, the live transcript of your call."""
    manager = has_permission(user.role, Permission.HANDOFFS_MANAGE)
    viewer = User(id=user.id, role=user.role)
    await session.close()  # the stream holds no database connection

    async def stream() -> AsyncIterator[str]:
        async with service.BROKER.subscribe() as queue:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=HEARTBEAT_S)
                except TimeoutError:
                    yield ": heartbeat\n\n"
                    continue
                if _visible(event, viewer, manager):
                    yield f"data: {json.dumps(event)}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.get("/callbacks", response_model=CallbacksPublic)
async def list_callbacks(
    session: SessionDep,
    user: Taker,
    status: Annotated[CallbackStatus, Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> CallbacksPublic:
    """The callback queue: requests left by handoffs nobody took.

    ``open``: not done yet, oldest first; ``claimed``: open ones someone claimed; ``done``: most recently completed
    first. Agents see the open requests nobody claimed and their own; supervisors see all.
    """
    views, total = await callback_service.list_for(session, user, status=status, limit=limit)
    return CallbacksPublic(items=[_callback(v) for v in views], count=total)


def _callback(view: callback_service.CallbackView) -> CallbackPublic:
    return CallbackPublic.model_validate(view.public())


@router.get("/callbacks/assignees", response_model=CallbackAssignees)
async def list_callback_assignees(session: SessionDep, user: Manager) -> CallbackAssignees:
    """Everyone a supervisor may hand a callback to (active accounts that take handoffs), with their presence."""
    del user
    rows = await callback_service.assignees(session)
    return CallbackAssignees(
        items=[
            CallbackAssignee(
                user_id=person.id, email=person.email, full_name=person.full_name, role=person.role, presence=presence
            )
            for person, presence in rows
        ]
    )


@router.post(
    "/callbacks/{callback_id}/claim",
    response_model=CallbackPublic,
    responses={409: {"description": "Already claimed by someone else, or done."}},
)
async def claim_callback(callback_id: str, request: Request, session: SessionDep, user: Taker) -> CallbackPublic:
    """Claim a callback to call the caller back (the first claim wins)."""
    view = await callback_service.claim(session, callback_id, user)
    await audit.record(
        session, actor_for(request, user), "handoffs.callback_claim", target_type="callback", target_id=callback_id
    )
    return _callback(view)


@router.post(
    "/callbacks/{callback_id}/complete",
    response_model=CallbackPublic,
    responses={
        403: {"description": "Claimed by someone else."},
        409: {"description": "Not claimed yet, or already done."},
    },
)
async def complete_callback(
    callback_id: str, body: CallbackComplete, request: Request, session: SessionDep, user: Taker
) -> CallbackPublic:
    """Close a callback you claimed with its outcome and a note (supervisors: any callback)."""
    view = await callback_service.complete(session, callback_id, user, outcome=body.outcome, note=body.note)
    await audit.record(
        session,
        actor_for(request, user),
        "handoffs.callback_complete",
        target_type="callback",
        target_id=callback_id,
        detail={"outcome": body.outcome},
    )
    return _callback(view)


@router.post(
    "/callbacks/{callback_id}/release",
    response_model=CallbackPublic,
    responses={409: {"description": "Not claimed, claimed by someone else, or done."}},
)
async def release_callback(callback_id: str, request: Request, session: SessionDep, user: Taker) -> CallbackPublic:
    """Put a callback you claimed back in the open queue (supervisors: any claimed callback)."""
    view = await callback_service.release(session, callback_id, user)
    await audit.record(
        session, actor_for(request, user), "handoffs.callback_release", target_type="callback", target_id=callback_id
    )
    return _callback(view)


@router.post(
    "/callbacks/{callback_id}/reassign",
    response_model=CallbackPublic,
    responses={409: {"description": "Already done."}, 422: {"description": "That account does not take handoffs."}},
)
async def reassign_callback(
    callback_id: str, body: CallbackReassign, request: Request, session: SessionDep, user: Manager
) -> CallbackPublic:
    """Hand a callback to another person who takes handoffs, or back to the open queue (``user_id: null``)."""
    view = await callback_service.reassign(session, callback_id, body.user_id)
    await audit.record(
        session,
        actor_for(request, user),
        "handoffs.callback_reassign",
        target_type="callback",
        target_id=callback_id,
        detail={"to_user_id": body.user_id},
    )
    return _callback(view)


@router.get("/policies/{persona_name}", response_model=HandoffPolicyModel)
async def get_policy(persona_name: str, session: SessionDep, user: Manager) -> HandoffPolicyModel:
    """A persona's handoff triggers and thresholds (the defaults when none is stored); 404: no such persona."""
    del user
    await persona_service.ensure_known(session, persona_name)
    return await service.get_policy(session, persona_name)


@router.put("/policies/{persona_name}", response_model=HandoffPolicyModel)
async def put_policy(
    persona_name: str, body: HandoffPolicyModel, request: Request, session: SessionDep, user: PersonaEditor
) -> HandoffPolicyModel:
    """Set a persona's handoff triggers and thresholds (new calls use them); 404: no such persona."""
    await persona_service.ensure_known(session, persona_name)
    policy = await service.put_policy(session, persona_name, body)
    await audit.record(
        session, actor_for(request, user), "handoffs.policy", target_type="persona", target_id=persona_name
    )
    return policy


@router.get("/{handoff_id}", response_model=HandoffDetail)
async def get_handoff(handoff_id: str, session: SessionDep, user: Taker) -> HandoffDetail:
    """A handoff with its briefing (summary, transcript, caller, consent, passages, sentiment, reason) and timeline."""
    return _detail(await service.get_for(session, handoff_id, user))


@router.post(
    "/{handoff_id}/accept",
    response_model=HandoffDetail,
    responses={409: {"description": "No longer waiting (taken, timed out, abandoned)."}},
)
async def accept(handoff_id: str, request: Request, session: SessionDep, user: Taker) -> HandoffDetail:
    """Take a handoff offered to you (the first accept wins); then join its audio with ``/media``."""
    handoff = await service.accept(session, handoff_id, user)
    await audit.record(
        session, actor_for(request, user), "handoffs.accept", target_type="handoff", target_id=handoff.id
    )
    controller = service.live()
    if controller is not None:
        await controller.accepted(handoff.id, user.id)
    return _detail(handoff)


@router.post(
    "/{handoff_id}/decline",
    response_model=HandoffPublic,
    responses={409: {"description": "No longer waiting."}},
)
async def decline(handoff_id: str, request: Request, session: SessionDep, user: Taker) -> HandoffPublic:
    """Decline a handoff offered to you; when everyone offered it declines, the AI takes the call back."""
    handoff, everyone = await service.decline(session, handoff_id, user)
    await audit.record(
        session, actor_for(request, user), "handoffs.decline", target_type="handoff", target_id=handoff.id
    )
    controller = service.live()
    if everyone and controller is not None:
        await controller.all_declined(handoff.id)
    return _public(handoff)


@router.post(
    "/{handoff_id}/media",
    response_model=DeskAnswer,
    responses={409: {"description": "Not accepted by you."}, 503: {"description": "No voice in this process."}},
)
async def media(handoff_id: str, body: DeskOffer, session: SessionDep, user: Taker) -> DeskAnswer:
    """Join the call's audio from the desk: an SDP offer in, the answer out (WebRTC, Opus)."""
    handoff = await service.get_for(session, handoff_id, user)
    if handoff.status != "accepted" or handoff.agent_user_id != user.id:
        raise ProblemError(409, "Only the person who accepted the handoff joins its audio.", type_="handoff-not-yours")
    await session.close()
    try:
        sdp = await _live().join(handoff_id, user.id, body.sdp)
    except LookupError:
        raise ProblemError(409, "The call of this handoff has ended.", type_="call-ended") from None
    except ValueError:
        raise ProblemError(400, "The SDP offer could not be used.", type_="bad-sdp") from None
    return DeskAnswer(sdp=sdp)


@router.post(
    "/{handoff_id}/complete",
    response_model=HandoffDetail,
    responses={409: {"description": "Not accepted."}},
)
async def complete(
    handoff_id: str, body: HandoffComplete, request: Request, session: SessionDep, user: Taker
) -> HandoffDetail:
    """Wrap up a handoff you took: notes and disposition (also written on the call); your audio leaves the call."""
    handoff = await service.complete(session, handoff_id, user, notes=body.notes, disposition=body.disposition)
    await audit.record(
        session,
        actor_for(request, user),
        "handoffs.complete",
        target_type="handoff",
        target_id=handoff.id,
        detail={"disposition": body.disposition},
    )
    controller = service.live()
    if controller is not None:
        await controller.completed(handoff.id)
    return _detail(handoff)
