"""A scripted caller over loopback WebRTC (aiortc): speaks PCM into the call and times what comes back.

It behaves like the caller page: audio transceiver first, then video, a data channel that pings every second,
the offer posted once ICE gathering is complete. Sent audio is paced in real time (20 ms frames); received
agent audio is reduced to a 20 ms energy envelope with arrival times, from which turn latency (last voiced
frame sent → first voiced frame received) and barge-in reaction (speech onset sent → agent audio quiet) are
measured.
"""

from __future__ import annotations

import asyncio
import bisect
import fractions
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import av
import httpx
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from agent.transports.webrtc_media import (
    OPUS_SILENCE,
    VoiceOpusEncoder,
    install_quiet_encoder,
    tune_audio_receivers,
)

RATE = 16000
FRAME_SAMPLES = RATE // 50  # 20 ms
FRAME_BYTES = FRAME_SAMPLES * 2
VOICED_RMS = 300.0  # int16 RMS of a 20 ms frame that counts as speech


def rms(pcm: bytes | np.ndarray[Any, Any]) -> float:
    """The root mean square of 16-bit samples (0 for none)."""
    samples = np.frombuffer(pcm, dtype=np.int16) if isinstance(pcm, bytes | bytearray) else pcm
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


# Questions are spoken by many callers: each is Opus-encoded once per process, not once per call.
_ENCODED: dict[bytes, list[tuple[bytes, bool]]] = {}


def _encoded(pcm: bytes) -> list[tuple[bytes, bool]]:
    """``pcm`` as 20 ms Opus packets (mono 16 kHz, like the agent's voice), each with whether it is voiced."""
    packets = _ENCODED.get(pcm)
    if packets is None:
        encoder = VoiceOpusEncoder(RATE)
        packets = []
        for i in range(0, len(pcm), FRAME_BYTES):
            chunk = pcm[i : i + FRAME_BYTES].ljust(FRAME_BYTES, b"\0")
            packets.extend((packet, rms(chunk) >= VOICED_RMS) for packet in encoder.encode(chunk))
        _ENCODED[pcm] = packets
    return packets


class SpeakerTrack(MediaStreamTrack):
    """An audio track that sends silence until told to say something, in real time.

    Once the sender has a ``QuietOpusEncoder`` (``opus_silence``), speech goes out as Opus packets encoded once
    per question and silence as the pre-encoded silence packet, the way a browser with DTX costs nothing while
    quiet: the load generator then spends its CPU on being many callers, not on re-encoding the same audio.
    """

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: deque[tuple[bytes, bool]] = deque()
        self._pts = 0
        self._start: float | None = None
        self.last_voiced_sent: float | None = None
        self.first_voiced_sent: float | None = None
        self._done: asyncio.Event | None = None
        self.opus_silence = False  # set once the sender's encoder is a QuietOpusEncoder

    def say(self, pcm: bytes) -> asyncio.Event:
        """Queue ``pcm`` (16 kHz mono 16-bit); the returned event is set once all of it has been sent."""
        self.first_voiced_sent = None
        self.last_voiced_sent = None
        if self.opus_silence:
            self._queue.extend(_encoded(pcm))
        else:
            for i in range(0, len(pcm), FRAME_BYTES):
                chunk = pcm[i : i + FRAME_BYTES].ljust(FRAME_BYTES, b"\0")
                self._queue.append((chunk, rms(chunk) >= VOICED_RMS))
        self._done = asyncio.Event()
        return self._done

    async def recv(self) -> av.AudioFrame | av.Packet[Any]:
        """The next 20 ms frame, released at its real-time moment."""
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._pts / RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._pts += FRAME_SAMPLES
        if self._queue:
            payload, voiced = self._queue.popleft()
            if voiced:
                self.last_voiced_sent = time.monotonic()
                if self.first_voiced_sent is None:
                    self.first_voiced_sent = self.last_voiced_sent
            if not self._queue and self._done is not None:
                self._done.set()
        elif self.opus_silence:
            payload = OPUS_SILENCE
        else:
            payload = bytes(FRAME_BYTES)
        if self.opus_silence:
            return av.Packet(payload)  # the QuietOpusEncoder stamps it on the sender's RTP clock
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(payload)
        frame.sample_rate = RATE
        frame.pts = self._pts - FRAME_SAMPLES
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


@dataclass
class Received:
    """Energy envelope of the agent's audio as it arrived: (arrival time, RMS) per decoded frame.

    The waits re-check their question on every arrival, so each question resumes its scan where the last
    check stopped (arrival times only grow): a long call costs the same per frame as a short one.
    """

    frames: list[tuple[float, float]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _scans: dict[tuple[str, float, float], tuple[int, float | None]] = field(default_factory=dict)

    def add(self, at: float, rms: float) -> None:
        self.frames.append((at, rms))
        self.changed.set()

    def _resume(self, key: tuple[str, float, float]) -> tuple[int, float | None]:
        scan = self._scans.get(key)
        if scan is None:
            scan = (bisect.bisect_left(self.frames, key[1], key=lambda f: f[0]), None)
        return scan

    def first_voiced_after(self, since: float) -> float | None:
        key = ("voiced", since, 0.0)
        i, _ = self._resume(key)
        frames = self.frames
        while i < len(frames):
            t, r = frames[i]
            if t >= since and r >= VOICED_RMS:
                self._scans[key] = (i, None)
                return t
            i += 1
        self._scans[key] = (i, None)
        return None

    def quiet_from(self, since: float, *, hold: float) -> float | None:
        """Start of the first run of unvoiced audio at least ``hold`` seconds long after ``since``."""
        key = ("quiet", since, hold)
        i, start = self._resume(key)
        frames = self.frames
        while i < len(frames):
            t, r = frames[i]
            if t < since:  # asked before ``since`` had arrived
                pass
            elif r < VOICED_RMS:
                start = t if start is None else start
                if t - start >= hold:
                    self._scans[key] = (i, start)
                    return start
            else:
                start = None
            i += 1
        self._scans[key] = (i, start)
        return None

    async def wait(self, predicate: Any, *, within: float) -> Any:
        """Wait (on arrivals, not on a clock) until ``predicate()`` is truthy."""
        deadline = time.monotonic() + within
        while True:
            value = predicate()
            if value:
                return value
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=remaining)
            except TimeoutError:
                return predicate() or None


class WebRTCCaller:
    """One scripted call to ``base_url``'s WebRTC endpoint."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.pc = RTCPeerConnection()
        self.speaker = SpeakerTrack()
        self.received = Received()
        self.events: list[dict[str, Any]] = []
        self.call_id: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.ended = asyncio.Event()

    async def connect(self) -> None:
        """Offer, answer, and start reading the agent's audio."""
        self.pc.addTransceiver(self.speaker, direction="sendrecv")
        self.pc.addTransceiver("video", direction="sendrecv")
        channel = self.pc.createDataChannel("voxdesk")

        @channel.on("open")
        def _open() -> None:
            async def ping() -> None:
                while channel.readyState == "open":
                    channel.send(f"ping: {time.time()}")
                    await asyncio.sleep(1.0)

            self._tasks.append(asyncio.create_task(ping()))

        @channel.on("message")
        def _message(message: str) -> None:
            try:
                event = json.loads(message)
            except ValueError:
                return
            event["at"] = time.monotonic()
            self.events.append(event)
            if event.get("type") == "end":
                self.ended.set()

        @self.pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._tasks.append(asyncio.create_task(self._read(track)))

        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with httpx.AsyncClient(timeout=60) as http:
            response = await http.post(
                self.base_url + "/api/voice/webrtc/offer",
                json={"sdp": self.pc.localDescription.sdp, "type": self.pc.localDescription.type},
            )
        response.raise_for_status()
        answer = response.json()
        self.call_id = answer["call_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        # Like a browser on loopback: NetEQ keeps ~1 frame (not aiortc's fixed 80 ms prefetch), and it decodes at
        # the rate it plays (not 48 kHz stereo on a thread).
        tune_audio_receivers(self.pc, sample_rate=RATE)
        # Like a browser's DTX: silence costs no encoding.
        self.speaker.opus_silence = install_quiet_encoder(self.pc)

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            samples = frame.to_ndarray()
            if samples.ndim > 1 and frame.layout.name == "stereo":
                samples = samples.reshape(-1, 2)[:, 0]
            self.received.add(time.monotonic(), rms(np.asarray(samples, dtype=np.int16).ravel()))

    async def wait_quiet(self, *, since: float, hold: float, within: float) -> float | None:
        """Wait until the agent has been quiet for ``hold`` seconds after ``since``."""
        quiet: float | None = await self.received.wait(
            lambda: self.received.quiet_from(since, hold=hold), within=within
        )
        return quiet

    async def close(self) -> None:
        """Hang up."""
        for task in self._tasks:
            task.cancel()
        await self.pc.close()
