"""The recogniser numbers each result with the VAD utterance it is of, as the barge-in policy counts them."""

from __future__ import annotations

import pytest
from pipecat.frames.frames import (
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from pipelines.asr.base import ASRResult
from pipelines.asr.pocketsphinx import PocketsphinxBackend
from pipelines.options import ASROptions
from tests.pipelines.conftest import flite_pcm

pytestmark = [pytest.mark.integration]


def _utterance(pcm: bytes) -> list[object]:
    frames: list[object] = [VADUserStartedSpeakingFrame()]
    for i in range(0, len(pcm), 640):  # 20 ms frames
        frames.append(InputAudioRawFrame(audio=pcm[i : i + 640], sample_rate=16000, num_channels=1))
    return [*frames, VADUserStoppedSpeakingFrame(), SleepFrame(sleep=1.0)]  # its final decoded


async def test_each_final_carries_the_number_of_its_utterance() -> None:
    backend = PocketsphinxBackend.prewarm(ASROptions(processes=0, prewarm_decoders=1))  # a decoder ready at once
    try:
        service = backend.create_service(call_id="numbered")
        quiet = bytes(16000 * 2 // 5)  # an utterance with no words gets no final, but is counted
        frames = [
            *_utterance(flite_pcm("How do I reset my password?")),
            *_utterance(quiet),
            *_utterance(flite_pcm("Cancel my order please.")),
        ]
        received, _ = await run_test(service, frames_to_send=frames, expected_down_frames=None)
        finals = [f.result for f in received if isinstance(f, TranscriptionFrame)]
        assert all(isinstance(r, ASRResult) for r in finals)
        assert [(r.utterance, "password" in r.text or "order" in r.text) for r in finals] == [(1, True), (3, True)]
    finally:
        backend.close()
