"""Latency meter: per turn, the caller's last voiced frame to the agent's first audio frame out.

An observer (it sees every frame pushed between processors, with the pipeline clock's timestamps, without
sitting in the audio path). The split, in the order the time is spent:

- ``vad_ms``: end-of-turn detection — the VAD's silence window plus the turn strategy's wait after the
  final transcript;
- ``asr_ms``: VAD stop → final transcript (the streaming recogniser's last search);
- ``retrieval_ms``: turn end → passages attached (retrieval started at the final transcript, so this is
  only the part not hidden behind the turn-end wait);
- ``llm_ms``: passages → the brain's response starts;
- ``tts_ms``: response start → first audio frame out of the transport.

Each turn goes to ``CallSink.latency`` and the ``voxdesk_pipeline_turn_latency_seconds`` histogram.
Barge-ins (caller speech onset → the agent's audio held by the gate, or the ``InterruptionFrame`` without one)
go to ``CallSink.event(kind="barge_in")``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseStartFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed

from pipelines.contracts import CallEventRecord, CallSink, LatencyRecord
from pipelines.frames import KnowledgeFrame
from pipelines.metrics import BARGE_IN_REACTION, TURN_LATENCY
from pipelines.processors.audio_gate import AgentAudioGate

log = structlog.stdlib.get_logger(__name__)

__all__ = ["LatencyMeter"]

_NS = 1e-6  # ns → ms


@dataclass
class _Turn:
    last_voiced: int
    vad_stop: int
    transcript: int | None = None
    turn_end: int | None = None
    knowledge: int | None = None
    response: int | None = None
    first_tts_audio: int | None = None


class LatencyMeter(BaseObserver):
    """Meters each turn's latency and each barge-in's reaction time.

    Args:
        sink: Where the records go.
        call_id: The call.
        turn_seq: Returns the sequence number of the caller turn being answered.
        vad_start_secs: The VAD's start window (speech onset = VAD start − this).
        gate: The call's agent audio gate: a barge-in's audio stopped when the gate paused it.
    """

    # The frames it reads (the call's observer queues only these to it); of the audio, only the synthesiser's.
    observed_frames: tuple[type[Frame], ...] = (
        VADUserStoppedSpeakingFrame,
        VADUserStartedSpeakingFrame,
        InterruptionFrame,
        BotStartedSpeakingFrame,
        BotStoppedSpeakingFrame,
        TranscriptionFrame,
        LLMContextFrame,
        KnowledgeFrame,
        LLMFullResponseStartFrame,
        TTSAudioRawFrame,
    )

    def __init__(
        self,
        *,
        sink: CallSink,
        call_id: str,
        turn_seq: Callable[[], int | None],
        vad_start_secs: float,
        gate: AgentAudioGate | None = None,
    ) -> None:
        # Only first pushes matter here: pipecat then skips queueing every later push of each frame to this observer.
        super().__init__(observe_every_push=False)
        self._sink = sink
        self._call_id = call_id
        self._turn_seq = turn_seq
        self._start_secs = vad_start_secs
        self._turn: _Turn | None = None
        self._bot_speaking = False
        self._speech_onset: int | None = None
        self._gate = gate
        # monotonic_ns − pipeline clock: the smallest difference seen is the closest to the push itself.
        self._clock_offset: int | None = None
        self.records: list[LatencyRecord] = []
        self.barge_ins_ms: list[float] = []

    async def on_push_frame(self, data: FramePushed) -> None:
        """Stamp the frames that mark a turn's stages."""
        if not data.first_push:
            return
        frame, ts = data.frame, data.timestamp
        offset = time.monotonic_ns() - ts
        if self._clock_offset is None or offset < self._clock_offset:
            self._clock_offset = offset
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            self._turn = _Turn(last_voiced=ts - int(frame.stop_secs * 1e9), vad_stop=ts)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._speech_onset = ts - int(self._start_secs * 1e9) if self._bot_speaking else None
        elif isinstance(frame, InterruptionFrame):
            await self._barge_in(ts)
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
            await self._finish(ts)
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        elif self._turn is not None:
            turn = self._turn
            if isinstance(frame, TranscriptionFrame) and turn.transcript is None:
                turn.transcript = ts
            elif isinstance(frame, LLMContextFrame) and turn.turn_end is None:
                turn.turn_end = ts
            elif isinstance(frame, KnowledgeFrame) and turn.knowledge is None:
                turn.knowledge = ts
            elif isinstance(frame, LLMFullResponseStartFrame) and turn.response is None:
                turn.response = ts
            elif isinstance(frame, TTSAudioRawFrame) and turn.first_tts_audio is None:
                turn.first_tts_audio = ts

    async def _barge_in(self, ts: int) -> None:
        if self._speech_onset is None:
            return
        stopped = ts
        paused_ns = self._gate.last_paused_at_ns if self._gate is not None else None
        if paused_ns is not None and self._clock_offset is not None:
            paused = paused_ns - self._clock_offset
            if self._speech_onset <= paused <= ts:
                stopped = paused
        reaction_ms = (stopped - self._speech_onset) * _NS
        self._speech_onset = None
        self.barge_ins_ms.append(reaction_ms)
        BARGE_IN_REACTION.observe(reaction_ms / 1000)
        await self._sink.event(
            CallEventRecord(kind="barge_in", turn_seq=self._turn_seq(), data={"reaction_ms": round(reaction_ms, 1)})
        )

    async def _finish(self, first_audio_out: int) -> None:
        turn, self._turn = self._turn, None
        if turn is None or turn.turn_end is None or turn.response is None:
            return  # the greeting, or a turn that was never answered
        transcript = turn.transcript or turn.vad_stop
        knowledge = turn.knowledge or turn.turn_end
        record = LatencyRecord(
            turn_seq=self._turn_seq() or 0,
            total_ms=round((first_audio_out - turn.last_voiced) * _NS, 1),
            vad_ms=round(((turn.vad_stop - turn.last_voiced) + max(0, turn.turn_end - transcript)) * _NS, 1),
            asr_ms=round(max(0, transcript - turn.vad_stop) * _NS, 1),
            retrieval_ms=round(max(0, knowledge - turn.turn_end) * _NS, 1),
            llm_ms=round(max(0, turn.response - knowledge) * _NS, 1),
            tts_ms=round(max(0, first_audio_out - turn.response) * _NS, 1),
        )
        self.records.append(record)
        for stage in ("total", "vad", "asr", "retrieval", "llm", "tts"):
            value = getattr(record, f"{stage}_ms")
            if value is not None:
                TURN_LATENCY.labels(stage=stage).observe(value / 1000)
        log.debug("turn_latency", call_id=self._call_id, total_ms=record.total_ms)
        await self._sink.latency(record)
