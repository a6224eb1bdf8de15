"""A SIP call's media: RTP (aiortp, through aiosipua's ``CallSession``) as a pipecat transport.

The call's audio rate is the negotiated codec's (:class:`AudioFormat`): 8 kHz for PCMU/PCMA, 16 kHz for G.722.
The caller's audio arrives as 20 ms of PCM per packet, already through aiortp's jitter buffer and packet loss
concealment; narrowband audio is resampled to 16 kHz (soxr, pipecat's stream resampler), G.722's goes into the
pipeline as it is. The agent's audio leaves pipecat's output transport at the call's rate in 20 ms chunks
(pipecat resamples it to 8 kHz for G.711), and is sent one RTP packet per chunk on a real-time clock, so that an
interruption drops what was not yet sent. RTP timestamps follow the wall clock in the codec's RTP clock units
(8 kHz for G.722 too, RFC 3551's quirk: 160 per 20 ms packet of 320 samples): a pause in the agent's speech is a
timestamp jump (RFC 3550).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiosipua.rtp_bridge import CallSession as RtpSession
from pipecat.audio.utils import create_stream_resampler
from pipecat.frames.frames import Frame, InputAudioRawFrame, InterruptionFrame, OutputAudioRawFrame, StartFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

from agent.calls.channels import NullChannel
from agent.calls.media import CallControls
from agent.calls.runner import SAMPLE_RATE
from agent.calls.service import CallPlan
from agent.calls.session import CallSession
from agent.transports.sip.metrics import SIP_DTMF

log = structlog.get_logger(__name__)
PHONE_RATE = 8000  # G.711's audio and RTP clock
PTIME_S = 0.02  # one RTP packet: 20 ms of audio


@dataclass(frozen=True)
class AudioFormat:
    """A call's audio as its codec carries it: the PCM rate and the RTP clock rate (they differ for G.722)."""

    rate: int = PHONE_RATE
    clock_rate: int = PHONE_RATE

    @classmethod
    def of(cls, rtp: RtpSession) -> AudioFormat:
        """The format of ``rtp``'s negotiated codec (the session must be started)."""
        return cls(rate=rtp.codec_sample_rate, clock_rate=rtp.clock_rate)

    @property
    def packet_samples(self) -> int:
        """PCM samples in one 20 ms packet."""
        return round(self.rate * PTIME_S)

    @property
    def packet_bytes(self) -> int:
        """Bytes of 16-bit PCM in one 20 ms packet."""
        return self.packet_samples * 2

    @property
    def packet_ticks(self) -> int:
        """RTP timestamp units of one 20 ms packet."""
        return round(self.clock_rate * PTIME_S)


class RtpInput(BaseInputTransport):
    """Caller audio from RTP into the pipeline at 16 kHz."""

    def __init__(self, rtp: RtpSession, params: TransportParams, *, rate: int, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._rtp = rtp
        self._rate = rate
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=500)
        self._resampler = create_stream_resampler()
        self._task: asyncio.Task[None] | None = None

    def feed(self, pcm: bytes, timestamp: int) -> None:
        """Aiortp's audio callback: one decoded frame (dropped when the pipeline is 10 s behind)."""
        del timestamp
        if not self._queue.full():
            self._queue.put_nowait(pcm)

    async def start(self, frame: StartFrame) -> None:
        """Start pushing the caller's audio."""
        await super().start(frame)
        self._rtp.on_audio = self.feed
        if self._task is None:
            self._task = self.create_task(self._pump())
        await self.set_transport_ready(frame)

    async def _pump(self) -> None:
        while True:
            pcm = await self._queue.get()
            audio = pcm if self._rate == SAMPLE_RATE else await self._resampler.resample(pcm, self._rate, SAMPLE_RATE)
            if audio:
                await self.push_audio_frame(InputAudioRawFrame(audio=audio, sample_rate=SAMPLE_RATE, num_channels=1))

    async def _stop(self) -> None:
        self._rtp.on_audio = None
        if self._task is not None:
            await self.cancel_task(self._task)
            self._task = None

    async def stop(self, frame: Any) -> None:
        """Stop reading RTP."""
        await super().stop(frame)
        await self._stop()

    async def cancel(self, frame: Any) -> None:
        """Stop reading RTP."""
        await super().cancel(frame)
        await self._stop()


class RtpOutput(BaseOutputTransport):
    """The agent's audio as RTP, one 20 ms packet per chunk, paced in real time."""

    def __init__(
        self,
        rtp: RtpSession,
        params: TransportParams,
        *,
        is_held: Callable[[], bool],
        audio: AudioFormat,
        **kwargs: Any,
    ) -> None:
        super().__init__(params, **kwargs)
        self._rtp = rtp
        self._audio = audio
        self._is_held = is_held
        self._next_send = 0.0
        self._t0 = time.monotonic()
        self._ts_base = random.getrandbits(32)
        self._next_ts = 0
        self.packets_sent = 0

    async def start(self, frame: StartFrame) -> None:
        """Ready to send."""
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """An interruption restarts the send clock (what was queued is gone)."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            self._next_send = 0.0

    def _timestamp(self) -> int:
        # Wall-clock RTP time, never behind the last packet's end: silence shows as a jump.
        ticks = self._audio.packet_ticks
        now = int((time.monotonic() - self._t0) * self._audio.clock_rate) // ticks * ticks
        ts = max(now, self._next_ts)
        self._next_ts = ts + ticks
        return (self._ts_base + ts) & 0xFFFFFFFF

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        """Send ``frame`` (at the call's rate) as RTP packets, waiting as long as it plays; dropped while held."""
        audio = bytes(frame.audio)
        size = self._audio.packet_bytes
        for offset in range(0, len(audio), size):
            chunk = audio[offset : offset + size].ljust(size, b"\0")
            if not self._is_held():
                self._rtp.send_audio_pcm(chunk, self._timestamp())
                self.packets_sent += 1
            await self._pace()
        return True

    async def _pace(self) -> None:
        now = time.monotonic()
        if self._next_send <= now:
            self._next_send = now
        else:
            await asyncio.sleep(self._next_send - now)
        self._next_send += PTIME_S


class RtpTransport(BaseTransport):
    """A pipecat transport over one call's RTP session."""

    def __init__(self, rtp: RtpSession, *, is_held: Callable[[], bool], call_id: str) -> None:
        super().__init__(input_name=f"sip-in-{call_id}", output_name=f"sip-out-{call_id}")
        audio = AudioFormat.of(rtp)
        params = TransportParams(
            audio_in_enabled=True,
            audio_in_sample_rate=SAMPLE_RATE,
            audio_out_enabled=True,
            audio_out_sample_rate=audio.rate,
            audio_out_10ms_chunks=2,
        )
        self._input = RtpInput(rtp, params, rate=audio.rate, name=self._input_name)
        self._output = RtpOutput(rtp, params, is_held=is_held, audio=audio, name=self._output_name)

    def input(self) -> RtpInput:
        """The caller's side."""
        return self._input

    def output(self) -> RtpOutput:
        """The agent's side."""
        return self._output


class SipMedia:
    """The SIP side of one call (a :class:`~agent.calls.media.CallMedia`): RTP media, DTMF, hold, hang-up.

    Args:
        rtp: The call's negotiated RTP session (started).
        on_close: Called once when the call ends (the endpoint sends BYE unless the caller hung up, and frees
            the trunk line and the RTP port).
        on_digit: Called with each DTMF digit (RFC 4733 or SIP INFO) once the call is set up.

    """

    connected_on_answer = False

    def __init__(
        self,
        rtp: RtpSession,
        *,
        on_close: Callable[[str], Awaitable[None]],
        on_digit: Callable[[SipMedia, str], None],
    ) -> None:
        self.rtp = rtp
        self.client = NullChannel()
        self.held = False
        self.controls: CallControls | None = None
        self.call: CallSession | None = None
        self.transport: RtpTransport | None = None
        self._on_close = on_close
        self._on_digit = on_digit
        self._closed = False

    def bind(self, call: CallSession, controls: CallControls) -> BaseTransport:
        """The RTP transport of ``call``; DTMF events go to the endpoint."""
        self.call = call
        self.controls = controls
        self.transport = RtpTransport(self.rtp, is_held=lambda: self.held, call_id=call.call_id)
        self.rtp.on_dtmf = lambda digit, _duration: self.digit(digit, "rfc4733")
        return self.transport

    def digit(self, digit: str, kind: str) -> None:
        """One DTMF digit from the caller (``kind``: ``rfc4733`` or ``info``)."""
        SIP_DTMF.labels(kind=kind).inc()
        if self.call is not None and not self.call.ended:
            self._on_digit(self, digit)

    def attach(self, plan: CallPlan) -> None:
        """Nothing to attach: the phone network has no look-ahead to hold."""
        del plan

    async def close(self, reason: str) -> None:
        """Stop the media once; the endpoint hangs up (BYE) unless the caller already did."""
        if self._closed:
            return
        self._closed = True
        self.rtp.on_dtmf = None
        self.rtp.on_audio = None
        await self._on_close(reason)
