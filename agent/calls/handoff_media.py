"""The human agent's audio leg of a warm handoff: their browser over WebRTC, bridged into the call's pipeline.

The desk posts an SDP offer; :class:`DeskLeg` answers with a plain aiortc peer connection (the same library the
callers' SmallWebRTC transport is built on). The caller's audio, as the call's pipeline receives it (16 kHz mono),
goes out on :class:`CallerAudioTrack`; the human's audio comes in, is resampled to 16 kHz mono with PyAV, and is
handed to ``on_audio`` (the call's :class:`~pipelines.processors.handoff_gate.HandoffGate` plays it to the caller,
and :class:`HumanTranscriber` writes the human's turns into the call's transcript as role ``human``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import structlog
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, AudioResampler

from pipelines.asr.base import ASRBackend

log = structlog.get_logger(__name__)

SAMPLE_RATE = 16000
FRAME_SECS = 0.02
# The caller's audio waiting for the human's ear is capped: a stalled leg must not build up delay.
MAX_BUFFER_SECS = 0.3


class CallerAudioTrack(MediaStreamTrack):
    """What the human hears: the caller's audio from the call's pipeline, 20 ms at a time in real time."""

    kind = "audio"

    def __init__(self, *, sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__()
        self._rate = sample_rate
        self._samples = int(sample_rate * FRAME_SECS)
        self._buffer = bytearray()
        self._cap = int(sample_rate * MAX_BUFFER_SECS) * 2
        self._start: float | None = None
        self._sent = 0
        self.frames_with_audio = 0

    def push(self, pcm: bytes) -> None:
        """Queue caller audio (16-bit mono PCM at the track's rate)."""
        self._buffer += pcm
        if len(self._buffer) > self._cap:
            del self._buffer[: len(self._buffer) - self._cap]

    async def recv(self) -> AudioFrame:
        """The next 20 ms for the human (silence when the caller's audio has not arrived)."""
        if self._start is None:
            self._start = time.monotonic()
        else:
            wait = self._start + self._sent * FRAME_SECS - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.2:
                self._start -= wait  # the loop stalled: resume real time instead of bursting
        size = self._samples * 2
        if len(self._buffer) >= size:
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
            self.frames_with_audio += 1
        else:
            data = bytes(size)
        frame = AudioFrame(format="s16", layout="mono", samples=self._samples)
        frame.planes[0].update(data)
        frame.sample_rate = self._rate
        frame.pts = self._sent * self._samples
        frame.time_base = fractions.Fraction(1, self._rate)
        self._sent += 1
        return frame


class SpeechSegmenter:
    """Cuts a stream of 16-bit mono PCM into utterances by level (the human's mic is close and clean).

    Args:
        sample_rate: The PCM's rate.
        threshold_rms: A 20 ms block at or above this RMS is voiced.
        end_silence_secs: An utterance ends after this much unvoiced audio.
        min_secs: Shorter bursts (a click, a cough) are dropped.
        max_secs: An utterance is cut at this length.

    """

    def __init__(
        self,
        *,
        sample_rate: int = SAMPLE_RATE,
        threshold_rms: float = 300.0,
        end_silence_secs: float = 0.7,
        min_secs: float = 0.3,
        max_secs: float = 20.0,
    ) -> None:
        self._rate = sample_rate
        self._block = int(sample_rate * FRAME_SECS) * 2
        self._threshold = threshold_rms
        self._end_blocks = int(end_silence_secs / FRAME_SECS)
        self._min_bytes = int(min_secs * sample_rate) * 2
        self._max_bytes = int(max_secs * sample_rate) * 2
        self._pending = bytearray()
        self._utterance = bytearray()
        self._voiced_bytes = 0
        self._quiet = 0
        self.started_at: datetime | None = None

    def feed(self, pcm: bytes) -> list[tuple[bytes, datetime]]:
        """Add audio; returns the utterances it completed, each with the time it started."""
        self._pending += pcm
        done: list[tuple[bytes, datetime]] = []
        while len(self._pending) >= self._block:
            block = bytes(self._pending[: self._block])
            del self._pending[: self._block]
            samples = np.frombuffer(block, dtype=np.int16).astype(np.float32)
            voiced = float(np.sqrt(np.mean(samples * samples))) >= self._threshold
            if not self._utterance and not voiced:
                continue
            if not self._utterance:
                self.started_at = datetime.now(UTC)
            self._utterance += block
            if voiced:
                self._voiced_bytes += len(block)
                self._quiet = 0
            else:
                self._quiet += 1
            if self._quiet >= self._end_blocks or len(self._utterance) >= self._max_bytes:
                if self._voiced_bytes >= self._min_bytes:
                    done.append((bytes(self._utterance), self.started_at or datetime.now(UTC)))
                self._utterance.clear()
                self._voiced_bytes = 0
                self._quiet = 0
        return done


TurnWriter = Callable[[str, datetime], Awaitable[None]]


class HumanTranscriber:
    """Recognises the human agent's utterances with the process's recogniser and writes them as turns.

    Args:
        asr: The prewarmed recogniser (must declare ``file_transcription``); ``None``: nothing is transcribed.
        write: Stores one recognised turn (text, start time).
        call_id: The call (logs).

    """

    def __init__(self, *, asr: ASRBackend | None, write: TurnWriter, call_id: str) -> None:
        self._asr = asr if asr is not None and asr.capabilities.file_transcription else None
        self._write = write
        self._call_id = call_id
        self._segmenter = SpeechSegmenter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._order = asyncio.Lock()

    def feed(self, pcm: bytes) -> None:
        """Add the human's audio; each finished utterance is recognised off the audio path."""
        if self._asr is None:
            return
        for utterance, started in self._segmenter.feed(pcm):
            task = asyncio.get_running_loop().create_task(self._recognise(utterance, started))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _recognise(self, pcm: bytes, started: datetime) -> None:
        assert self._asr is not None
        async with self._order:  # turns are written in the order they were spoken
            try:
                transcript = await self._asr.transcribe(pcm, sample_rate=SAMPLE_RATE)
            except Exception as exc:  # noqa: BLE001 - a failed recognition loses one turn, never the call
                log.warning("human_turn_recognition_failed", call_id=self._call_id, error_type=type(exc).__name__)
                return
            text = transcript.text.strip()
            if text:
                await self._write(text, started)

    async def drain(self) -> None:
        """Wait for the utterances being recognised."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


class DeskLeg:
    """One human agent's browser audio in a call.

    Args:
        on_audio: Told each chunk of the human's audio (16-bit mono PCM at 16 kHz).
        call_id: The call (logs).
        filter_sdp: Keeps only the candidates this server may announce (the callers' policy).

    """

    def __init__(
        self,
        *,
        on_audio: Callable[[bytes], Awaitable[None]],
        call_id: str,
        filter_sdp: Callable[[str], str] | None = None,
    ) -> None:
        self._on_audio = on_audio
        self._call_id = call_id
        self._filter = filter_sdp
        self.pc = RTCPeerConnection()
        self.to_human = CallerAudioTrack()
        self._reader: asyncio.Task[None] | None = None
        self.first_audio_at: float | None = None
        self.connected = asyncio.Event()

    async def answer(self, offer_sdp: str) -> str:
        """Answer the desk's offer; ``ValueError`` when it cannot be used."""
        pc = self.pc
        pc.addTrack(self.to_human)

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "audio" and self._reader is None:
                self._reader = asyncio.get_running_loop().create_task(self._read(track), name=f"desk-{self._call_id}")

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("desk_leg_state", call_id=self._call_id, state=pc.connectionState)
            if pc.connectionState == "connected":
                self.connected.set()

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as exc:
            await self.close()
            raise ValueError("unusable SDP offer") from exc
        sdp = pc.localDescription.sdp
        return self._filter(sdp) if self._filter is not None else sdp

    async def _read(self, track: Any) -> None:
        resampler = AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            pcm = b"".join(bytes(f.planes[0])[: f.samples * 2] for f in resampler.resample(frame))
            if pcm:
                if self.first_audio_at is None:
                    self.first_audio_at = time.monotonic()
                await self._on_audio(pcm)

    async def close(self) -> None:
        """Hang up the human's leg; never raises."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        with contextlib.suppress(Exception):
            await self.pc.close()
