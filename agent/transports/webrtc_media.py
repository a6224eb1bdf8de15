"""Cheaper WebRTC audio for a call: the agent's voice as ready-made Opus packets, the caller's in batches.

pipecat's ``RawAudioTrack`` hands aiortc a 10 ms frame 100 times a second, silence included, and aiortc resamples
each to 48 kHz stereo, Opus-encodes it on its thread pool, and measures its level sample by sample in Python. An
idle connected call spent most of its CPU there. Here the agent's track sends 20 ms Opus packets it encodes
itself, mono at pipecat's rate (:class:`VoiceOpusEncoder`), and while the agent is silent the same pre-encoded
Opus silence packet, which aiortc only packetises (no resampling, no encoding, no thread hop).

On the way in, :func:`batch_audio_input` hands on the caller's frames already waiting as one frame, so a call whose
event loop has fallen behind catches up instead of queueing in aiortc.

aiortc and pipecat have no setting for any of this: the track is swapped when pipecat installs its own
(:class:`VoxdeskWebRTCConnection`), the sender's encoder is replaced before its first frame
(:func:`install_quiet_encoder`) so that every packet shares one RTP clock, the receivers' jitter buffer and decoder
queue are replaced (:func:`tune_audio_receivers`), and the transport's reader is replaced (:func:`batch_audio_input`).
Each is a patch of :mod:`pipelines.compat`, named below, and steps aside on its own (one log line, the library's
behaviour kept) when the installed pipecat or aiortc differs from what it was written against.
"""

from __future__ import annotations

import asyncio
import fractions
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import structlog
from aiortc.codecs import get_decoder
from aiortc.codecs.opus import SAMPLES_PER_FRAME, OpusEncoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from av import AudioFrame, AudioResampler, Packet
from av.frame import Frame
from pipecat.frames.frames import InputAudioRawFrame
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import RawAudioTrack, SmallWebRTCTransport

from agent.metrics import WEBRTC_INPUT_BATCH
from agent.transports.opus import OPUS_RATES, OpusError, OpusFrameDecoder, OpusFrameEncoder
from pipelines.compat import usable

log = structlog.get_logger(__name__)

__all__ = [
    "MAX_INPUT_BATCH",
    "OPUS_SILENCE",
    "InlineAudioDecoding",
    "QuietAudioTrack",
    "QuietOpusEncoder",
    "VoiceOpusEncoder",
    "VoxdeskWebRTCConnection",
    "batch_audio_input",
    "install_quiet_encoder",
    "tune_audio_receivers",
]

# The library patches (pipelines/compat) this module applies.
BATCHED_READER = "pipecat.smallwebrtc_batched_reader"
QUIET_TRACK = "pipecat.smallwebrtc_quiet_track"
JITTER_PREFETCH = "aiortc.receiver_jitter_prefetch"
INLINE_DECODING = "aiortc.receiver_inline_decoding"
SHARED_CLOCK_ENCODER = "aiortc.sender_shared_clock_encoder"

# One 20 ms Opus frame (CELT, fullband, mono) that decodes to digital silence (RFC 6716 §3.1 TOC 0xF8).
OPUS_SILENCE = b"\xf8\xff\xfe"
FRAME_SECS = 0.02
# pipecat writes the next audio chunk only when the previous one is taken: the track lets it run this far ahead,
# so a busy event loop (many calls) does not leave gaps in the agent's speech. A barge-in pause holds this
# look-ahead and an interruption drops it (``VoxdeskWebRTCConnection.on_gate``), so it never plays late.
AHEAD_SECS = 0.06
# aiortc holds 4 audio packets (80 ms) before decoding the first; 1 is the least that keeps whole frames.
# Every caller utterance and every barge-in reaches the VAD 60 ms sooner; a packet that arrives after its
# successor is then dropped (Opus conceals it), which on loopback and LAN links does not happen.
AUDIO_JITTER_PREFETCH = 1


# The caller's audio frames that are already waiting are handed on together, up to this many (100 ms of 20 ms
# frames): see ``batch_audio_input``.
MAX_INPUT_BATCH = 5


def batch_audio_input(transport: SmallWebRTCTransport, *, max_frames: int = MAX_INPUT_BATCH) -> bool:
    """Make ``transport`` hand on the caller's audio frames that are already waiting as one frame.

    pipecat reads aiortc's decoded frames one at a time, and each one then travels the pipeline on its own (a
    resample, a queue hop per processor, a VAD call). When the event loop falls behind (many calls), aiortc's
    queue grows and so does every later turn's latency, since frames are no cheaper to catch up on than to
    keep up with. Here a read takes the frame it waited for plus those already decoded behind it, so the
    per-frame work is paid once per batch: a call that keeps up sees 20 ms frames as before (nothing waits to
    be batched), and one that has fallen behind catches up. pipecat 1.14's reader, otherwise unchanged, is
    replaced on the transport's client (it has no setting for this).

    Returns:
        Whether the reader was replaced (``False``: the patch steps aside and pipecat's reader is kept).
    """
    if not usable(BATCHED_READER):
        return False
    client = transport._client

    async def read_audio_frame() -> AsyncIterator[InputAudioRawFrame]:
        resampler = client._audio_in_resampler
        assert resampler is not None, "pipecat builds the resampler before it starts reading"
        rate, layout, channels = client._in_sample_rate, client._audio_in_layout, client._audio_in_channels
        while True:
            track = client._audio_input_track
            if track is None:
                await asyncio.sleep(0.01)
                continue
            try:
                frame = await asyncio.wait_for(track.recv(), timeout=2.0)
            except TimeoutError:
                continue
            except MediaStreamError:
                client._audio_input_track = None  # the track ended; a renegotiation brings a new one
                continue
            if not isinstance(frame, AudioFrame):
                await asyncio.sleep(0.01)
                continue
            frames = [frame]
            waiting = getattr(track._track, "_queue", None)  # aiortc's decoded frames not yet read
            while waiting is not None and len(frames) < max_frames and not waiting.empty():
                more = waiting.get_nowait()
                if not isinstance(more, AudioFrame):  # None ends the track: leave it for the next recv()
                    waiting.put_nowait(more)
                    break
                frames.append(more)
            WEBRTC_INPUT_BATCH.observe(len(frames))
            parts: list[bytes] = []
            for item in frames:
                if item.sample_rate == rate and item.layout.name == layout and item.format.name == "s16":
                    parts.append(bytes(item.planes[0])[: item.samples * 2 * channels])  # decoded at the rate already
                    continue
                parts.extend(c.to_ndarray().astype(np.int16).tobytes() for c in resampler.resample(item))
            audio = InputAudioRawFrame(audio=b"".join(parts), sample_rate=rate, num_channels=channels)
            audio.pts = frame.pts
            yield audio

    client.read_audio_frame = read_audio_frame  # type: ignore[method-assign]  # pipecat has no hook for its reader
    return True


class InlineAudioDecoding:
    """Stands in for an aiortc audio receiver's decoder queue: decodes each frame on the event loop as it completes.

    aiortc hands every encoded frame to a decoder thread per receiver, which decodes Opus at 48 kHz stereo and
    hands each decoded frame back to the event loop as a new task (``run_coroutine_threadsafe``); the reader
    then resampled it to the pipeline's 16 kHz mono. Here the frame is decoded where aiortc completes it, straight
    to the pipeline's rate (:class:`~.opus.OpusFrameDecoder`, about 30 µs, the GIL released meanwhile), and
    put on the track's queue: no thread hop, no task, no resampling. Other codecs (G.711) keep aiortc's decoder,
    run inline too.

    The receiver's thread still starts; its one ``get`` waits here until the receiver stops, then ends the track
    as aiortc's own thread does.

    Args:
        receiver: The aiortc audio receiver (its track's queue receives the frames).
        sample_rate: The rate to decode Opus to.
    """

    def __init__(self, receiver: Any, *, sample_rate: int) -> None:
        self._receiver = receiver
        self._rate = sample_rate
        self._time_base = fractions.Fraction(1, 48000)
        self._opus = OpusFrameDecoder(sample_rate)
        self._others: dict[str, Any] = {}
        self._stopped = threading.Event()

    def put(self, task: tuple[Any, Any] | None) -> None:
        """Decode one ``(codec, encoded frame)`` from the receiver and queue its audio; ``None``: the receiver stops."""
        if task is None:
            self._stopped.set()
            return
        codec, encoded = task
        track = self._receiver._track
        if track is None:  # no track to hand audio to (the receiver was never given one)
            return
        output = track._queue
        if codec.name.lower() != "opus":
            decoder = self._others.get(codec.name) or self._others.setdefault(codec.name, get_decoder(codec))
            for decoded in decoder.decode(encoded):
                output.put_nowait(decoded)
            return
        try:
            pcm = self._opus.decode(encoded.data)
        except OpusError as exc:
            log.warning("opus_decode_failed", error=str(exc))
            return
        if not pcm:
            return
        frame = AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
        frame.planes[0].update(pcm)
        frame.sample_rate = self._rate
        frame.pts = encoded.timestamp
        frame.time_base = self._time_base
        output.put_nowait(frame)

    def get(self) -> None:
        """The receiver's decoder thread: nothing to decode there; returns ``None`` (end) once the receiver stops."""
        self._stopped.wait()


def tune_audio_receivers(pc: Any, *, sample_rate: int, prefetch: int = AUDIO_JITTER_PREFETCH) -> int:
    """Give ``pc``'s audio receivers a short jitter buffer and inline decoding to ``sample_rate``.

    Each receiver's jitter buffer releases a frame as soon as it is complete (``prefetch`` frames; aiortc holds
    4), and its frames are decoded on the event loop (:class:`InlineAudioDecoding`). Call after the answer,
    before media flows. aiortc has no setting for either: the receiver's buffer and decoder queue are replaced,
    the queue only while the receiver's decoder thread has not started (that thread keeps the queue it started
    with). Each of the two steps aside on its own (:data:`JITTER_PREFETCH`, :data:`INLINE_DECODING`).

    Returns:
        How many receivers now decode inline.
    """
    short_buffer, decode_inline = usable(JITTER_PREFETCH), usable(INLINE_DECODING)
    inline = 0
    for receiver in pc.getReceivers():
        if getattr(receiver, "_RTCRtpReceiver__kind", None) != "audio":
            continue
        if short_buffer:
            receiver._RTCRtpReceiver__jitter_buffer = JitterBuffer(capacity=16, prefetch=prefetch)
        if decode_inline and getattr(receiver, "_RTCRtpReceiver__decoder_thread", True) is None:
            receiver._RTCRtpReceiver__decoder_queue = InlineAudioDecoding(receiver, sample_rate=sample_rate)
            inline += 1
    return inline


class QuietOpusEncoder(OpusEncoder):
    """aiortc's Opus encoder, with one RTP clock for encoded frames and pre-encoded packets.

    aiortc stamps encoded frames with the encoder's own sample count and pre-encoded packets with their
    ``pts``; mixing the two would make the RTP timestamp jump. Here both advance one counter by the
    samples each payload carries (960 per 20 ms at 48 kHz).
    """

    def __init__(self) -> None:
        super().__init__()
        self._clock = 0

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        """Resample and encode ``frame`` (aiortc runs this on its thread pool)."""
        payloads, _ = super().encode(frame, force_keyframe)
        if not payloads:
            return [], None  # type: ignore[return-value]  # aiortc's own contract: no payload, no timestamp
        stamp = self._clock
        self._clock += SAMPLES_PER_FRAME * len(payloads)
        return payloads, stamp

    def pack(self, packet: Packet[Any]) -> tuple[list[bytes], int]:
        """Pass a pre-encoded 20 ms packet through, stamped on the shared clock."""
        stamp = self._clock
        self._clock += SAMPLES_PER_FRAME
        return [bytes(packet)], stamp


# Frames of silence encoded after the voice, before the pre-encoded silence packet takes over.
VOICE_TAIL_FRAMES = 3


class VoiceOpusEncoder:
    """Encodes the agent's 20 ms frames to Opus as they are, mono at pipecat's rate, on the calling thread.

    aiortc's encoder upsamples every frame to 48 kHz stereo at 96 kbit/s on its thread pool, and the sender
    then measures each frame's level sample by sample in Python on the event loop (RFC 6465's header
    extension, which only mixers read). Encoding the synthesised voice as it is, straight through libopus
    (:class:`~.opus.OpusFrameEncoder`, complexity 1), costs about 50 µs a frame, a third of PyAV's encoder at
    complexity 3, and makes packets of about 80 bytes instead of 250; the receiver decodes Opus at any rate it
    likes.

    Args:
        sample_rate: The rate of the PCM handed to :meth:`encode`.
        bit_rate: Opus bit rate (32 kbit/s is transparent for wideband speech).
    """

    def __init__(self, sample_rate: int, *, bit_rate: int = 32000) -> None:
        self._in_rate = sample_rate
        rate = sample_rate if sample_rate in OPUS_RATES else 16000
        # The browser test recognises what it received at this complexity; each step up costs CPU on the loop.
        self._codec = OpusFrameEncoder(rate, bit_rate=bit_rate, complexity=1)
        self._resampler = (
            None
            if rate == sample_rate
            else AudioResampler(format="s16", layout="mono", rate=rate, frame_size=int(rate * FRAME_SECS))
        )
        self._pts = 0

    def encode(self, pcm: bytes) -> list[bytes]:
        """Opus packets for 20 ms of 16-bit mono PCM (one; none while a resampler fills its first frame)."""
        if self._resampler is None:
            return [self._codec.encode(pcm)]
        frame = AudioFrame.from_ndarray(np.frombuffer(pcm, dtype=np.int16)[None, :], layout="mono")
        frame.sample_rate = self._in_rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self._in_rate)
        self._pts += frame.samples
        return [self._codec.encode(bytes(f.planes[0])[: f.samples * 2]) for f in self._resampler.resample(frame)]


def install_quiet_encoder(pc: Any) -> bool:
    """Give ``pc``'s Opus audio senders a :class:`QuietOpusEncoder` (call after the answer, before media flows).

    Returns:
        Whether every audio sender negotiated Opus and got one; tracks must not send pre-encoded silence
        otherwise (nor when the patch steps aside).
    """
    if not usable(SHARED_CLOCK_ENCODER):
        return False
    installed = False
    for transceiver in pc.getTransceivers():
        if transceiver.kind != "audio" or transceiver.sender is None:
            continue
        codecs = getattr(transceiver, "_codecs", [])
        if not codecs or codecs[0].mimeType.lower() != "audio/opus":
            return False
        transceiver.sender._RTCRtpSender__encoder = QuietOpusEncoder()
        installed = True
    return installed


class QuietAudioTrack(AudioStreamTrack):
    """The agent's outgoing audio: what pipecat queued on its ``RawAudioTrack``, sent 20 ms at a time.

    Reads the 10 ms chunks pipecat queues on ``source``, two per frame, in real time, and resolves the futures
    of what is queued up to :data:`AHEAD_SECS` ahead (which is what paces pipecat's writes). When the sender
    has a :class:`QuietOpusEncoder` (``opus_silence``) every frame leaves as an Opus packet: the voice encoded
    here (:class:`VoiceOpusEncoder`), and with nothing queued, or while ``held`` (a barge-in pause), the
    pre-encoded :data:`OPUS_SILENCE`. Otherwise it hands aiortc PCM frames (zeros for silence).

    Args:
        source: pipecat's track for this call; only its queue is used.
        sample_rate: The rate pipecat writes at.
        opus_silence: Whether the sender's encoder is a :class:`QuietOpusEncoder`.
    """

    def __init__(self, source: RawAudioTrack, *, sample_rate: int, opus_silence: bool) -> None:
        super().__init__()
        self._source = source
        self._sample_rate = sample_rate
        self._samples = int(sample_rate * FRAME_SECS)
        self._silence_bytes = bytes(self._samples * 2)
        self._voice = VoiceOpusEncoder(sample_rate) if opus_silence else None
        self._voice_packets: list[bytes] = []
        self._tail = 0
        self._sent = 0
        self._origin: float | None = None
        self._ahead_bytes = int(sample_rate * AHEAD_SECS) * 2
        self.held = False

    def discard(self) -> None:
        """Drop the queued audio (an interruption): pipecat's pending writes complete at once."""
        self._voice_packets.clear()
        queue = self._source._chunk_queue
        while queue:
            _, future = queue.popleft()
            if future is not None and not future.done():
                future.set_result(True)

    async def recv(self) -> Frame | Packet[Any]:  # type: ignore[override]  # aiortc accepts packets too
        """The next 20 ms of agent audio, at its real-time moment."""
        if self._origin is None:
            self._origin = time.monotonic()
        else:
            wait = self._origin + self._sent * FRAME_SECS - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.2:
                self._origin -= wait  # the loop stalled: resume real time instead of bursting to catch up
        self._sent += 1
        audio = None if self.held else self._take()
        if self._voice is not None:
            if audio is not None:
                self._tail = VOICE_TAIL_FRAMES
            elif self._tail > 0 and not self.held:
                # The voice's encoder winds down on a few frames of its own silence: no click at the switch.
                self._tail -= 1
                audio = self._silence_bytes
            if audio is not None:
                self._voice_packets.extend(self._voice.encode(audio))
            payload = self._voice_packets.pop(0) if self._voice_packets else OPUS_SILENCE
            packet = Packet(payload)
            packet.pts = (self._sent - 1) * SAMPLES_PER_FRAME
            packet.time_base = fractions.Fraction(1, 48000)
            return packet
        if audio is None:
            audio = self._silence_bytes
        frame = AudioFrame.from_ndarray(np.frombuffer(audio, dtype=np.int16)[None, :], layout="mono")
        frame.sample_rate = self._sample_rate
        frame.pts = (self._sent - 1) * self._samples
        frame.time_base = fractions.Fraction(1, self._sample_rate)
        return frame

    def _take(self) -> bytes | None:
        queue = self._source._chunk_queue
        if not queue:
            return None
        parts: list[bytes] = []
        size = 0
        while queue and size < len(self._silence_bytes):
            chunk, future = queue.popleft()
            if future is not None and not future.done():
                future.set_result(True)
            parts.append(chunk)
            size += len(chunk)
        audio = b"".join(parts)
        # Let pipecat write ahead of the play-out point (futures of chunks within the look-ahead are resolved).
        ahead = 0
        for chunk, future in queue:
            ahead += len(chunk)
            if ahead > self._ahead_bytes:
                break
            if future is not None and not future.done():
                future.set_result(True)
        return audio.ljust(len(self._silence_bytes), b"\0")


class VoxdeskWebRTCConnection(SmallWebRTCConnection):
    """pipecat's SmallWebRTC connection, with cheaper audio both ways.

    The agent's audio goes out through a :class:`QuietAudioTrack`; the caller's is decoded inline at
    ``audio_in_rate`` (the pipeline's input rate) by :class:`InlineAudioDecoding`.
    """

    def __init__(self, *args: Any, audio_in_rate: int = 16000, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.audio_in_rate = audio_in_rate
        self.opus_silence = False
        self.audio_track: QuietAudioTrack | None = None

    def on_gate(self, state: str) -> None:
        """Follow the call's agent audio gate: hold the look-ahead while paused, drop it on an interruption."""
        track = self.audio_track
        if track is None:
            return
        if state == "interrupted":
            track.discard()
        track.held = state == "paused"

    async def initialize(self, sdp: str, type: str) -> None:
        """Answer the offer; tune the audio receivers and give the senders the shared-clock encoder."""
        await super().initialize(sdp=sdp, type=type)
        tune_audio_receivers(self.pc, sample_rate=self.audio_in_rate)
        self.opus_silence = install_quiet_encoder(self.pc)

    def replace_audio_track(self, track: Any) -> None:
        """Send pipecat's track through a :class:`QuietAudioTrack` (pipecat's own when that patch steps aside)."""
        if isinstance(track, RawAudioTrack) and usable(QUIET_TRACK):
            track = QuietAudioTrack(track, sample_rate=track._sample_rate, opus_silence=self.opus_silence)
            self.audio_track = track
        super().replace_audio_track(track)  # type: ignore[no-untyped-call]  # pipecat is untyped
