"""A minimal stand-in pipeline of stock pipecat parts (Silero VAD) and flite, used until ``build_pipeline``.

It greets, answers every caller turn with one fixed sentence, records both sides through the call
sink and stops speaking when the caller barges in. It recognises nothing: caller turns are stored
as ``[speech]``.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import wave
from datetime import UTC, datetime
from pathlib import Path

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    Frame,
    InterruptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_transport import BaseTransport

from pipelines.contracts import CallEventRecord, CallSink, LatencyRecord, TurnRecord

REPLY = "Thanks, I heard you. This is a stand-in answer."
SAMPLE_RATE = 16000


async def flite_pcm(text: str, *, voice: str = "slt") -> bytes:
    """16 kHz mono 16-bit PCM of ``text`` spoken by flite."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tts.wav"
        proc = await asyncio.create_subprocess_exec(
            "flite", "-voice", voice, "-t", text, "-o", str(out), stdout=asyncio.subprocess.DEVNULL
        )
        await proc.wait()
        with wave.open(str(out), "rb") as handle:
            return handle.readframes(handle.getnframes())


class StandInResponder(FrameProcessor):
    """Speaks a fixed reply after each caller turn and yields the floor on barge-in.

    Args:
        sink: Where turns, latency and barge-in events go.

    """

    def __init__(self, *, sink: CallSink) -> None:
        super().__init__()
        self._sink = sink
        self._seq = 0
        self._speaking_text: str | None = None
        self._speech_task: asyncio.Task[None] | None = None
        self._caller_started: datetime | None = None
        self._stopped_at = 0.0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Handle VAD and speak requests; pass everything else on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSSpeakFrame):
            await self._speak(frame.text, latency=False)
            return
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._caller_started = datetime.now(UTC)
            if self._speaking_text is not None:
                await self._barge_in()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._stopped_at = time.monotonic() - frame.stop_secs if hasattr(frame, "stop_secs") else time.monotonic()
            self._seq += 1
            await self._sink.turn(
                TurnRecord(
                    seq=self._seq,
                    role="caller",
                    text="[speech]",
                    started_at=self._caller_started,
                    ended_at=datetime.now(UTC),
                )
            )
            await self.push_frame(frame, direction)
            await self._speak(REPLY, latency=True)
            return
        elif isinstance(frame, BotStartedSpeakingFrame) and self._stopped_at:
            await self._sink.latency(
                LatencyRecord(turn_seq=self._seq, total_ms=(time.monotonic() - self._stopped_at) * 1000)
            )
            self._stopped_at = 0.0
        await self.push_frame(frame, direction)

    async def _speak(self, text: str, *, latency: bool) -> None:
        del latency
        pcm = await flite_pcm(text)
        self._speaking_text = text
        self._seq += 1
        self._speech_seq = self._seq
        self._speech_started = datetime.now(UTC)
        self._speech_t0 = time.monotonic()
        self._speech_secs = len(pcm) / 2 / SAMPLE_RATE
        await self.push_frame(TTSStartedFrame())
        chunk = SAMPLE_RATE // 50 * 2
        for i in range(0, len(pcm), chunk):
            await self.push_frame(TTSAudioRawFrame(audio=pcm[i : i + chunk], sample_rate=SAMPLE_RATE, num_channels=1))
        await self.push_frame(TTSStoppedFrame())
        self._speech_task = asyncio.create_task(self._finish_turn_later(self._speech_secs))

    async def _finish_turn_later(self, secs: float) -> None:
        await asyncio.sleep(secs)
        await self._finish_turn(interrupted=False)

    async def _finish_turn(self, *, interrupted: bool) -> None:
        text = self._speaking_text
        if text is None:
            return
        self._speaking_text = None
        if interrupted:
            played = max(0.0, time.monotonic() - self._speech_t0) / max(self._speech_secs, 0.01)
            words = text.split()
            text = " ".join(words[: max(1, int(len(words) * min(played, 1.0)))])
        await self._sink.turn(
            TurnRecord(
                seq=self._speech_seq,
                role="agent",
                text=text,
                started_at=self._speech_started,
                ended_at=datetime.now(UTC),
                interrupted=interrupted,
            )
        )

    async def _barge_in(self) -> None:
        if self._speech_task is not None:
            self._speech_task.cancel()
            self._speech_task = None
        await self.push_frame(InterruptionFrame())
        await self._sink.event(CallEventRecord(kind="barge_in", turn_seq=self._speech_seq))
        await self._finish_turn(interrupted=True)


def build_standin_pipeline(*, transport: BaseTransport, sink: CallSink) -> Pipeline:
    """Transport in → Silero VAD → fixed-reply responder → transport out."""
    vad = VADProcessor(vad_analyzer=SileroVADAnalyzer(params=VADParams(stop_secs=0.3)))
    return Pipeline([transport.input(), vad, StandInResponder(sink=sink), transport.output()])
