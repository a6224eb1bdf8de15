"""Twilio Media Streams (issue 17): the voice webhook answering with TwiML, and the media WebSocket.

``POST /api/telephony/twilio/voice`` is the number's voice webhook: it answers
``<Connect><Stream url="wss://.../api/telephony/twilio/stream">`` with the caller's and the dialled number as
stream parameters. ``WS /api/telephony/twilio/stream`` carries the call (Twilio's ``connected``, ``start``,
``media`` with base64 8 kHz μ-law, ``stop`` events) through pipecat's ``FastAPIWebsocketTransport`` and
``TwilioFrameSerializer``; the call is set up by ``VoiceService.start_call`` like any other (channel
``telephony``). Both requests must carry a valid ``X-Twilio-Signature`` (Twilio's documented algorithm:
base64 of HMAC-SHA1, keyed with the auth token, over the URL Twilio requested followed by each POST parameter's
name and value in name order; the WebSocket handshake is signed over its URL alone): otherwise 403. Without an
auth token every Twilio request is refused. With the account SID too, Twilio's REST API (``Calls/{CallSid}.json``,
HTTP Basic with the SID and token, form-encoded) hangs the call up when the agent ends it (``Status=completed``)
and cold-transfers it (``Twiml=<Response><Dial>…</Dial></Response>``: Twilio then stops the stream and dials the
target) for a DTMF 0 with ``VOXDESK_TELEPHONY__TRANSFER_TARGET`` or a persona's ``cold_transfer_to``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

import httpx
import structlog
from fastapi import APIRouter, Request, Response, WebSocket
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.base_serializer import FrameSerializer
from pipecat.serializers.twilio import TwilioFrameSerializer

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


def dial_twiml(target: str) -> str:
    """TwiML dialling ``target``: a SIP URI with ``<Sip>``, a number or ``tel:`` URI with ``<Number>``."""
    if target.lower().startswith(("sip:", "sips:")):
        noun = f"<Sip>{escape(target)}</Sip>"
    else:
        noun = f"<Number>{escape(target.removeprefix('tel:'))}</Number>"
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Dial>{noun}</Dial></Response>'


def _error_code(response: httpx.Response) -> object:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


class TwilioApi:
    """Twilio's REST API for a live call (``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json``).

    Args:
        base_url: ``https://api.twilio.com`` (or a regional or compatible host).
        account_sid: The account (HTTP Basic user).
        auth_token: Its auth token (HTTP Basic password).
        timeout_s: Per request.

    """

    def __init__(self, base_url: str, account_sid: str, auth_token: str, *, timeout_s: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._account_sid = account_sid
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self._timeout = timeout_s

    async def update(self, call_sid: str, fields: Mapping[str, str], *, action: str) -> bool:
        """Update the call with ``fields``; True on 2xx, or when the call had already ended (404, code 20404)."""
        account, call = quote(self._account_sid, safe=""), quote(call_sid, safe="")
        url = f"{self._base}/2010-04-01/Accounts/{account}/Calls/{call}.json"
        try:
            async with httpx.AsyncClient(timeout=self._timeout, auth=self._auth) as client:
                response = await client.post(url, data=dict(fields))
        except httpx.HTTPError as exc:
            log.warning("twilio_request_failed", action=action, error_type=type(exc).__name__)
            return False
        if response.is_success:
            return True
        if response.status_code == 404 and _error_code(response) == 20404:  # the call had already ended
            return True
        log.warning("twilio_request_refused", action=action, status=response.status_code)
        return False


class TwilioMedia(SocketMedia):
    """A Twilio media stream's side of a call (a :class:`~agent.calls.media.CallMedia`).

    Args:
        websocket: The accepted media socket.
        serializer: Twilio's frame serializer for this stream (its own REST hang-up off: this class sends it).
        api: Twilio's REST API (hang-up, transfer); ``None``: neither.
        call_sid: The Twilio call.

    """

    disconnect_reason = "caller_hangup"

    def __init__(
        self,
        websocket: WebSocket,
        serializer: TwilioFrameSerializer,
        *,
        api: TwilioApi | None = None,
        call_sid: str = "",
    ) -> None:
        super().__init__(websocket)
        self._serializer = serializer
        self._api = api
        self.call_sid = call_sid

    def serializer(self, controls: CallControls) -> FrameSerializer:
        """Twilio's serializer (8 kHz μ-law ↔ 16 kHz; ``clear`` on interruption)."""
        del controls
        return self._serializer

    async def transfer(self, target: str) -> bool:
        """Cold-transfer the call to ``target`` by replacing its TwiML with a ``<Dial>``.

        Twilio then stops this stream and dials the target: the call ends ``transferred``.
        """
        if self._api is None or not self.call_sid:
            return False
        before, self.disconnect_reason = self.disconnect_reason, "transferred"  # Twilio may stop the stream first
        sent = await self._api.update(self.call_sid, {"Twiml": dial_twiml(target)}, action="transfer")
        if not sent:
            self.disconnect_reason = before
        return sent

    async def close(self, reason: str) -> None:
        """Close the stream, and hang the call up over REST unless the caller already left or was transferred."""
        await super().close(reason)
        if self._api is not None and self.call_sid and reason not in CALLER_ENDED:
            await self._api.update(self.call_sid, {"Status": "completed"}, action="hangup")


def twilio_router(voice: VoiceService, settings: TelephonySettings, *, public_url: str | None) -> APIRouter:
    """The Twilio voice webhook and media stream of ``voice``."""
    router = APIRouter(tags=["telephony"])
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None
    account_sid = settings.twilio_account_sid
    api = TwilioApi(settings.twilio_api_url, account_sid, token) if account_sid and token else None

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
        serializer = TwilioFrameSerializer(
            stream_sid=call_data["stream_id"],
            call_sid=call_data["call_id"],
            params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
        )
        request = CallRequest(
            channel="telephony",
            rate_key="trunk:twilio",
            meta={"transport": "twilio", "call_sid": call_data["call_id"]},
            caller_number=call_data.get("from") or None,
        )
        media = TwilioMedia(websocket, serializer, api=api, call_sid=str(call_data["call_id"] or ""))

        started = await start_provider_call(
            voice, request, media, transfer=media.transfer, transfer_target=settings.transfer_target, provider="twilio"
        )
        log.info("twilio_call_started", call_id=started.call.call_id)
        await started.run

    return router
