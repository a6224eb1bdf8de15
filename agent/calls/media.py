"""What a transport hands to the one call setup (``VoiceService.start_call``), and what it gets back.

A transport (WebRTC, the WebSocket stream, and next SIP, telephony media streams, LiveKit) only turns its
media into pipeline frames and back: it implements :class:`CallMedia`. Admission, the persona, the call
record, the session and its sink, the pipeline and its run are the setup's job, written once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pipecat.transports.base_transport import BaseTransport

from agent.calls.channels import ClientChannel
from agent.calls.session import CallSession
from control_api.services.personas import DEFAULT_PERSONA

if TYPE_CHECKING:
    from agent.calls.service import CallPlan, VoiceService


TRUNK_KEY_PREFIX = "trunk:"


def rate_limit_name(rate_key: str) -> str:
    """The named rate limit a call with ``rate_key`` counts against: ``phone`` for a trunk, else ``voice``."""
    return "phone" if rate_key.startswith(TRUNK_KEY_PREFIX) else "voice"


@dataclass(frozen=True, slots=True)
class CallRequest:
    """What a transport knows about a call it was offered.

    Attributes:
        channel: The channel the call is counted and stored under (``webrtc``, ``websocket``, ``sip`` ...).
        rate_key: Whose rate limit the call counts against: ``ip:...`` or ``user:...`` under ``voice``,
            ``trunk:...`` under ``phone`` (:func:`rate_limit_name`).
        created_by: The signed-in user placing the call, if any.
        persona: The persona that answers (a dialled number's route picks it on phone lines).
        meta: Transport details stored with the call (never caller data).
        caller_number: The caller's number (a phone line's caller ID), stored in the call's own column.

    """

    channel: str
    rate_key: str
    created_by: str | None = None
    persona: str = DEFAULT_PERSONA
    meta: Mapping[str, Any] = field(default_factory=dict)
    caller_number: str | None = None


class CallControls:
    """What a transport may tell its call: the caller's media is connected, or the caller is gone.

    Args:
        call: The call these controls drive.
        voice: The service that owns the call's tasks.

    """

    def __init__(self, *, call: CallSession, voice: VoiceService) -> None:
        self._call = call
        self._voice = voice
        self.media_ready = asyncio.Event()

    async def connected(self) -> None:
        """The caller's media flows: the call is ``active`` and the greeting may start."""
        if self.media_ready.is_set():
            return
        await self._call.activate()
        self.media_ready.set()

    async def request_handoff(self, reason: str, *, source: str = "dtmf") -> str | None:
        """Hand the call to a human agent (a transport's own trigger: DTMF 0 on phone lines, ``source="dtmf"``).

        The AI goes silent, tells the caller it is connecting them and plays hold audio; the handoff is queued for
        the desk (docs/handoff.md). Returns the handoff's id, or ``None`` when the persona's policy turns this
        trigger (or handoffs) off, or the process runs no handoff desk.
        """
        if self._call.handoff is None:
            return None
        return await self._call.handoff.request(reason, source=source)

    def hang_up(self, reason: str) -> None:
        """End the call (``caller_hangup``, ``caller_disconnected`` ...) without waiting for it."""
        self._voice.spawn(self._call.end(reason), name=f"end-{self._call.call_id}")


class CallMedia(Protocol):
    """A transport's side of one call.

    Attributes:
        connected_on_answer: The media already flows when the call is set up (a WebSocket); False when the
            transport calls :meth:`CallControls.connected` itself once it does (WebRTC's ICE, a SIP ACK).

    """

    connected_on_answer: bool

    @property
    def client(self) -> ClientChannel:
        """Where the call's live events go (data channel, WebSocket text frames, nowhere)."""
        ...

    def bind(self, call: CallSession, controls: CallControls) -> BaseTransport:
        """The pipecat transport of ``call``, wired to ``controls`` for connect, hangup and disconnect."""
        ...

    def attach(self, plan: CallPlan) -> None:
        """Hook transport-side consumers to the built pipeline (e.g. the echo gate); most transports do nothing."""
        ...

    async def close(self, reason: str) -> None:
        """Stop the media (the call has ended); must not raise."""
        ...


@dataclass(frozen=True, slots=True)
class StartedCall:
    """A call set up and ready to run: its session and the coroutine that runs its pipeline to the end."""

    call: CallSession
    run: Coroutine[Any, Any, None]
