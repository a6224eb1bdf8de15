"""The WebRTC audio paths around pipecat's SmallWebRTC transport: batched caller input, the agent's Opus packets."""

from __future__ import annotations

import asyncio
import fractions
import io
import subprocess
import threading
import wave
from collections import deque
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from av import AudioFrame, AudioResampler, Packet
from pipecat.frames.frames import InputAudioRawFrame
from pipecat.transports.smallwebrtc.transport import RawAudioTrack, SmallWebRTCTransport
from prometheus_client import REGISTRY

from agent.transports.webrtc_media import (
    MAX_INPUT_BATCH,
    OPUS_SILENCE,
    VOICE_TAIL_FRAMES,
    InlineAudioDecoding,
    QuietAudioTrack,
    VoiceOpusEncoder,
    batch_audio_input,
    tune_audio_receivers,
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


def _batched_client(track: Any, *, max_frames: int = MAX_INPUT_BATCH) -> Any:
    """pipecat's SmallWebRTC client as the reader uses it (16 kHz mono in), with the batching reader installed."""
    client = SimpleNamespace(
        _audio_in_resampler=AudioResampler(format="s16", layout="mono", rate=RATE),
        _in_sample_rate=RATE,
        _audio_in_layout="mono",
        _audio_in_channels=1,
        _audio_input_track=track,
    )
    batch_audio_input(cast(SmallWebRTCTransport, SimpleNamespace(_client=client)), max_frames=max_frames)
    return client


def _decoded_frame(value: int, pts: int) -> AudioFrame:
    """A 20 ms frame as aiortc's Opus decoder gives it: 48 kHz stereo."""
    frame = AudioFrame.from_ndarray(np.full((1, 960 * 2), value, dtype=np.int16), layout="stereo")
    frame.sample_rate = 48000
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, 48000)
    return frame


def test_reader_hands_on_what_is_waiting_as_one_frame_and_keeps_up_frame_by_frame() -> None:
    remote = RemoteStreamTrack(kind="audio")
    client = _batched_client(_Wrapper(remote), max_frames=5)

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

    client = _batched_client(Ended())

    async def scenario() -> None:
        pending = asyncio.ensure_future(anext(client.read_audio_frame()))
        await asyncio.sleep(0.05)
        assert client._audio_input_track is None
        pending.cancel()

    asyncio.run(scenario())


class _SpeechTrack(AudioStreamTrack):
    """A caller's microphone: the flite sentence in real time, 20 ms frames of 16 kHz mono, then silence."""

    def __init__(self, speech: np.ndarray) -> None:
        super().__init__()
        self._speech = speech
        self._sent = 0

    async def recv(self) -> AudioFrame:
        await asyncio.sleep(0.02)
        chunk = self._speech[self._sent * 320 : (self._sent + 1) * 320]
        frame = AudioFrame.from_ndarray(np.pad(chunk, (0, 320 - len(chunk)))[None, :], layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, self._sent * 320, fractions.Fraction(1, RATE)
        self._sent += 1
        return frame


def test_caller_audio_is_decoded_inline_at_the_pipeline_rate_over_real_webrtc() -> None:
    speech = _speech()

    async def scenario() -> tuple[list[AudioFrame], int, int]:
        caller, server = RTCPeerConnection(), RTCPeerConnection()
        caller.addTrack(_SpeechTrack(speech))
        tracks: asyncio.Queue[Any] = asyncio.Queue()
        server.on("track", tracks.put_nowait)
        await caller.setLocalDescription(await caller.createOffer())
        await server.setRemoteDescription(caller.localDescription)
        await server.setLocalDescription(await server.createAnswer())
        replaced = tune_audio_receivers(server, sample_rate=RATE)  # as VoxdeskWebRTCConnection does, before media
        await caller.setRemoteDescription(server.localDescription)
        track = await asyncio.wait_for(tracks.get(), 10)
        frames = [cast(AudioFrame, await asyncio.wait_for(track.recv(), 10)) for _ in range(len(speech) // 320 + 20)]
        again = tune_audio_receivers(server, sample_rate=RATE)  # the decoder thread runs: its queue stays
        await asyncio.wait_for(server.close(), 10)  # the receiver's thread ends with it
        with pytest.raises(MediaStreamError):
            while True:
                await asyncio.wait_for(track.recv(), 5)
        await caller.close()
        return frames, replaced, again

    frames, replaced, again = asyncio.run(scenario())
    assert (replaced, again) == (1, 0)
    assert {(f.sample_rate, f.layout.name, f.format.name, f.samples) for f in frames} == {(RATE, "mono", "s16", 320)}
    assert not [t for t in threading.enumerate() if t.name == "audio-decoder" and t.is_alive()]
    received = np.concatenate([np.frombuffer(bytes(f.planes[0]), dtype=np.int16) for f in frames])
    sent, heard = _envelope(speech.astype(np.float64)), _envelope(received.astype(np.float64))
    assert (heard > 300).any(), "the caller's voice arrived"
    # Both loudness contours from their first voiced frame: the one heard follows the one spoken.
    sent, heard = sent[np.argmax(sent > 300) :], heard[np.argmax(heard > 300) :]
    n = min(len(sent), len(heard)) - 2
    assert max(float(np.corrcoef(sent[:n], heard[lag : lag + n])[0, 1]) for lag in range(2)) > 0.85


def test_reader_passes_frames_decoded_at_the_pipeline_rate_through_unchanged() -> None:
    remote = RemoteStreamTrack(kind="audio")
    client = _batched_client(_Wrapper(remote))
    speech = _speech()[: 320 * 3]
    for i in range(3):
        frame = AudioFrame.from_ndarray(speech[None, i * 320 : (i + 1) * 320], layout="mono")
        frame.sample_rate, frame.pts = RATE, i * 960
        remote._queue.put_nowait(frame)

    async def read() -> InputAudioRawFrame:
        frame: InputAudioRawFrame = await anext(client.read_audio_frame())
        return frame

    assert asyncio.run(read()).audio == speech.tobytes(), "no resampler delay, no sample changed"


def test_inline_decoding_drops_empty_and_corrupt_packets_and_keeps_aiortc_for_g711() -> None:
    track = RemoteStreamTrack(kind="audio")
    decoding = InlineAudioDecoding(SimpleNamespace(_track=track), sample_rate=RATE)
    opus, pcmu = SimpleNamespace(name="opus"), SimpleNamespace(name="PCMU", mimeType="audio/PCMU", clockRate=8000)
    packet = VoiceOpusEncoder(RATE).encode(_speech()[:320].tobytes())[0]
    decoding.put((opus, JitterFrame(data=b"", timestamp=0)))
    decoding.put((opus, JitterFrame(data=b"\xff\x00", timestamp=960)))  # corrupt: logged, dropped
    assert track._queue.empty()
    decoding.put((opus, JitterFrame(data=packet, timestamp=1920)))
    decoding.put((pcmu, JitterFrame(data=bytes(160), timestamp=0)))
    frames = [track._queue.get_nowait() for _ in range(2)]
    assert [(f.sample_rate, f.samples, f.pts) for f in frames] == [(RATE, 320, 1920), (8000, 160, 0)]
    ended = threading.Thread(target=decoding.get)
    ended.start()
    decoding.put(None)  # the receiver stops: its thread's get() returns
    ended.join(5)
    assert not ended.is_alive()
