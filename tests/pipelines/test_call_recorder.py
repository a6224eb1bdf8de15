"""The call recorder: the agent turn when the call ends while the agent is still speaking; the recording's WAV."""

from __future__ import annotations

import asyncio
import wave
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    SystemFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.utils.text.base_text_aggregator import TextType

from pipelines.contracts import CallEventRecord, LatencyRecord, TurnRecord
from pipelines.processors.transcript import CallRecorder

pytestmark = [pytest.mark.unit]


class ListSink:
    """A ``CallSink`` that keeps what it is given."""

    def __init__(self) -> None:
        self.turns: list[TurnRecord] = []

    async def turn(self, record: TurnRecord) -> None:
        self.turns.append(record)

    async def latency(self, record: LatencyRecord) -> None:
        pass

    async def event(self, record: CallEventRecord) -> None:
        pass

    async def recording(self, *, path: str, fmt: str, channels: int, sample_rate: int, duration_ms: int) -> None:
        pass


@dataclass
class CallEnds(SystemFrame):
    """Stands for the call's end arriving between two frames of the pipeline (the session's ``before_end``)."""


class EndHere(FrameProcessor):
    def __init__(self, recorder: CallRecorder) -> None:
        super().__init__()
        self._recorder = recorder

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, CallEnds):
            await self._recorder.end_of_call()
            return
        await self.push_frame(frame, direction)


def spoken(text: str) -> TTSTextFrame:
    return TTSTextFrame(text=text, text_type=TextType.SENTENCE)


def in_order(*frames: Frame) -> list[Frame]:
    """``frames`` with a pause after each: system frames (the speaking ones) otherwise overtake the text."""
    return [paced for frame in frames for paced in (frame, SleepFrame(sleep=0.05))]


async def agent_turns(*frames: Frame) -> list[TurnRecord]:
    """The turns the recorder stores for ``frames`` played one after another, ``CallEnds`` where the call ends."""
    sink = ListSink()
    recorder = CallRecorder(sink=sink, call_id="t", recording_path=None)
    await run_test(Pipeline([EndHere(recorder), recorder.agent_tap]), frames_to_send=in_order(*frames))
    return sink.turns


async def test_the_call_ending_mid_answer_stores_what_was_heard_as_cut_short() -> None:
    turns = await agent_turns(
        BotStartedSpeakingFrame(),
        spoken("Open the app."),
        CallEnds(),
        spoken("Then choose a new password."),  # played after the end: nobody heard it
        BotStoppedSpeakingFrame(),
    )
    assert [(t.role, t.text, t.interrupted) for t in turns] == [("agent", "Open the app.", True)]


async def test_an_answer_that_finished_before_the_end_is_stored_whole() -> None:
    turns = await agent_turns(
        BotStartedSpeakingFrame(),
        spoken("Open the app."),
        spoken("Then choose a new password."),
        BotStoppedSpeakingFrame(),
        CallEnds(),
    )
    assert [(t.text, t.interrupted) for t in turns] == [("Open the app. Then choose a new password.", False)]


async def test_the_recording_stays_a_wav_while_turns_are_made_durable_mid_call(tmp_path: Path) -> None:
    # Each turn's end makes the recording durable on a worker thread while the caller's audio keeps being written
    # on the event loop: the header's patch must never land in the audio, nor the audio in the header.
    path = tmp_path / "call.wav"
    recorder = CallRecorder(sink=ListSink(), call_id="t", recording_path=path)
    frame = InputAudioRawFrame(audio=np.full(320, 1000, dtype="<i2").tobytes(), sample_rate=16000, num_channels=1)
    writing = True

    async def caller() -> int:
        written = 0
        while writing:
            for _ in range(50):
                recorder.write_caller_audio(frame)
                written += 1
            await asyncio.sleep(0)
        return written

    task = asyncio.create_task(caller())
    await asyncio.sleep(0)  # the recording is open before the first turn ends
    for seq in range(500):
        await recorder.persist(TurnRecord(seq=seq, role="caller", text="", started_at=None, ended_at=datetime.now(UTC)))
    writing = False
    written = await task
    await recorder.close()
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getnframes()) == (2, written * 320)
        stereo = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    assert (stereo[:, 0] == 1000).all() and (stereo[:, 1] == 0).all()
