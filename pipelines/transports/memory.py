"""An in-memory, real-time-paced audio transport (tests and in-process benchmarks).

The "microphone" streams 20 ms frames continuously (silence when nothing is queued), as a real
transport does; ``say`` queues a clip. The "speaker" plays output at real time and keeps every frame
with its wall-clock time, so tests can check what was heard and benchmarks can time it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
from pipecat.frames.frames import CancelFrame, EndFrame, InputAudioRawFrame, OutputAudioRawFrame, StartFrame
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

__all__ = ["MemoryTransport", "PlayedClip"]

FRAME_MS = 20


@dataclass
class PlayedClip:
    """A clip sent through the microphone: when its first and last voiced frames went out."""

    samples: int
    queued_at: float
    first_voiced_at: float | None = None
    last_voiced_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


def _voiced(chunk: bytes, threshold: int = 300) -> bool:
    samples = np.frombuffer(chunk, dtype="<i2")
    return bool(samples.size) and int(np.abs(samples.astype(np.int32)).max()) > threshold


class _MemoryInput(BaseInputTransport):
    def __init__(self, transport: MemoryTransport, params: TransportParams) -> None:
        super().__init__(params)
        self._owner = transport
        self._mic: asyncio.Task[None] | None = None

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)
        if self._mic is None:
            self._mic = self.create_task(self._microphone(), name="memory_microphone")

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        await self._stop_mic()

    async def cancel(self, frame: CancelFrame) -> None:
        await super().cancel(frame)
        await self._stop_mic()

    async def _stop_mic(self) -> None:
        if self._mic is not None:
            await self.cancel_task(self._mic)
            self._mic = None

    async def _microphone(self) -> None:
        rate = self.sample_rate
        step = rate * 2 * FRAME_MS // 1000
        silence = bytes(step)
        next_at = time.monotonic()
        while True:
            chunk = silence
            clip = self._owner._current
            if clip is not None:
                pcm, played = clip
                chunk = pcm[self._owner._offset : self._owner._offset + step]
                self._owner._offset += step
                now = time.monotonic()
                if _voiced(chunk):
                    played.first_voiced_at = played.first_voiced_at or now
                    played.last_voiced_at = now + len(chunk) / (2 * rate)
                if self._owner._offset >= len(pcm):
                    played.done.set()
                    self._owner._next_clip()
                chunk = chunk.ljust(step, b"\0")
            if self._owner.echo_gain > 0 and self._owner._echo:
                chunk = self._owner._mix_echo(chunk)
            await self.push_audio_frame(InputAudioRawFrame(audio=chunk, sample_rate=rate, num_channels=1))
            next_at += FRAME_MS / 1000
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


class _MemoryOutput(BaseOutputTransport):
    def __init__(self, transport: MemoryTransport, params: TransportParams) -> None:
        super().__init__(params)
        self._owner = transport
        self._next_send = 0.0

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        now = time.monotonic()
        self._owner.heard.append((now, frame.audio))
        if self._owner.echo_gain > 0:
            self._owner._echo += frame.audio
        duration = len(frame.audio) / (2 * frame.sample_rate * frame.num_channels)
        self._next_send = max(self._next_send, now) + duration
        await asyncio.sleep(max(0.0, self._next_send - time.monotonic()))
        return True


class MemoryTransport(BaseTransport):
    """Scripted microphone and recording speaker, both 16-bit mono at ``sample_rate``.

    Args:
        sample_rate: Input and output sample rate.
        echo_gain: Mix this much of the agent's output back into the microphone (acoustic echo).
    """

    def __init__(self, *, sample_rate: int = 16000, echo_gain: float = 0.0) -> None:
        super().__init__(name="MemoryTransport")
        self.sample_rate = sample_rate
        self.echo_gain = echo_gain
        self._echo = bytearray()
        self._params = TransportParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            audio_in_sample_rate=sample_rate,
            audio_out_sample_rate=sample_rate,
            audio_out_end_silence_secs=0,
        )
        self._queue: list[tuple[bytes, PlayedClip]] = []
        self._current: tuple[bytes, PlayedClip] | None = None
        self._offset = 0
        self.heard: list[tuple[float, bytes]] = []
        self._input: _MemoryInput | None = None
        self._output: _MemoryOutput | None = None

    def input(self) -> FrameProcessor:
        """The microphone side."""
        if self._input is None:
            self._input = _MemoryInput(self, self._params)
        return self._input

    def output(self) -> FrameProcessor:
        """The speaker side."""
        if self._output is None:
            self._output = _MemoryOutput(self, self._params)
        return self._output

    def say(self, pcm: bytes) -> PlayedClip:
        """Queue ``pcm`` (16-bit mono at ``sample_rate``) to be spoken into the microphone."""
        played = PlayedClip(samples=len(pcm) // 2, queued_at=time.monotonic())
        self._queue.append((pcm, played))
        if self._current is None:
            self._next_clip()
        return played

    def _mix_echo(self, chunk: bytes) -> bytes:
        n = min(len(chunk), len(self._echo))
        echo = np.frombuffer(bytes(self._echo[:n]).ljust(len(chunk), b"\0"), dtype="<i2").astype(np.int32)
        del self._echo[:n]
        mixed = np.frombuffer(chunk, dtype="<i2").astype(np.int32) + (echo * self.echo_gain).astype(np.int32)
        return bytes(np.clip(mixed, -32768, 32767).astype("<i2").tobytes())

    def _next_clip(self) -> None:
        self._offset = 0
        self._current = self._queue.pop(0) if self._queue else None

    def heard_between(self, start: float, end: float | None = None) -> bytes:
        """Output audio written between two ``time.monotonic()`` instants."""
        return b"".join(a for t, a in self.heard if t >= start and (end is None or t < end))

    def first_voiced_output_after(self, start: float, threshold: int = 300) -> float | None:
        """When the first voiced output frame after ``start`` was written."""
        for t, audio in self.heard:
            if t >= start and _voiced(audio, threshold):
                return t
        return None

    def last_voiced_output(self, threshold: int = 300) -> float | None:
        """When the last voiced output frame was written."""
        for t, audio in reversed(self.heard):
            if _voiced(audio, threshold):
                return t
        return None
