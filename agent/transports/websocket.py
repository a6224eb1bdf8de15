"""``WS /api/voice/stream``: a call over one WebSocket for custom clients.

Binary messages are 16-bit little-endian mono PCM at 16 kHz in 20 ms frames, both ways. Text messages
are JSON events: the server sends ``{"type": "call", "call_id": ...}`` first, then ``transcript``
(``role`` caller|agent, ``text``, ``final``), ``latency``, ``clear`` (the agent was interrupted: drop
audio not yet played) and finally ``end`` (``reason``). The client may send ``{"type": "hangup"}``.
Authentication: a bearer access token in the ``Authorization`` header or the ``access_token`` query
parameter; the role needs ``voice:call``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import structlog
from fastapi import APIRouter, WebSocket
from pipecat.frames.frames import Frame, InputAudioRawFrame, InterruptionFrame, OutputAudioRawFrame
from pipecat.serializers.base_serializer import FrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams
from starlette.websockets import WebSocketState

from agent.calls.media import CallControls, CallRequest
from agent.calls.runner import SAMPLE_RATE
from agent.calls.service import VoiceService
from agent.transports.media_socket import (
    CLOSE_BUSY,
    CLOSE_FORBIDDEN,
    CLOSE_RATE_LIMITED,
    CLOSE_UNAUTHENTICATED,
    SocketMedia,
    refuse,
)
from control_api.authn import Credentials, authenticate
from control_api.db.models import User
from control_api.problems import ProblemError
from control_api.rbac import Permission, ensure

log = structlog.get_logger(__name__)
FRAME_BYTES = SAMPLE_RATE // 50 * 2  # 20 ms of 16-bit mono
__all__ = ["CLOSE_BUSY", "CLOSE_FORBIDDEN", "CLOSE_RATE_LIMITED", "CLOSE_UNAUTHENTICATED", "ws_stream_router"]


class PcmJsonSerializer(FrameSerializer):
    """Raw PCM both ways; JSON text for control (``hangup`` in, ``clear`` out on interruption).

    Args:
        on_hangup: Called when the client sends ``{"type": "hangup"}``.

    """

    def __init__(self, *, on_hangup: Callable[[], None]) -> None:
        super().__init__()
        self._on_hangup = on_hangup

    async def serialize(self, frame: Frame) -> str | bytes | None:
        """Agent audio as bytes; an interruption as a ``clear`` event."""
        if isinstance(frame, OutputAudioRawFrame):
            return bytes(frame.audio)
        if isinstance(frame, InterruptionFrame):
            return json.dumps({"type": "clear"})
        return None

    async def deserialize(self, data: str | bytes) -> Frame | None:
        """Caller audio from bytes; ``hangup`` from text (anything else is ignored)."""
        if isinstance(data, bytes):
            if not data or len(data) % 2:
                return None
            return InputAudioRawFrame(audio=data, sample_rate=SAMPLE_RATE, num_channels=1)
        try:
            message = json.loads(data)
        except ValueError:
            return None
        if isinstance(message, dict) and message.get("type") == "hangup":
            self._on_hangup()
        return None


class WebSocketClient:
    """Sends call events as JSON text frames (dropped once the socket is closed)."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket

    async def send(self, event: dict[str, Any]) -> None:
        """Send ``event`` as a text frame."""
        if self._websocket.application_state != WebSocketState.CONNECTED:
            return
        try:
            await self._websocket.send_text(json.dumps(event))
        except Exception as exc:  # noqa: BLE001 - a closing socket must not break the call
            log.debug("ws_event_send_failed", error_type=type(exc).__name__)


def _bearer(websocket: WebSocket) -> str | None:
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token
    return websocket.query_params.get("access_token") or None


class WebSocketMedia(SocketMedia):
    """The WebSocket's side of a call (a :class:`~agent.calls.media.CallMedia`): PCM frames and JSON events.

    Args:
        websocket: The accepted socket.

    """

    def __init__(self, websocket: WebSocket) -> None:
        super().__init__(websocket, WebSocketClient(websocket))

    def serializer(self, controls: CallControls) -> FrameSerializer:
        """Raw PCM and JSON control; the client's ``hangup`` ends the call."""
        return PcmJsonSerializer(on_hangup=lambda: controls.hang_up("caller_hangup"))

    def params(self, serializer: FrameSerializer) -> FastAPIWebsocketParams:
        """16 kHz both ways, in 20 ms frames."""
        params = super().params(serializer)
        params.audio_out_sample_rate = SAMPLE_RATE
        params.audio_out_10ms_chunks = 2
        return params


def ws_stream_router(voice: VoiceService) -> APIRouter:
    """The ``/api/voice/stream`` WebSocket endpoint of ``voice``."""
    router = APIRouter(tags=["voice"])

    async def authenticate_socket(websocket: WebSocket) -> User | None:
        state = voice.state
        try:
            async with state.sessions() as session:
                principal = await authenticate(
                    session,
                    state.cache,
                    Credentials(bearer=_bearer(websocket)),
                    secret=state.settings.auth.secret_key.get_secret_value(),
                )
            ensure(principal.user.role, Permission.VOICE_CALL)
        except ProblemError as problem:
            code = CLOSE_FORBIDDEN if problem.status == 403 else CLOSE_UNAUTHENTICATED
            await refuse(websocket, code, problem.detail)
            return None
        return principal.user

    @router.websocket("/api/voice/stream")
    async def stream(websocket: WebSocket) -> None:
        """One call over this WebSocket (see the module docstring for the protocol)."""
        user = await authenticate_socket(websocket)
        if user is None:
            return
        request = CallRequest(
            channel="websocket", rate_key=f"user:{user.id}", created_by=user.id, meta={"transport": "ws"}
        )
        try:
            await voice.admit(rate_key=request.rate_key, channel=request.channel)
        except ProblemError as problem:
            code = CLOSE_RATE_LIMITED if problem.status == 429 else CLOSE_BUSY
            await refuse(websocket, code, problem.detail)
            return
        await websocket.accept()
        media = WebSocketMedia(websocket)
        started = await voice.start_call(request, media)
        await media.client.send({"type": "call", "call_id": started.call.call_id})
        await started.run

    return router
