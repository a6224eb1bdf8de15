"""WebRTC calls: the public caller page (``/call``) and SmallWebRTC signalling (``/api/voice/webrtc/offer``).

The page posts an SDP offer once its ICE gathering is complete (loopback/LAN, no STUN needed); the
server answers, stores the call, and runs its pipeline on the connection. Live transcript, latency
and the end of the call reach the page as JSON over the WebRTC data channel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import structlog
from aiortc.sdp import SessionDescription, candidate_from_sdp
from fastapi import APIRouter, Header, Request
from fastapi.responses import FileResponse, HTMLResponse
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pydantic import BaseModel, ConfigDict, Field

from agent.calls.media import CallControls, CallRequest
from agent.calls.runner import SAMPLE_RATE
from agent.calls.service import CallPlan, VoiceService
from agent.calls.session import CallSession
from agent.transports.ice_policy import CandidatePolicy
from agent.transports.webrtc_media import VoxdeskWebRTCConnection, batch_audio_input
from control_api import ratelimit
from control_api.deps import client_ip
from control_api.problems import ProblemError
from control_api.security_headers import page_headers

log = structlog.get_logger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
_STATIC_FILES = {"call.js": "text/javascript", "call.css": "text/css"}
# The caller page asks for the microphone; otherwise it is as strict as every page (same origin, never framed).
_PAGE_HEADERS = page_headers(microphone=True)


class WebRTCOffer(BaseModel):
    """An SDP offer from the caller page (or any SmallWebRTC client)."""

    model_config = ConfigDict(extra="ignore")

    sdp: str = Field(min_length=10, max_length=100_000)
    type: Literal["offer"] = "offer"
    pc_id: str | None = Field(default=None, max_length=100)
    restart_pc: bool = False
    embed_key: str | None = Field(default=None, max_length=200)


def _check_offer_sdp(sdp: str) -> None:
    """400 problem unless ``sdp`` parses and offers an audio stream (aiortc accepts almost anything)."""
    try:
        parsed = SessionDescription.parse(sdp)
    except (ValueError, IndexError, KeyError):
        raise ProblemError(400, "The SDP offer could not be parsed.", type_="bad-sdp") from None
    if not any(media.kind == "audio" for media in parsed.media):
        raise ProblemError(400, "The SDP offer has no audio stream.", type_="bad-sdp")


class WebRTCAnswer(BaseModel):
    """The server's SDP answer, the peer-connection id and the stored call's id."""

    sdp: str
    type: str
    pc_id: str
    call_id: str


class IceCandidateIn(BaseModel):
    """One trickled ICE candidate (empty ``candidate``: end of candidates)."""

    candidate: str = Field(default="", max_length=2000)
    sdp_mid: str | None = Field(default=None, max_length=100)
    sdp_mline_index: int | None = Field(default=None, ge=0, le=16)


class IcePatch(BaseModel):
    """Trickled ICE candidates for an existing peer connection."""

    pc_id: str = Field(max_length=100)
    candidates: list[IceCandidateIn] = Field(max_length=50)


class DataChannelClient:
    """Sends call events to the page over the connection's data channel (queued until it opens)."""

    def __init__(self, connection: SmallWebRTCConnection) -> None:
        self._connection = connection

    async def send(self, event: dict[str, Any]) -> None:
        """Send ``event`` as JSON; a closed channel drops it."""
        try:
            self._connection.send_app_message(event)
        except Exception as exc:  # noqa: BLE001 - a closing channel must not break the call
            log.debug("data_channel_send_failed", error_type=type(exc).__name__)


class WebRTCMedia:
    """A SmallWebRTC peer connection's side of a call (a :class:`~agent.calls.media.CallMedia`).

    Args:
        connection: The initialised peer connection (its SDP answer is ready).
        on_closed: Called with the connection once the call has ended (the router forgets it).

    """

    connected_on_answer = False

    def __init__(self, connection: VoxdeskWebRTCConnection, *, on_closed: Callable[[str], None]) -> None:
        self._connection = connection
        self._on_closed = on_closed
        self.client = DataChannelClient(connection)

    def bind(self, call: CallSession, controls: CallControls) -> BaseTransport:
        """A pipecat SmallWebRTC transport on the connection; ICE, hangup and disconnect drive the call."""
        del call
        transport = SmallWebRTCTransport(
            webrtc_connection=self._connection,
            params=TransportParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                audio_in_sample_rate=SAMPLE_RATE,
                audio_out_sample_rate=SAMPLE_RATE,
                # pipecat writes the agent's audio 80 ms at a time (each write is pushed on through the taps after
                # the output): a quarter of the per-frame work of 20 ms. The track still plays it 20 ms a frame,
                # and lets pipecat write the next chunk once the last 60 ms of this one are queued (AHEAD_SECS).
                audio_out_10ms_chunks=8,
            ),
        )
        batch_audio_input(transport)

        @transport.event_handler("on_client_connected")  # type: ignore[untyped-decorator]
        async def on_connected(_transport: Any, _client: Any) -> None:
            await controls.connected()

        @transport.event_handler("on_client_disconnected")  # type: ignore[untyped-decorator]
        async def on_disconnected(_transport: Any, _client: Any) -> None:
            controls.hang_up("caller_disconnected")

        @transport.event_handler("on_app_message")  # type: ignore[untyped-decorator]
        async def on_message(_transport: Any, message: Any, _sender: Any) -> None:
            if isinstance(message, dict) and message.get("type") == "hangup":
                controls.hang_up("caller_hangup")

        return transport

    def attach(self, plan: CallPlan) -> None:
        """Let the echo-aware gate hold the track's look-ahead too."""
        if plan.gate is not None:
            plan.gate.add_listener(self._connection.on_gate)

    async def close(self, reason: str) -> None:
        """Close the peer connection."""
        del reason
        self._on_closed(self._connection.pc_id)
        await self._connection.disconnect()  # type: ignore[no-untyped-call]  # pipecat is untyped


def webrtc_router(voice: VoiceService, *, candidates: CandidatePolicy | None = None) -> APIRouter:
    """The caller page and the WebRTC signalling endpoints of ``voice``.

    Args:
        voice: The voice service calls are set up through.
        candidates: Which server addresses answers may announce (default: every one).

    """
    policy = candidates or CandidatePolicy()

    def answer_of(connection: SmallWebRTCConnection, call_id: str) -> WebRTCAnswer | None:
        answer = connection.get_answer()  # type: ignore[no-untyped-call]  # pipecat is untyped
        if answer is None:
            return None
        return WebRTCAnswer(call_id=call_id, **{**answer, "sdp": policy.filter_sdp(answer["sdp"])})

    router = APIRouter(tags=["voice"])
    connections: dict[str, tuple[SmallWebRTCConnection, CallSession]] = {}

    def forget(pc_id: str) -> None:
        connections.pop(pc_id, None)

    @router.get("/call", response_class=HTMLResponse, include_in_schema=False)
    async def call_page() -> FileResponse:
        """The public caller page."""
        return FileResponse(STATIC_DIR / "call.html", media_type="text/html", headers=_PAGE_HEADERS)

    @router.get("/call/{name}", include_in_schema=False)
    async def call_asset(name: str) -> FileResponse:
        """The caller page's script and style (served here: no CDN)."""
        if name not in _STATIC_FILES:
            raise ProblemError(404, "No such file.", type_="not-found")
        return FileResponse(STATIC_DIR / name, media_type=_STATIC_FILES[name])

    @router.post(
        "/api/voice/webrtc/offer",
        response_model=WebRTCAnswer,
        responses={
            403: {"description": "Embed key missing or wrong."},
            429: {"description": "Voice rate limit reached."},
            503: {"description": "All call lines busy."},
        },
    )
    async def offer(
        body: WebRTCOffer,
        request: Request,
        x_voxdesk_embed_key: str | None = Header(default=None, max_length=200),
    ) -> WebRTCAnswer:
        """Answer a caller's SDP offer and start the call (or renegotiate an existing connection)."""
        if body.pc_id is not None:
            existing = connections.get(body.pc_id)
            if existing is None:
                raise ProblemError(404, "No peer connection with this id.", type_="not-found")
            connection, call = existing
            await connection.renegotiate(sdp=body.sdp, type=body.type, restart_pc=body.restart_pc)
            renegotiated = answer_of(connection, call.call_id)
            if renegotiated is None:
                raise ProblemError(400, "No SDP answer could be made for this offer.", type_="bad-sdp")
            return renegotiated

        voice.check_embed_key(body.embed_key or x_voxdesk_embed_key, channel="webrtc")
        ip = client_ip(request) or "unknown"
        call_request = CallRequest(channel="webrtc", rate_key=f"ip:{ip}", meta={"transport": "smallwebrtc"})
        await voice.admit(rate_key=call_request.rate_key, channel=call_request.channel)  # every attempt counts
        _check_offer_sdp(body.sdp)
        connection = VoxdeskWebRTCConnection(ice_servers=None, audio_in_rate=SAMPLE_RATE)
        try:
            await connection.initialize(sdp=body.sdp, type=body.type)
        except Exception as exc:  # a malformed offer is the client's error
            await connection.disconnect()  # type: ignore[no-untyped-call]  # pipecat is untyped
            raise ProblemError(400, "The SDP offer could not be used.", type_="bad-sdp") from exc
        started = await voice.start_call(call_request, WebRTCMedia(connection, on_closed=forget))
        call = started.call
        answer = answer_of(connection, call.call_id)
        if answer is None:
            started.run.close()
            await call.end("signalling_failed", failed=True)
            raise ProblemError(400, "No SDP answer could be made for this offer.", type_="bad-sdp")
        voice.spawn(started.run, name=f"call-{call.call_id}")
        connections[answer.pc_id] = (connection, call)
        return answer

    @router.patch("/api/voice/webrtc/offer", status_code=204)
    async def ice_candidates(body: IcePatch, request: Request) -> None:
        """Add trickled ICE candidates to an existing peer connection."""
        await ratelimit.hit(voice.state.limiter, "ice", f"ip:{client_ip(request) or 'unknown'}")
        existing = connections.get(body.pc_id)
        if existing is None:
            raise ProblemError(404, "No peer connection with this id.", type_="not-found")
        connection = existing[0]
        for item in body.candidates:
            candidate: Any = None
            if item.candidate:
                try:
                    candidate = candidate_from_sdp(item.candidate.removeprefix("candidate:"))
                except (ValueError, IndexError):
                    raise ProblemError(422, "An ICE candidate could not be parsed.", type_="bad-candidate") from None
                candidate.sdpMid = item.sdp_mid
                candidate.sdpMLineIndex = item.sdp_mline_index
            await connection.add_ice_candidate(candidate)  # type: ignore[no-untyped-call]  # pipecat is untyped

    return router
