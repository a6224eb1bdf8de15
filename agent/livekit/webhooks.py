"""``POST /api/livekit/webhook``: LiveKit's room and participant events, verified, recorded against the call.

LiveKit signs each webhook with a JWT in ``Authorization`` whose ``sha256`` claim is the body's digest, keyed with
the API secret; livekit-api's ``WebhookReceiver`` + ``TokenVerifier`` check both (and the token's expiry). A
missing, expired, wrong-key or tampered request gets a 401 problem. A verified event naming a room that a call
runs in (the worker stores ``livekit_room`` in the call's metadata) is stored as a ``livekit`` call event; others
are acknowledged and counted. With LiveKit not configured the route answers 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from fastapi import APIRouter, Request
from prometheus_client import Counter
from pydantic import BaseModel
from sqlalchemy import select

from config.settings import LiveKitSettings
from control_api.db.models import Call
from control_api.deps import SessionDep
from control_api.problems import ProblemError
from control_api.services import calls as call_service

if TYPE_CHECKING:
    from livekit import api

log = structlog.get_logger(__name__)
WEBHOOK_PATH = "/api/livekit/webhook"
# LiveKit's bodies are a few KiB; anything far larger is not LiveKit.
MAX_BODY_BYTES = 256 * 1024
WEBHOOKS = Counter(
    "voxdesk_livekit_webhooks_total",
    "LiveKit webhooks received, by event and result (recorded, unmatched, refused).",
    ["event", "result"],
)


class WebhookAck(BaseModel):
    """What Voxdesk did with a verified webhook."""

    event: str
    recorded: bool
    call_id: str | None = None


def _event_data(event: api.WebhookEvent) -> dict[str, Any]:
    from livekit import api

    # Never the participant's identity or attributes (a SIP identity carries the caller's number).
    data: dict[str, Any] = {"event": event.event, "id": event.id, "room": event.room.name}
    if event.HasField("participant"):
        data["participant_kind"] = api.ParticipantInfo.Kind.Name(event.participant.kind).lower()
        if event.participant.disconnect_reason:
            data["disconnect_reason"] = api.DisconnectReason.Name(event.participant.disconnect_reason).lower()
    if event.HasField("track"):
        data["track_type"] = api.TrackType.Name(event.track.type).lower()
    return data


def livekit_webhook_router(settings: LiveKitSettings) -> APIRouter:
    """The LiveKit webhook route (verified with ``settings``' API key and secret)."""
    router = APIRouter(tags=["telephony"])

    @router.post(
        WEBHOOK_PATH,
        responses={401: {"description": "Bad, expired or missing signature."}, 404: {"description": "No LiveKit."}},
    )
    async def livekit_webhook(request: Request, session: SessionDep) -> WebhookAck:
        """Verify a LiveKit webhook and record its room/participant event against the call in that room."""
        if settings.api_secret is None:
            raise ProblemError(404, "LiveKit is not configured on this server.", type_="livekit-off")
        # livekit-api is the `voxdesk[livekit]` extra: imported only where LiveKit is configured.
        from livekit import api

        key, secret = settings.api_key, settings.api_secret.get_secret_value()
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise ProblemError(413, "The webhook body is too large.", type_="too-large")
        receiver = api.WebhookReceiver(api.TokenVerifier(key, secret))
        try:
            # LiveKit sends the bare JWT; a proxy or another SDK may add the Bearer scheme.
            token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            event = receiver.receive(raw.decode("utf-8"), token)
        # livekit-api raises bare Exceptions (hash mismatch), jwt's errors, protobuf's parse errors; bad UTF-8 too.
        except Exception as exc:  # noqa: BLE001 - every failure to verify is the same 401
            WEBHOOKS.labels(event="unknown", result="refused").inc()
            log.info("livekit_webhook_refused", error_type=type(exc).__name__)
            detail = "The LiveKit webhook signature is missing or wrong."
            raise ProblemError(401, detail, type_="livekit-signature") from None
        room = event.room.name
        call_id: str | None = None
        if room:
            call_id = await session.scalar(
                select(Call.id)
                .where(Call.meta["livekit_room"].as_string() == room)
                .order_by(Call.started_at.desc())
                .limit(1)
            )
        if call_id is None:
            WEBHOOKS.labels(event=event.event or "unknown", result="unmatched").inc()
            return WebhookAck(event=event.event, recorded=False)
        await call_service.add_event(session, call_id, kind="livekit", data=_event_data(event))
        WEBHOOKS.labels(event=event.event or "unknown", result="recorded").inc()
        log.info("livekit_webhook_recorded", call_id=call_id, livekit_event=event.event)
        return WebhookAck(event=event.event, recorded=True, call_id=call_id)

    return router
