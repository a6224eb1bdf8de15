"""libopus through ctypes (``agent.transports.opus``): real encode and decode of a flite voice at the pipeline rate."""

from __future__ import annotations

import fractions

import numpy as np
import pytest
from aiortc.codecs.opus import OpusEncoder
from av import AudioFrame

from agent.transports.opus import OpusError, OpusFrameDecoder, OpusFrameEncoder
from tests.agent.test_webrtc_media import RATE, _envelope, _speech


def _frames(speech: np.ndarray, size: int) -> list[bytes]:
    return [speech[i * size : (i + 1) * size].tobytes() for i in range(len(speech) // size)]


def _follows(source: np.ndarray, decoded: np.ndarray) -> float:
    """How well the 20 ms loudness contour of ``decoded`` follows ``source`` (the codec delays it a few ms)."""
    a, b = _envelope(source.astype(np.float64)), _envelope(decoded.astype(np.float64))
    n = min(len(a), len(b)) - 3
    return max(float(np.corrcoef(a[:n], b[lag : lag + n])[0, 1]) for lag in range(3))


def test_voice_round_trips_at_16_khz_mono_one_small_packet_per_frame() -> None:
    speech = _speech()
    encoder, decoder = OpusFrameEncoder(RATE), OpusFrameDecoder(RATE)
    packets = [encoder.encode(frame) for frame in _frames(speech, 320)]
    assert 40 < np.mean([len(p) for p in packets]) < 150, "about 32 kbit/s"
    pcm = [decoder.decode(p) for p in packets]
    assert {len(p) for p in pcm} == {640}, "20 ms of 16-bit mono at 16 kHz per packet"
    decoded = np.frombuffer(b"".join(pcm), dtype=np.int16)
    assert _follows(speech, decoded) > 0.9


def test_a_browser_like_48_khz_stereo_stream_decodes_to_16_khz_mono() -> None:
    speech = _speech()
    stereo = np.repeat(np.interp(np.arange(len(speech) * 3) / 3, np.arange(len(speech)), speech), 2)
    stereo = stereo.astype(np.int16)
    encoder, decoder = OpusEncoder(), OpusFrameDecoder(RATE)  # aiortc's: 48 kHz stereo, 96 kbit/s
    pcm: list[bytes] = []
    for i in range(len(stereo) // 1920):
        frame = AudioFrame.from_ndarray(stereo[None, i * 1920 : (i + 1) * 1920], layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48000, i * 960, fractions.Fraction(1, 48000)
        payloads, _ = encoder.encode(frame)
        pcm.extend(decoder.decode(p) for p in payloads)
    assert pcm and {len(p) for p in pcm} == {640}
    assert _follows(speech, np.frombuffer(b"".join(pcm), dtype=np.int16)) > 0.9


def test_bad_rates_and_bad_packets_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="44100"):
        OpusFrameEncoder(44100)
    with pytest.raises(ValueError, match="22050"):
        OpusFrameDecoder(22050)
    assert OpusFrameDecoder(RATE).decode(b"") == b"", "an empty payload is no audio, not 120 ms of concealment"
    with pytest.raises(OpusError, match="corrupted"):
        OpusFrameDecoder(RATE).decode(b"\xff\x00")  # code 3 TOC with a frame count of 0 (RFC 6716 §3.2.5)
