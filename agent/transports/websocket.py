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

import jwt
import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pipecat.frames.frames import Frame, InputAudioRawFrame, InterruptionFrame, OutputAudioRawFrame
from pipecat.serializers.base_serializer import FrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from starlette.websockets import WebSocketState

from agent.calls.runner import SAMPLE_RATE, run_call
from agent.calls.service import VoiceService
from control_api.db.models import User
from control_api.problems import ProblemError
from control_api.rbac import Permission, has_permission
from control_api.security import decode_access_token

log = structlog.get_logger(__name__)
FRAME_BYTES = SAMPLE_RATE // 50 * 2  # 20 ms of 16-bit mono
# Close codes in the private range (4000-4999), mirroring the HTTP statuses.
CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN, CLOSE_RATE_LIMITED, CLOSE_BUSY = 4401, 4403, 4429, 4503


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


def _token(websocket: WebSocket) -> str | None:
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token
    return websocket.query_params.get("access_token") or None


def ws_stream_router(voice: VoiceService) -> APIRouter:
    """The ``/api/voice/stream`` WebSocket endpoint of ``voice``."""
    router = APIRouter(tags=["voice"])

    async def refuse(websocket: WebSocket, code: int, reason: str) -> None:
        # Accept first so that the client sees the close code and reason (a close before accept is a bare 403).
        await websocket.accept()
        await websocket.close(code=code, reason=reason)

    async def authenticate(websocket: WebSocket) -> User | None:
        token = _token(websocket)
        if token is None:
            await refuse(websocket, CLOSE_UNAUTHENTICATED, "authentication required")
            return None
        try:
            claims = decode_access_token(token, secret=voice.state.settings.auth.secret_key.get_secret_value())
        except jwt.InvalidTokenError:
            await refuse(websocket, CLOSE_UNAUTHENTICATED, "invalid or expired token")
            return None
        async with voice.state.sessions() as session:
            user = await session.get(User, str(claims["sub"]))
        if user is None or not user.is_active:
            await refuse(websocket, CLOSE_UNAUTHENTICATED, "account not active")
            return None
        if not has_permission(user.role, Permission.VOICE_CALL):
            await refuse(websocket, CLOSE_FORBIDDEN, "role may not place calls")
            return None
        return user

    @router.websocket("/api/voice/stream")
    async def stream(websocket: WebSocket) -> None:
        """One call over this WebSocket (see the module docstring for the protocol)."""
        user = await authenticate(websocket)
        if user is None:
            return
        try:
            await voice.admit(rate_key=f"user:{user.id}", channel="websocket")
        except ProblemError as problem:
            code = CLOSE_RATE_LIMITED if problem.status == 429 else CLOSE_BUSY
            await refuse(websocket, code, problem.detail[:120])
            return
        await websocket.accept()
        client = WebSocketClient(websocket)
        persona = await voice.active_persona()
        call = await voice.open_call(
            channel="websocket", client=client, persona=persona, created_by=user.id, meta={"transport": "ws"}
        )
        await client.send({"type": "call", "call_id": call.call_id})

        def hangup() -> None:
            voice.spawn(call.end("caller_hangup"), name=f"end-{call.call_id}")

        transport = FastAPIWebsocketTransport(
            websocket,
            FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                audio_in_sample_rate=SAMPLE_RATE,
                audio_out_sample_rate=SAMPLE_RATE,
                audio_out_10ms_chunks=2,
                add_wav_header=False,
                serializer=PcmJsonSerializer(on_hangup=hangup),
                allowed_origins=[],
            ),
        )

        @transport.event_handler("on_client_disconnected")  # type: ignore[untyped-decorator]
        async def on_disconnected(_transport: Any, _ws: Any) -> None:
            voice.spawn(call.end("caller_disconnected"), name=f"end-{call.call_id}")

        async def close_socket(_reason: str) -> None:
            if websocket.application_state == WebSocketState.CONNECTED:
                try:
                    await websocket.close(code=1000)
                except (RuntimeError, WebSocketDisconnect):
                    return

        await call.activate()
        try:
            plan = voice.pipeline_factory(transport=transport, call=call, persona=persona.spec)
        except Exception:
            await call.end("pipeline_error", failed=True)
            raise
        call.on_stop(close_socket)
        await run_call(
            call, plan.worker, initial_frames=voice.greeting_frames(persona.spec), end_reason=plan.end_reason
        )

    return router
