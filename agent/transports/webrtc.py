"""WebRTC calls: the public caller page (``/call``) and SmallWebRTC signalling (``/api/voice/webrtc/offer``).

The page posts an SDP offer once its ICE gathering is complete (loopback/LAN, no STUN needed); the
server answers, stores the call, and runs its pipeline on the connection. Live transcript, latency
and the end of the call reach the page as JSON over the WebRTC data channel.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

import structlog
from aiortc.sdp import SessionDescription, candidate_from_sdp
from fastapi import APIRouter, Header, Request
from fastapi.responses import FileResponse, HTMLResponse
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pydantic import BaseModel, ConfigDict, Field

from agent.calls.runner import SAMPLE_RATE, run_call
from agent.calls.service import VoiceService
from agent.calls.session import CallSession
from agent.transports.webrtc_media import VoxdeskWebRTCConnection, batch_audio_input
from control_api.problems import ProblemError

log = structlog.get_logger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
_STATIC_FILES = {"call.js": "text/javascript", "call.css": "text/css"}


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


def webrtc_router(voice: VoiceService) -> APIRouter:
    """The caller page and the WebRTC signalling endpoints of ``voice``."""
    router = APIRouter(tags=["voice"])
    connections: dict[str, tuple[SmallWebRTCConnection, CallSession]] = {}

    @router.get("/call", response_class=HTMLResponse, include_in_schema=False)
    async def call_page() -> FileResponse:
        """The public caller page."""
        return FileResponse(STATIC_DIR / "call.html", media_type="text/html")

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
            answer = connection.get_answer()  # type: ignore[no-untyped-call]  # pipecat is untyped
            return WebRTCAnswer(call_id=call.call_id, **answer)

        voice.check_embed_key(body.embed_key or x_voxdesk_embed_key, channel="webrtc")
        ip = request.client.host if request.client else "unknown"
        await voice.admit(rate_key=f"ip:{ip}", channel="webrtc")  # every attempt counts, well-formed or not
        _check_offer_sdp(body.sdp)
        persona = await voice.active_persona()
        connection = VoxdeskWebRTCConnection(ice_servers=None, audio_in_rate=SAMPLE_RATE)
        try:
            await connection.initialize(sdp=body.sdp, type=body.type)
        except Exception as exc:  # a malformed offer is the client's error
            await connection.disconnect()  # type: ignore[no-untyped-call]  # pipecat is untyped
            raise ProblemError(400, "The SDP offer could not be used.", type_="bad-sdp") from exc
        call = await voice.open_call(
            channel="webrtc", client=DataChannelClient(connection), persona=persona, meta={"transport": "smallwebrtc"}
        )
        transport = SmallWebRTCTransport(
            webrtc_connection=connection,
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
        client_ready = asyncio.Event()

        @transport.event_handler("on_client_connected")  # type: ignore[untyped-decorator]
        async def on_connected(_transport: Any, _client: Any) -> None:
            await call.activate()
            client_ready.set()

        @transport.event_handler("on_client_disconnected")  # type: ignore[untyped-decorator]
        async def on_disconnected(_transport: Any, _client: Any) -> None:
            voice.spawn(call.end("caller_disconnected"), name=f"end-{call.call_id}")

        @transport.event_handler("on_app_message")  # type: ignore[untyped-decorator]
        async def on_message(_transport: Any, message: Any, _sender: Any) -> None:
            if isinstance(message, dict) and message.get("type") == "hangup":
                voice.spawn(call.end("caller_hangup"), name=f"end-{call.call_id}")

        async def close_connection(_reason: str) -> None:
            connections.pop(connection.pc_id, None)
            await connection.disconnect()  # type: ignore[no-untyped-call]  # pipecat is untyped

        call.on_stop(close_connection)
        try:
            plan = voice.pipeline_factory(transport=transport, call=call, persona=persona.spec)
        except Exception:
            await call.end("pipeline_error", failed=True)
            raise
        if plan.gate is not None:
            plan.gate.add_listener(connection.on_gate)
        voice.spawn(
            run_call(
                call,
                plan.worker,
                initial_frames=voice.greeting_frames(persona.spec),
                client_ready=client_ready,
                end_reason=plan.end_reason,
            ),
            name=f"call-{call.call_id}",
        )
        answer = connection.get_answer()  # type: ignore[no-untyped-call]  # pipecat is untyped
        if answer is None:
            await call.end("signalling_failed", failed=True)
            raise ProblemError(400, "No SDP answer could be made for this offer.", type_="bad-sdp")
        connections[answer["pc_id"]] = (connection, call)
        return WebRTCAnswer(call_id=call.call_id, **answer)

    @router.patch("/api/voice/webrtc/offer", status_code=204)
    async def ice_candidates(body: IcePatch) -> None:
        """Add trickled ICE candidates to an existing peer connection."""
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
