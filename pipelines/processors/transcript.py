"""Transcript and recording: every turn persisted through the ``CallSink`` the moment it ends.

Two taps share one recorder. ``caller_tap`` sits after the recogniser: it records the caller's audio and,
when the user aggregator broadcasts the turn's text (``LLMContextUserTurnFrame``), persists the caller
turn. ``agent_tap`` sits after ``transport.output()``, where frames arrive as they are played: it records
the agent's audio and collects the text the TTS marks as spoken (``TTSTextFrame`` s follow their audio), so
an interrupted agent turn stores only what was actually heard: the sentences played to the end, plus the
words of the interrupted sentence that fit in the audio played of it (estimated at the synthesiser's
speaking rate, ~15 characters a second for flite at rate 1.0). The conversation context gets the same text, and
an optional listener gets each piece of it as it is played (the caller's live captions).

The recording is a 16-bit WAV, caller on the left channel and agent on the right, written as the call
goes (the caller's continuous input stream is the clock; agent audio fills the right channel as it is
played). The header is brought up to date and the file flushed every second and made durable at each turn end,
so a crash loses at most the turn in progress.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import wave
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import structlog
from pipecat.frames.frames import (
    AggregatedTextFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    LLMContextAssistantTurnFrame,
    LLMContextUserTurnFrame,
    OutputAudioRawFrame,
    TranscriptionFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from pipelines.asr.base import ASRResult
from pipelines.contracts import CallSink, SpokenTextListener, TurnRecord
from pipelines.frames import AnswerMetaFrame

log = structlog.stdlib.get_logger(__name__)

__all__ = ["CallRecorder"]


def _now() -> datetime:
    return datetime.now(UTC)


class _DualChannelWav:
    """A stereo WAV written incrementally: left = caller, right = agent.

    Frames are written on the event loop while a turn's end makes the file durable on a worker thread: the
    header's patch seeks to the file's start and back, so every use of the file holds ``_lock`` (a write of
    audio in between would land in the header). ``fsync`` runs outside it: it only waits for the disk.
    """

    def __init__(self, path: Path, sample_rate: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.sample_rate = sample_rate
        self._file = path.open("wb")
        self._wav = wave.open(self._file, "wb")  # noqa: SIM115 - closed in close()
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(sample_rate)
        self._lock = threading.Lock()
        self._agent = bytearray()
        self.frames = 0

    def add_agent(self, pcm: bytes) -> None:
        self._agent += pcm

    def add_caller(self, pcm: bytes) -> None:
        n = len(pcm) // 2
        take = min(n * 2, len(self._agent))
        agent = bytes(self._agent[:take]).ljust(n * 2, b"\0")
        del self._agent[:take]
        stereo = np.empty(n * 2, dtype="<i2")
        stereo[0::2] = np.frombuffer(pcm[: n * 2], dtype="<i2")
        stereo[1::2] = np.frombuffer(agent, dtype="<i2")
        # writeframesraw: writeframes rewrote the header (a flush, seeks and a write) on every 20 ms frame;
        # the header is brought up to date when the data reaches the file (flush, sync, close).
        with self._lock:
            self._wav.writeframesraw(stereo.tobytes())
        self.frames += n

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        self._wav.writeframes(b"")  # patches the header's lengths
        self._file.flush()

    def sync(self) -> None:
        with self._lock:
            if self._file.closed:
                return
            self._flush()
            fd = os.dup(self._file.fileno())  # close() may run meanwhile: fsync a descriptor of its own
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._agent:
            self.add_caller(bytes(len(self._agent)))
        with self._lock:
            self._wav.close()
            self._file.close()


class CallRecorder:
    """Transcript and recording of one call, with its two taps.

    Args:
        sink: Where turns and the recording go.
        call_id: The call.
        recording_path: The WAV file to write; ``None``: no recording.
        sample_rate: Audio sample rate of both channels.
        context: The conversation context (an interrupted turn's entry is cut to what was heard).
        chars_per_second: The synthesiser's speaking rate, to estimate the words heard of a cut sentence.
        on_agent_text: Told each piece of the agent's text as its audio has been played; ``None``: nobody.
    """

    def __init__(
        self,
        *,
        sink: CallSink,
        call_id: str,
        recording_path: Path | None,
        sample_rate: int = 16000,
        context: LLMContext | None = None,
        chars_per_second: float = 15.0,
        on_agent_text: SpokenTextListener | None = None,
    ) -> None:
        self.sink = sink
        self.on_agent_text = on_agent_text
        self.context = context
        self.chars_per_second = chars_per_second
        self.pending_sentence: str | None = None
        self.pending_played_bytes = 0
        self.patch_context_with: str | None = None
        self.call_id = call_id
        self.sample_rate = sample_rate
        self.recording_path = recording_path
        self.wav: _DualChannelWav | None = None
        self.seq = 0
        self.last_caller_seq: int | None = None
        self.caller_started: datetime | None = None
        self.caller_confidence: float | None = None
        self.agent_started: datetime | None = None
        self.agent_text: list[str] = []
        self.agent_interrupted = False
        self.citations: tuple[str, ...] = ()
        self._closed = False
        self.agent_done = False  # the call is ending: the agent's words from now on are not heard
        self._last_sync = time.monotonic()
        self.caller_tap = _CallerTap(self)
        self.agent_tap = _AgentTap(self)

    def next_seq(self) -> int:
        """The next turn's sequence number."""
        self.seq += 1
        return self.seq

    async def persist(self, record: TurnRecord) -> None:
        """Send a finished turn to the sink and make the recording durable up to now."""
        await self.sink.turn(record)
        if self.wav is not None:
            await asyncio.to_thread(self.wav.sync)

    def heard_of_pending(self) -> str:
        """The words of the sentence being played that were heard before an interruption."""
        sentence, self.pending_sentence = self.pending_sentence, None
        if not sentence:
            return ""
        played_s = self.pending_played_bytes / (2 * self.sample_rate)
        words = sentence.split()
        heard = int(len(words) * min(1.0, played_s * self.chars_per_second / max(1, len(sentence))))
        return " ".join(words[:heard])

    async def finish_agent_turn(self) -> None:
        """Persist the agent turn in progress (what was spoken of it)."""
        if self.agent_started is None:
            return
        if self.agent_interrupted:
            whole_sentences = bool(self.agent_text)
            partial = self.heard_of_pending()
            if partial:
                self.agent_text.append(partial)
                heard = " ".join(t.strip() for t in self.agent_text if t.strip())
                if whole_sentences:
                    # The assistant aggregator writes the whole sentences; its entry is patched when it does.
                    self.patch_context_with = heard
                elif self.context is not None:
                    # Nothing whole was heard, so the aggregator writes nothing: record the heard words.
                    self.context.add_message({"role": "assistant", "content": heard})
        text = " ".join(t.strip() for t in self.agent_text if t.strip())
        started, interrupted, citations = self.agent_started, self.agent_interrupted, self.citations
        self.agent_started, self.agent_text, self.agent_interrupted, self.citations = None, [], False, ()
        if text or interrupted:
            record = TurnRecord(
                seq=self.next_seq(),
                role="agent",
                text=text,
                started_at=started,
                ended_at=_now(),
                interrupted=interrupted,
                citations=citations,
            )
            await self.persist(record)

    async def end_of_call(self) -> None:
        """The call is ending: store the agent turn in progress now, as cut short (the words heard of it).

        It is then stored before the call's end; what the pipeline plays after this is not heard and not stored.
        """
        if self.agent_done:
            return
        self.agent_done = True
        if self.agent_started is not None:
            self.agent_interrupted = True
        await self.finish_agent_turn()

    async def close(self) -> None:
        """Finish the transcript and the recording (call end)."""
        if self._closed:
            return
        self._closed = True
        await self.finish_agent_turn()
        if self.wav is not None:
            wav, self.wav = self.wav, None
            await asyncio.to_thread(wav.close)
            await self.sink.recording(
                path=str(wav.path),
                fmt="wav",
                channels=2,
                sample_rate=wav.sample_rate,
                duration_ms=int(wav.frames * 1000 / wav.sample_rate),
            )

    def write_caller_audio(self, frame: InputAudioRawFrame) -> None:
        """Append a caller frame (the recording's clock) and the agent audio played meanwhile."""
        if self.recording_path is None or self._closed:
            return
        if self.wav is None:
            self.wav = _DualChannelWav(self.recording_path, self.sample_rate)
        if frame.sample_rate == self.sample_rate and frame.num_channels == 1:
            self.wav.add_caller(frame.audio)
            if time.monotonic() - self._last_sync > 1.0:
                self._last_sync = time.monotonic()
                self.wav.flush()

    def write_agent_audio(self, frame: OutputAudioRawFrame) -> None:
        """Queue agent audio for the right channel."""
        if self.pending_sentence is not None:
            self.pending_played_bytes += len(frame.audio)
        if self.wav is not None and frame.sample_rate == self.sample_rate and frame.num_channels == 1:
            self.wav.add_agent(frame.audio)


class _CallerTap(FrameProcessor):
    def __init__(self, recorder: CallRecorder) -> None:
        super().__init__(name=f"CallerTap#{recorder.call_id}", enable_direct_mode=True)
        self._r = recorder

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        r = self._r
        try:
            if isinstance(frame, InputAudioRawFrame):
                r.write_caller_audio(frame)
            elif isinstance(frame, UserStartedSpeakingFrame) and direction == FrameDirection.UPSTREAM:
                r.caller_started = _now()
            elif isinstance(frame, TranscriptionFrame) and isinstance(frame.result, ASRResult):
                r.caller_confidence = frame.result.confidence
            elif isinstance(frame, LLMContextUserTurnFrame) and direction == FrameDirection.UPSTREAM:
                # The aggregator broadcasts the turn both ways: the upstream copy reaches this tap.
                seq = r.next_seq()
                r.last_caller_seq = seq
                started, r.caller_started = r.caller_started, None
                await r.persist(
                    TurnRecord(
                        seq=seq,
                        role="caller",
                        text=frame.text,
                        started_at=started,
                        ended_at=_now(),
                        asr_confidence=r.caller_confidence,
                    )
                )
        except OSError as exc:
            log.error("call_recording_failed", call_id=r.call_id, error_type=type(exc).__name__)
            r.recording_path = None
            await self.push_error(f"call recording failed: {exc}", exception=exc)
        await self.push_frame(frame, direction)


class _AgentTap(FrameProcessor):
    def __init__(self, recorder: CallRecorder) -> None:
        super().__init__(name=f"AgentTap#{recorder.call_id}", enable_direct_mode=True)
        self._r = recorder

    async def _patch_context(self, written: str) -> None:
        """Replace the assistant aggregator's entry for an interrupted turn with what was heard."""
        heard, self._r.patch_context_with = self._r.patch_context_with, None
        context = self._r.context
        if heard is None or context is None or len(heard) <= len(written):
            return
        for message in reversed(context.get_messages()):
            if isinstance(message, dict) and message.get("role") == "assistant":
                if message.get("content") == written:
                    message["content"] = heard
                break

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        r = self._r
        if r.agent_done and isinstance(
            frame, (OutputAudioRawFrame, AnswerMetaFrame, BotStartedSpeakingFrame, TTSTextFrame, AggregatedTextFrame)
        ):
            pass  # played after the call ended: nobody heard it
        elif isinstance(frame, OutputAudioRawFrame):
            r.write_agent_audio(frame)
        elif isinstance(frame, AnswerMetaFrame):
            r.citations = frame.citations
        elif isinstance(frame, BotStartedSpeakingFrame) and direction == FrameDirection.DOWNSTREAM:
            if r.agent_started is None:
                r.agent_started = _now()
        elif isinstance(frame, TTSTextFrame):
            if r.agent_started is None:
                r.agent_started = _now()
            r.agent_text.append(frame.text)
            r.pending_sentence = None
            if r.on_agent_text is not None and direction == FrameDirection.DOWNSTREAM:
                await r.on_agent_text(frame.text)
        elif isinstance(frame, AggregatedTextFrame) and frame.will_be_spoken:
            # Announced just ahead of its audio: the sentence now being played.
            r.pending_sentence, r.pending_played_bytes = frame.text, 0
        elif isinstance(frame, LLMContextAssistantTurnFrame) and direction == FrameDirection.UPSTREAM:
            await self._patch_context(frame.text)
        elif isinstance(frame, InterruptionFrame):
            if r.agent_started is not None:
                r.agent_interrupted = True
                await r.finish_agent_turn()
        elif isinstance(frame, BotStoppedSpeakingFrame) and direction == FrameDirection.DOWNSTREAM:
            await r.finish_agent_turn()
        elif isinstance(frame, (EndFrame, CancelFrame)):
            await r.close()
        await self.push_frame(frame, direction)
