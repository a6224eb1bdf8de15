"""Twilio Media Streams (issue 17): the voice webhook answering with TwiML, and the media WebSocket.

``POST /api/telephony/twilio/voice`` is the number's voice webhook: it answers
``<Connect><Stream url="wss://.../api/telephony/twilio/stream">`` with the caller's and the dialled number as
stream parameters. ``WS /api/telephony/twilio/stream`` carries the call (Twilio's ``connected``, ``start``,
``media`` with base64 8 kHz μ-law, ``stop`` events) through pipecat's ``FastAPIWebsocketTransport`` and
``TwilioFrameSerializer``; the call is set up by ``VoiceService.start_call`` like any other (channel
``telephony``). Both requests must carry a valid ``X-Twilio-Signature`` (Twilio's documented algorithm:
base64 of HMAC-SHA1, keyed with the auth token, over the URL Twilio requested followed by each POST parameter's
name and value in name order; the WebSocket handshake is signed over its URL alone): otherwise 403. Without an
auth token every Twilio request is refused. With the account SID too, the serializer hangs the call up through
Twilio's REST API when the agent ends it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from xml.sax.saxutils import quoteattr

import structlog
from fastapi import APIRouter, Request, Response, WebSocket
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.base_serializer import FrameSerializer
from pipecat.serializers.twilio import TwilioFrameSerializer

from agent.calls.media import CallControls, CallRequest
from agent.calls.service import VoiceService
from agent.calls.session import CallSession
from agent.transports.digits import caller_digit
from agent.transports.media_socket import CLOSE_BUSY, CLOSE_FORBIDDEN, SocketMedia, provider_url, refuse
from config.settings import TelephonySettings
from control_api.problems import ProblemError

log = structlog.get_logger(__name__)
VOICE_PATH = "/api/telephony/twilio/voice"
STREAM_PATH = "/api/telephony/twilio/stream"


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """Twilio's request signature: base64(HMAC-SHA1(token, url + name1 + value1 + ... in name order))."""
    payload = url + "".join(f"{name}{value}" for name, value in sorted((params or {}).items()))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signature_valid(auth_token: str | None, url: str, params: Mapping[str, str] | None, presented: str | None) -> bool:
    """Whether ``presented`` is Twilio's signature of the request (constant-time compare)."""
    if not auth_token or not presented:
        return False
    expected = twilio_signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode(), presented.encode())


class TwilioMedia(SocketMedia):
    """A Twilio media stream's side of a call (a :class:`~agent.calls.media.CallMedia`).

    Args:
        websocket: The accepted media socket.
        serializer: Twilio's frame serializer for this stream.

    """

    disconnect_reason = "caller_hangup"

    def __init__(self, websocket: WebSocket, serializer: TwilioFrameSerializer) -> None:
        super().__init__(websocket)
        self._serializer = serializer

    def serializer(self, controls: CallControls) -> FrameSerializer:
        """Twilio's serializer (8 kHz μ-law ↔ 16 kHz; ``clear`` on interruption; the REST hang-up)."""
        del controls
        return self._serializer


def twilio_router(voice: VoiceService, settings: TelephonySettings, *, public_url: str | None) -> APIRouter:
    """The Twilio voice webhook and media stream of ``voice``."""
    router = APIRouter(tags=["telephony"])
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None

    @router.post(VOICE_PATH, response_class=Response, responses={403: {"description": "Bad or missing signature."}})
    async def voice_webhook(request: Request) -> Response:
        """Answer a Twilio call with TwiML connecting it to the media stream."""
        form = await request.form()
        params = {key: str(value) for key, value in form.items()}
        url = provider_url(public_url, str(request.url), websocket=False)
        if not signature_valid(token, url, params, request.headers.get("x-twilio-signature")):
            raise ProblemError(403, "The Twilio signature is missing or wrong.", type_="twilio-signature")
        stream = provider_url(public_url, str(request.url_for("twilio_stream")), websocket=True)
        stream = stream.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        parameters = "".join(
            f"<Parameter name={quoteattr(name)} value={quoteattr(params.get(key, ''))}/>"
            for name, key in (("from_number", "From"), ("to_number", "To"))
        )
        twiml = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Response><Connect><Stream url={quoteattr(stream)}>{parameters}</Stream></Connect></Response>"
        )
        return Response(content=twiml, media_type="application/xml")

    @router.websocket(STREAM_PATH, name="twilio_stream")
    async def stream(websocket: WebSocket) -> None:
        """One call's media from Twilio (signed handshake)."""
        url = provider_url(public_url, str(websocket.url), websocket=True)
        if not signature_valid(token, url, None, websocket.headers.get("x-twilio-signature")):
            await refuse(websocket, CLOSE_FORBIDDEN, "bad Twilio signature")
            return
        request = CallRequest(channel="telephony", rate_key="trunk:twilio", meta={"transport": "twilio"})
        try:
            await voice.admit(rate_key=request.rate_key, channel=request.channel)
        except ProblemError as problem:
            await refuse(websocket, CLOSE_BUSY, problem.detail)
            return
        await websocket.accept()
        _kind, call_data = await parse_telephony_websocket(websocket)
        account_sid = settings.twilio_account_sid
        serializer = TwilioFrameSerializer(
            stream_sid=call_data["stream_id"],
            call_sid=call_data["call_id"],
            account_sid=account_sid,
            auth_token=token,
            params=TwilioFrameSerializer.InputParams(auto_hang_up=bool(account_sid and token)),
        )
        request = CallRequest(
            channel="telephony",
            rate_key="trunk:twilio",
            meta={"transport": "twilio", "call_sid": call_data["call_id"]},
            caller_number=call_data.get("from") or None,
        )
        media = TwilioMedia(websocket, serializer)

        def on_digit(call: CallSession, controls: CallControls, digit: str) -> None:
            # Twilio's ``dtmf`` event: the same rule as every phone line (stored, 0 asks for a person).
            voice.spawn(caller_digit(voice.state.sessions, call, controls, digit), name=f"twilio-dtmf-{call.call_id}")

        media.on_digit = on_digit
        started = await voice.start_call(request, media)
        log.info("twilio_call_started", call_id=started.call.call_id)
        await started.run

    return router
