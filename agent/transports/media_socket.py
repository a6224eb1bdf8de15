"""One call over one WebSocket (pipecat's ``FastAPIWebsocketTransport``): what every socket transport shares.

The custom PCM stream, Twilio and Telnyx media streams are subclasses.

A subclass gives the serializer and the audio parameters; this base builds the transport, ends the call when the
socket goes away, closes the socket when the call ends, and refuses a socket with a close code the client sees.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from fastapi import WebSocket
from pipecat.frames.frames import Frame, InputDTMFFrame
from pipecat.serializers.base_serializer import FrameSerializer
from pipecat.transports.base_transport import BaseTransport
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from starlette.websockets import WebSocketDisconnect, WebSocketState

from agent.calls.channels import ClientChannel, NullChannel
from agent.calls.handoff import CallHandoff
from agent.calls.media import CallControls, CallRequest, StartedCall
from agent.calls.runner import SAMPLE_RATE
from agent.calls.service import CallPlan, VoiceService
from agent.calls.session import CallSession
from agent.transports.digits import Transfer, caller_digit

# Close codes in the private range (4000-4999), mirroring the HTTP statuses.
CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN, CLOSE_RATE_LIMITED, CLOSE_BUSY = 4401, 4403, 4429, 4503
# Ends after which the caller's side is already gone: a provider's REST hang-up is not sent.
CALLER_ENDED = frozenset({"caller_hangup", "caller_disconnected", "caller_cancelled", "transferred"})
# Told (call, its controls, the digit) for each DTMF digit a provider's stream carries.
DigitListener = Callable[[CallSession, CallControls, str], None]


async def refuse(websocket: WebSocket, code: int, reason: str) -> None:
    """Refuse ``websocket`` with ``code`` (accepted first: a close before accept is a bare 403 to the client)."""
    await websocket.accept()
    await websocket.close(code=code, reason=reason[:120])


def _tap_digits(serializer: FrameSerializer, listener: Callable[[str], None]) -> None:
    """Tell ``listener`` each DTMF digit ``serializer`` reads (the frame still goes on into the pipeline)."""
    deserialize = serializer.deserialize

    async def tapped(data: str | bytes) -> Frame | None:
        frame = await deserialize(data)
        if isinstance(frame, InputDTMFFrame):
            listener(str(frame.button.value))
        return frame

    setattr(serializer, "deserialize", tapped)  # noqa: B010 - one instance's method, wrapped


def provider_url(base: str | None, url: str, *, websocket: bool) -> str:
    """The URL a provider requested: the configured public URL's origin (behind a proxy), else the one received."""
    if base is None:
        return url
    path = url.split("://", 1)[-1]
    path = path[path.find("/") :] if "/" in path else "/"
    origin = base.rstrip("/")
    if websocket:
        origin = origin.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return origin + path


class SocketMedia:
    """The WebSocket's side of a call (a :class:`~agent.calls.media.CallMedia`); subclasses pick the serializer.

    Args:
        websocket: The accepted socket.
        client: Where the call's live events go (``NullChannel`` for a telephony provider).

    Attributes:
        disconnect_reason: The call's end reason when the socket closes under it.

    """

    connected_on_answer = True
    disconnect_reason = "caller_disconnected"

    def __init__(self, websocket: WebSocket, client: ClientChannel | None = None) -> None:
        self.websocket = websocket
        self.client: ClientChannel = client or NullChannel()
        # Told each DTMF digit the serializer reads (a provider's ``dtmf`` event); None: digits pass unseen.
        self.on_digit: DigitListener | None = None

    def serializer(self, controls: CallControls) -> FrameSerializer:
        """The frame serializer of this socket's wire format."""
        raise NotImplementedError

    def params(self, serializer: FrameSerializer) -> FastAPIWebsocketParams:
        """Audio both ways at the pipeline's rate in and the serializer's choice out (a subclass may narrow it)."""
        return FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            audio_in_sample_rate=SAMPLE_RATE,
            add_wav_header=False,
            serializer=serializer,
            allowed_origins=[],
        )

    def bind(self, call: CallSession, controls: CallControls) -> BaseTransport:
        """Pipecat's WebSocket transport over the socket; the socket closing ends the call."""
        serializer = self.serializer(controls)
        if self.on_digit is not None:
            _tap_digits(serializer, partial(self.on_digit, call, controls))
        transport = FastAPIWebsocketTransport(self.websocket, self.params(serializer))

        @transport.event_handler("on_client_disconnected")  # type: ignore[untyped-decorator]
        async def on_disconnected(_transport: Any, _ws: Any) -> None:
            controls.hang_up(self.disconnect_reason)  # read now: a transport may have learnt why (a transfer)

        return transport

    def attach(self, plan: CallPlan) -> None:
        """Nothing to attach: the far end drops queued audio on the serializer's ``clear`` event."""
        del plan

    async def close(self, reason: str) -> None:
        """Close the socket normally (the call has ended); never raises."""
        del reason
        if self.websocket.application_state == WebSocketState.CONNECTED:
            try:
                await self.websocket.close(code=1000)
            except (RuntimeError, WebSocketDisconnect):
                return


async def start_provider_call(
    voice: VoiceService,
    request: CallRequest,
    media: SocketMedia,
    *,
    transfer: Transfer,
    transfer_target: str | None,
    provider: str,
) -> StartedCall:
    """Start a telephony provider stream's call (Twilio, Telnyx).

    The provider's ``dtmf`` events follow the phone lines' one DTMF rule (stored; 0 asks for a person, and with
    ``transfer_target`` a 0 nobody takes is cold-transferred), and a persona's cold transfer goes through
    ``transfer`` (the provider's REST API).
    """

    def on_digit(call: CallSession, controls: CallControls, digit: str) -> None:
        voice.spawn(
            caller_digit(
                voice.state.sessions, call, controls, digit, transfer=transfer, transfer_target=transfer_target
            ),
            name=f"{provider}-dtmf-{call.call_id}",
        )

    media.on_digit = on_digit
    started = await voice.start_call(request, media)
    if isinstance(started.call.handoff, CallHandoff):
        started.call.handoff.cold_transfer = transfer
    return started
