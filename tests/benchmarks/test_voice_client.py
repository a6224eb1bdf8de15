"""The scripted WebRTC caller's own bookkeeping: envelope scans resumed across arrivals, speech as packets."""

from __future__ import annotations

import asyncio
import random

import av
import numpy as np

from agent.transports.webrtc_media import OPUS_SILENCE
from benchmarks.voice.client import FRAME_BYTES, VOICED_RMS, Received, SpeakerTrack


def _naive_quiet_from(frames: list[tuple[float, float]], since: float, hold: float) -> float | None:
    start = None
    for t, r in frames:
        if t < since:
            continue
        if r < VOICED_RMS:
            start = t if start is None else start
            if t - start >= hold:
                return start
        else:
            start = None
    return None


def _naive_first_voiced(frames: list[tuple[float, float]], since: float) -> float | None:
    return next((t for t, r in frames if t >= since and r >= VOICED_RMS), None)


def test_scans_resumed_across_arrivals_answer_as_a_full_rescan_would() -> None:
    rng = random.Random(7)
    received = Received()
    questions = [(rng.uniform(0, 20), rng.choice([0.1, 0.25, 1.0])) for _ in range(40)]
    t = 0.0
    for _ in range(1500):
        t += 0.02
        # runs of speech and silence, as an agent's answers and pauses arrive
        received.add(t, 0.0 if (int(t * 3) % 4 == 0 or rng.random() < 0.1) else VOICED_RMS * 3)
        if rng.random() < 0.2:
            for since, hold in questions:
                assert received.quiet_from(since, hold=hold) == _naive_quiet_from(received.frames, since, hold)
                assert received.first_voiced_after(since) == _naive_first_voiced(received.frames, since)


def test_speech_goes_out_as_packets_with_its_voiced_frames_marked() -> None:
    async def run() -> None:
        track = SpeakerTrack()
        track.opus_silence = True
        tone = (6000 * np.sin(np.arange(16000 // 5) * 2 * np.pi * 300 / 16000)).astype(np.int16).tobytes()
        pcm = bytes(FRAME_BYTES * 2) + tone  # 40 ms of silence, then 200 ms of voice
        done = track.say(pcm)
        sent = [await track.recv() for _ in range(len(pcm) // FRAME_BYTES)]
        assert done.is_set()
        assert all(isinstance(p, av.Packet) for p in sent)
        assert all(bytes(p) != OPUS_SILENCE for p in sent)  # speech is encoded, not replaced by silence
        assert track.first_voiced_sent is not None and track.last_voiced_sent is not None
        assert track.last_voiced_sent > track.first_voiced_sent
        assert bytes(await track.recv()) == OPUS_SILENCE  # nothing queued: the silence packet
        # the same question is encoded once per process, whoever says it
        again = SpeakerTrack()
        again.opus_silence = True
        again.say(pcm)
        assert [bytes(await again.recv()) for _ in range(len(sent))] == [bytes(p) for p in sent]

    asyncio.run(run())
