"""Telnyx media streams (issue 17): Call Control webhooks, the media WebSocket, hang-up and transfer over REST.

The flow is Telnyx's documented Call Control one. The connection's webhook URL is
``POST /api/telephony/telnyx/webhook``; every webhook must carry a valid Ed25519 signature
(``telnyx-signature-ed25519``: base64 signature of ``"{telnyx-timestamp}|{raw body}"``, checked with the account's
public key, the timestamp within 5 minutes) or it is refused 403. ``call.initiated`` (incoming) is answered with
``POST /v2/calls/{call_control_id}/actions/answer`` (or rejected ``USER_BUSY`` when no line is free);
``call.answered`` starts the stream with ``actions/streaming_start`` (``stream_url`` this server's
``/api/telephony/telnyx/stream`` with a token bound to the call, inbound track, bidirectional RTP in PCMU).
Telnyx then opens the WebSocket (``connected``, ``start``, ``media``, ``dtmf``, ``stop``), carried by pipecat's
``TelnyxFrameSerializer`` (8 kHz μ-law/A-law ↔ 16 kHz, ``clear`` on interruption); the call is set up by
``VoiceService.start_call`` like any other (channel ``telephony``). A call the agent ends is hung up with
``actions/hangup`` (closing the stream alone leaves a Telnyx call up); DTMF 0 without a live handoff is
transferred with ``actions/transfer`` to ``VOXDESK_TELEPHONY__TRANSFER_TARGET``.

The serializer's own REST hang-up is off: it always calls api.telnyx.com, and the API base here is a setting
(tests point it at a local stand-in that checks each request against Telnyx's documented contract).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, Request, Response, WebSocket
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.base_serializer import FrameSerializer
from pipecat.serializers.telnyx import TelnyxFrameSerializer

from agent.calls.media import CallControls, CallRequest
from agent.calls.service import VoiceService
from agent.transports.media_socket import (
    CALLER_ENDED,
    CLOSE_BUSY,
    CLOSE_FORBIDDEN,
    SocketMedia,
    provider_url,
    refuse,
    start_provider_call,
)
from config.settings import TelephonySettings
from control_api.problems import ProblemError

log = structlog.get_logger(__name__)
WEBHOOK_PATH = "/api/telephony/telnyx/webhook"
STREAM_PATH = "/api/telephony/telnyx/stream"
SIGNATURE_TOLERANCE_S = 300
# Telnyx's media_format.encoding as the serializer names it.
_ENCODINGS = {"PCMU": "PCMU", "PCMA": "PCMA", "audio/x-mulaw": "PCMU", "audio/x-alaw": "PCMA"}


def webhook_signature_valid(
    public_key_b64: str | None,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` is Telnyx's Ed25519 signature of ``"{timestamp}|{body}"``, signed recently."""
    if not public_key_b64 or not signature or not timestamp:
        return False
    try:
        signed_at = int(timestamp)
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        raw = base64.b64decode(signature, validate=True)
    except (ValueError, binascii.Error):
        return False
    if abs((now if now is not None else time.time()) - signed_at) > SIGNATURE_TOLERANCE_S:
        return False
    try:
        key.verify(raw, timestamp.encode() + b"|" + body)
    except InvalidSignature:
        return False
    return True


def stream_token(secret: str, call_control_id: str) -> str:
    """The stream URL's token: binds a media socket to a call this server answered (HMAC-SHA256)."""
    key = hashlib.sha256(b"voxdesk-telnyx-stream:" + secret.encode()).digest()
    return hmac.new(key, call_control_id.encode(), hashlib.sha256).hexdigest()


class TelnyxApi:
    """The Call Control commands Voxdesk sends (``POST {base}/calls/{call_control_id}/actions/{action}``).

    Args:
        base_url: The API base (``https://api.telnyx.com/v2``).
        api_key: The API key (``Authorization: Bearer``).
        timeout_s: Per-request timeout.

    """

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._timeout = timeout_s

    async def command(self, call_control_id: str, action: str, body: Mapping[str, Any] | None = None) -> bool:
        """Send one command (a fresh ``command_id`` makes Telnyx ignore a retried duplicate); True on 2xx.

        A call that already ended (422, error code 90018) counts as done.
        """
        url = f"{self._base}/calls/{quote(call_control_id, safe='')}/actions/{action}"
        payload = {**(body or {}), "command_id": str(uuid.uuid4())}
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(url, headers=self._headers, content=json.dumps(payload))
        except httpx.HTTPError as exc:
            log.warning("telnyx_command_failed", action=action, error_type=type(exc).__name__)
            return False
        if response.is_success:
            return True
        if response.status_code == 422 and '"90018"' in response.text:
            return True
        log.warning("telnyx_command_refused", action=action, status=response.status_code)
        return False


class TelnyxMedia(SocketMedia):
    """A Telnyx media stream's side of a call (a :class:`~agent.calls.media.CallMedia`).

    Args:
        websocket: The accepted media socket.
        serializer: Telnyx's frame serializer for this stream.
        api: The Call Control client (hang-up, transfer); ``None``: neither.
        call_control_id: The Telnyx call.

    """

    disconnect_reason = "caller_hangup"

    def __init__(
        self, websocket: WebSocket, serializer: TelnyxFrameSerializer, *, api: TelnyxApi | None, call_control_id: str
    ) -> None:
        super().__init__(websocket)
        self._serializer = serializer
        self._api = api
        self.call_control_id = call_control_id

    def serializer(self, controls: CallControls) -> FrameSerializer:
        """Telnyx's serializer (its own REST hang-up off: see the module docstring)."""
        del controls
        return self._serializer

    async def transfer(self, target: str) -> bool:
        """Cold-transfer the call to ``target`` (a number or SIP URI) with ``actions/transfer``.

        Telnyx then bridges the caller to the target and stops this stream: the call ends ``transferred``.
        """
        if self._api is None:
            return False
        before, self.disconnect_reason = self.disconnect_reason, "transferred"  # Telnyx may stop the stream first
        sent = await self._api.command(self.call_control_id, "transfer", {"to": target})
        if not sent:
            self.disconnect_reason = before
        return sent

    async def close(self, reason: str) -> None:
        """Close the stream, and hang the call up over REST unless the caller already did."""
        await super().close(reason)
        if self._api is not None and reason not in CALLER_ENDED:
            await self._api.command(self.call_control_id, "hangup")


def telnyx_router(voice: VoiceService, settings: TelephonySettings, *, public_url: str | None) -> APIRouter:
    """The Telnyx Call Control webhook and media stream of ``voice``."""
    router = APIRouter(tags=["telephony"])
    api_key = settings.telnyx_api_key.get_secret_value() if settings.telnyx_api_key else None
    public_key = settings.telnyx_public_key
    api = TelnyxApi(settings.telnyx_api_url, api_key) if api_key else None

    async def answer(call_control_id: str) -> None:
        assert api is not None
        try:
            voice.registry.check_capacity("telephony")
        except ProblemError:
            await api.command(call_control_id, "reject", {"cause": "USER_BUSY"})
            return
        await api.command(call_control_id, "answer")

    async def start_stream(call_control_id: str, stream_url: str) -> None:
        assert api is not None and api_key is not None
        url = f"{stream_url}?token={stream_token(api_key, call_control_id)}"
        body = {
            "stream_url": url,
            "stream_track": "inbound_track",
            "stream_bidirectional_mode": "rtp",
            "stream_bidirectional_codec": "PCMU",
        }
        await api.command(call_control_id, "streaming_start", body)

    @router.post(
        WEBHOOK_PATH,
        responses={403: {"description": "Bad or missing signature, or Telnyx is not configured."}},
    )
    async def webhook(request: Request) -> Response:
        """A Call Control event: an incoming call is answered, an answered one streamed to the agent."""
        body = await request.body()
        signed = webhook_signature_valid(
            public_key,
            body,
            request.headers.get("telnyx-signature-ed25519"),
            request.headers.get("telnyx-timestamp"),
        )
        if not signed or api is None:
            raise ProblemError(403, "The Telnyx signature is missing or wrong.", type_="telnyx-signature")
        try:
            data = json.loads(body)["data"]
            event, payload = str(data["event_type"]), data["payload"]
            call_control_id = str(payload["call_control_id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ProblemError(422, "Not a Telnyx Call Control event.", type_="telnyx-event") from exc
        if event == "call.initiated" and payload.get("direction", "incoming") == "incoming":
            voice.spawn(answer(call_control_id), name="telnyx-answer")
        elif event == "call.answered":
            stream = provider_url(public_url, str(request.url_for("telnyx_stream")), websocket=True)
            stream = stream.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
            voice.spawn(start_stream(call_control_id, stream), name="telnyx-stream")
        return Response(status_code=200)

    @router.websocket(STREAM_PATH, name="telnyx_stream")
    async def stream(websocket: WebSocket) -> None:
        """One call's media from Telnyx (the token must match the stream's call)."""
        token = websocket.query_params.get("token") or ""
        if api is None or api_key is None or not token:
            await refuse(websocket, CLOSE_FORBIDDEN, "bad Telnyx stream token")
            return
        await websocket.accept()
        try:
            kind, call_data = await parse_telephony_websocket(websocket)
        except ValueError:
            return
        call_control_id = str(call_data.get("call_id") or "")
        expected = stream_token(api_key, call_control_id)
        if kind != "telnyx" or not call_control_id or not hmac.compare_digest(expected, token):
            await websocket.close(code=CLOSE_FORBIDDEN, reason="bad Telnyx stream token")
            return
        request = CallRequest(channel="telephony", rate_key="trunk:telnyx", meta={"transport": "telnyx"})
        try:
            await voice.admit(rate_key=request.rate_key, channel=request.channel)
        except ProblemError as problem:
            await websocket.close(code=CLOSE_BUSY, reason=problem.detail[:120])
            return
        encoding = _ENCODINGS.get(str(call_data.get("outbound_encoding") or "PCMU"), "PCMU")
        serializer = TelnyxFrameSerializer(
            stream_id=str(call_data.get("stream_id") or ""),
            outbound_encoding=encoding,
            inbound_encoding="PCMU",  # what streaming_start asked for (stream_bidirectional_codec)
            call_control_id=call_control_id,
            params=TelnyxFrameSerializer.InputParams(auto_hang_up=False),
        )
        media = TelnyxMedia(websocket, serializer, api=api, call_control_id=call_control_id)

        request = CallRequest(
            channel="telephony",
            rate_key="trunk:telnyx",
            meta={"transport": "telnyx", "call_control_id": call_control_id},
            caller_number=str(call_data.get("from") or "") or None,
        )
        started = await start_provider_call(
            voice, request, media, transfer=media.transfer, transfer_target=settings.transfer_target, provider="telnyx"
        )
        log.info("telnyx_call_started", call_id=started.call.call_id)
        await started.run

    return router
