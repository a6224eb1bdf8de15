"""The input transport pushes the caller's audio from the reader's task (``pipelines.compat.input_push``)."""

from __future__ import annotations

import asyncio
from typing import Any

from pipecat.audio.filters.base_audio_filter import BaseAudioFilter
from pipecat.frames.frames import EndFrame, Frame, InputAudioRawFrame, StartFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_transport import TransportParams
from pipecat.workers.runner import WorkerRunner

from pipelines.compat import push_audio_directly


class _Input(BaseInputTransport):
    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)


class _Collector(FrameProcessor):
    def __init__(self) -> None:
        super().__init__(enable_direct_mode=True)
        self.audio: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.audio.append(frame)
        await self.push_frame(frame, direction)


def _frame() -> InputAudioRawFrame:
    return InputAudioRawFrame(audio=bytes(640), sample_rate=16000, num_channels=1)


async def _run(direct: bool) -> tuple[list[int], int, bool]:
    """Per push while running: frames the next stage had when the push returned; then pushes after the end."""
    transport_input = _Input(TransportParams(audio_in_enabled=True, audio_in_sample_rate=16000))
    installed = push_audio_directly(transport_input) if direct else False
    collector = _Collector()
    worker = PipelineWorker(
        Pipeline([transport_input, collector]), params=PipelineParams(audio_in_sample_rate=16000), enable_rtvi=False
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run = asyncio.create_task(runner.run())
    await asyncio.sleep(0.3)
    seen: list[int] = []
    for _ in range(3):
        await transport_input.push_audio_frame(_frame())
        seen.append(len(collector.audio))
    await asyncio.sleep(0.1)
    await worker.queue_frame(EndFrame())
    await asyncio.wait_for(run, 10)
    before = len(collector.audio)
    await transport_input.push_audio_frame(_frame())  # the call has ended: dropped, as pipecat's task is gone
    await asyncio.sleep(0.05)
    return seen, len(collector.audio) - before, installed


def test_audio_reaches_the_next_stage_before_the_push_returns() -> None:
    seen, after_end, installed = asyncio.run(_run(direct=True))
    assert installed
    assert seen == [1, 2, 3]
    assert after_end == 0


def test_pipecat_queue_hands_audio_on_only_after_loop_turns() -> None:
    """What is replaced: pipecat's own push returns before the frame has moved on."""
    seen, after_end, installed = asyncio.run(_run(direct=False))
    assert not installed
    assert seen == [0, 0, 0]
    assert after_end == 0


class _Filter(BaseAudioFilter):
    async def start(self, sample_rate: int) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def process_frame(self, frame: Any) -> None:
        pass

    async def filter(self, audio: bytes) -> bytes:
        return audio


def test_a_transport_with_an_audio_filter_keeps_pipecat_queue() -> None:
    filtered = _Input(TransportParams(audio_in_enabled=True, audio_in_filter=_Filter()))
    assert not push_audio_directly(filtered)
    assert not push_audio_directly(_Input(TransportParams(audio_in_enabled=True, audio_in_passthrough=False)))
    assert not push_audio_directly(_Collector())
