"""The WebRTC audio paths around pipecat's SmallWebRTC transport: batched caller input, the agent's Opus packets."""

from __future__ import annotations

import asyncio
import fractions
import io
import subprocess
import wave
from collections import deque
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from av import AudioFrame, AudioResampler, Packet
from pipecat.frames.frames import InputAudioRawFrame
from pipecat.transports.smallwebrtc.transport import RawAudioTrack, SmallWebRTCTransport
from prometheus_client import REGISTRY

from agent.webrtc_media import (
    OPUS_SILENCE,
    VOICE_TAIL_FRAMES,
    QuietAudioTrack,
    VoiceOpusEncoder,
    batch_audio_input,
)

RATE = 16000


def _speech() -> np.ndarray:
    out = subprocess.run(
        ["flite", "-voice", "slt", "-t", "Your reset link is valid for thirty minutes.", "-o", "/dev/stdout"],
        capture_output=True,
        check=True,
    ).stdout
    with wave.open(io.BytesIO(out)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def _decode(packets: list[bytes]) -> np.ndarray:
    """Opus packets → 16 kHz mono, as a browser would play them (aiortc decodes to 48 kHz stereo)."""
    decoder = OpusDecoder()
    resampler = AudioResampler(format="s16", layout="mono", rate=RATE)
    out: list[np.ndarray] = []
    for i, payload in enumerate(packets):
        for frame in decoder.decode(JitterFrame(data=payload, timestamp=i * 960)):
            out.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(cast(AudioFrame, frame)))
    return np.concatenate(out).astype(np.float64)


def _envelope(samples: np.ndarray) -> np.ndarray:
    n = len(samples) // 320
    return np.sqrt(np.mean(samples[: n * 320].reshape(n, 320) ** 2, axis=1))


def test_voice_encoder_makes_one_small_packet_per_frame_that_decodes_to_the_voice() -> None:
    speech = _speech()
    encoder = VoiceOpusEncoder(RATE)
    frames = len(speech) // 320
    packets = [p for i in range(frames) for p in encoder.encode(speech[i * 320 : (i + 1) * 320].tobytes())]
    assert len(packets) == frames
    assert np.mean([len(p) for p in packets]) < 150, "mono wideband, not 96 kbit/s stereo"
    decoded = _envelope(_decode(packets))
    source = _envelope(speech.astype(np.float64))
    n = min(len(source), len(decoded)) - 3
    # The codec delays the voice by a few ms; the loudness contour over 20 ms frames follows the source's.
    best = max(float(np.corrcoef(source[:n], decoded[lag : lag + n])[0, 1]) for lag in range(3))
    assert best > 0.9


def _source(chunks: list[bytes]) -> RawAudioTrack:
    track = RawAudioTrack(sample_rate=RATE)
    track._chunk_queue = deque((chunk, None) for chunk in chunks)
    return track


def test_track_sends_the_voice_then_winds_down_to_pre_encoded_silence() -> None:
    speech = _speech()[: 320 * 10]
    chunks = [speech[i : i + 160].tobytes() for i in range(0, len(speech), 160)]  # pipecat's 10 ms chunks
    track = QuietAudioTrack(_source(chunks), sample_rate=RATE, opus_silence=True)

    async def take(n: int) -> list[Packet]:
        return [cast(Packet, await track.recv()) for _ in range(n)]

    packets = asyncio.run(take(10 + VOICE_TAIL_FRAMES + 2))
    assert all(isinstance(p, Packet) for p in packets)
    assert [p.pts for p in packets] == [i * 960 for i in range(len(packets))], "one 48 kHz RTP clock"
    payloads = [bytes(p) for p in packets]
    assert all(p != OPUS_SILENCE for p in payloads[: 10 + VOICE_TAIL_FRAMES])
    assert payloads[10 + VOICE_TAIL_FRAMES :] == [OPUS_SILENCE, OPUS_SILENCE]
    decoded = _decode(payloads[:10])
    assert np.sqrt(np.mean(decoded**2)) > 0.3 * np.sqrt(np.mean(speech.astype(np.float64) ** 2))


def test_track_holds_the_voice_while_paused() -> None:
    speech = _speech()[: 320 * 4]
    track = QuietAudioTrack(
        _source([speech[i : i + 160].tobytes() for i in range(0, len(speech), 160)]),
        sample_rate=RATE,
        opus_silence=True,
    )
    track.held = True

    async def take(n: int) -> list[bytes]:
        return [bytes(cast(Packet, await track.recv())) for _ in range(n)]

    assert asyncio.run(take(3)) == [OPUS_SILENCE] * 3
    track.held = False
    assert all(p != OPUS_SILENCE for p in asyncio.run(take(4))), "the held voice plays on where it stopped"


class _Wrapper:
    """pipecat's SmallWebRTCTrack as the reader sees it: ``recv()`` over aiortc's track."""

    def __init__(self, track: RemoteStreamTrack) -> None:
        self._track = track

    async def recv(self) -> Any:
        return await self._track.recv()


def _decoded_frame(value: int, pts: int) -> AudioFrame:
    """A 20 ms frame as aiortc's Opus decoder gives it: 48 kHz stereo."""
    frame = AudioFrame.from_ndarray(np.full((1, 960 * 2), value, dtype=np.int16), layout="stereo")
    frame.sample_rate = 48000
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, 48000)
    return frame


def test_reader_hands_on_what_is_waiting_as_one_frame_and_keeps_up_frame_by_frame() -> None:
    remote = RemoteStreamTrack(kind="audio")
    client = SimpleNamespace(
        _audio_in_resampler=AudioResampler(format="s16", layout="mono", rate=RATE),
        _in_sample_rate=RATE,
        _audio_in_layout="mono",
        _audio_in_channels=1,
        _audio_input_track=_Wrapper(remote),
    )
    batch_audio_input(cast(SmallWebRTCTransport, SimpleNamespace(_client=client)), max_frames=5)

    async def scenario() -> list[InputAudioRawFrame]:
        reader = client.read_audio_frame()
        got: list[InputAudioRawFrame] = []
        # Seven frames waiting (the loop fell behind): five, then two.
        for i in range(7):
            remote._queue.put_nowait(_decoded_frame(1000 + i, i * 960))
        got.append(await anext(reader))
        assert remote._queue.qsize() == 2
        got.append(await anext(reader))
        assert remote._queue.qsize() == 0
        # Keeping up: one frame at a time, as it arrives.
        remote._queue.put_nowait(_decoded_frame(2000, 7 * 960))
        got.append(await anext(reader))
        # The track ends: the reader lets go of it rather than spinning on errors.
        remote._queue.put_nowait(None)
        pending = asyncio.ensure_future(anext(reader))
        await asyncio.sleep(0.05)
        assert client._audio_input_track is None
        pending.cancel()
        return got

    def batches() -> tuple[float, float]:
        count = REGISTRY.get_sample_value("voxdesk_webrtc_input_batch_frames_count") or 0.0
        return count, REGISTRY.get_sample_value("voxdesk_webrtc_input_batch_frames_sum") or 0.0

    before = batches()
    frames = asyncio.run(scenario())
    after = batches()
    assert (after[0] - before[0], after[1] - before[1]) == (3, 8), "each read's batch size is a metric"
    assert all(f.sample_rate == RATE and f.num_channels == 1 for f in frames)
    assert frames[0].pts == 0 and frames[1].pts == 5 * 960 and frames[2].pts == 7 * 960
    # 16 kHz mono of all eight 20 ms frames (the resampler holds back a few ms at the start).
    assert 8 * 640 - 200 <= sum(len(f.audio) for f in frames) <= 8 * 640
    samples = np.frombuffer(b"".join(f.audio for f in frames), dtype=np.int16)
    values = [v for v in dict.fromkeys(int(x) for x in samples) if v in range(1000, 1007) or v == 2000]
    assert values == [1000, 1001, 1002, 1003, 1004, 1005, 1006, 2000], "in order, none lost"


def test_reader_survives_an_ended_track_error() -> None:
    class Ended:
        async def recv(self) -> Any:
            raise MediaStreamError

    client = SimpleNamespace(
        _audio_in_resampler=AudioResampler(format="s16", layout="mono", rate=RATE),
        _in_sample_rate=RATE,
        _audio_in_layout="mono",
        _audio_in_channels=1,
        _audio_input_track=Ended(),
    )
    batch_audio_input(cast(SmallWebRTCTransport, SimpleNamespace(_client=client)))

    async def scenario() -> None:
        pending = asyncio.ensure_future(anext(client.read_audio_frame()))
        await asyncio.sleep(0.05)
        assert client._audio_input_track is None
        pending.cancel()

    asyncio.run(scenario())
