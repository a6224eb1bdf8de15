"""Handoff gate: during a warm handoff the AI stops answering, the caller hears hold audio, then the human agent.

Three taps of one :class:`HandoffGate`, placed by ``build_pipeline``:

- ``caller_tap`` right after the input transport: the caller's audio is handed to ``caller_audio`` (the human
  agent's ear) while a human is on the call; everything passes on (the caller is still transcribed).
- ``brain_tap`` between the user aggregator and the brain: tells ``turn_listeners`` each caller turn (the
  handoff triggers read it: a request for a person, strong negative sentiment) *before* the brain sees it; out
  of ``ai`` mode it holds the caller's turns and interruptions back from the brain, TTS and output, so the AI
  stays silent (it keeps taking notes: the caller tap of the transcript is before it).
- ``mixer`` right before the output transport: in ``hold`` mode it plays the hold audio, looped, in real time,
  whenever the synthesiser has nothing to say (the "connecting you" message plays first); in ``human`` mode it
  plays the human agent's voice (:meth:`HandoffGate.feed_human`) and drops any synthesised audio.

Interruptions never reach the output out of ``ai`` mode, so the agent audio gate is held open meanwhile (a caller
speaking over the hold audio or over the human must not pause it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Literal

import structlog
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMContextUserTurnFrame,
    OutputAudioRawFrame,
    TTSAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from pipelines.processors.audio_gate import AgentAudioGate

log = structlog.stdlib.get_logger(__name__)

__all__ = ["HandoffGate", "HandoffMode"]

HandoffMode = Literal["ai", "hold", "human"]
CHUNK_SECS = 0.02
# Hold audio queued ahead of the play-out point: enough to ride over a busy loop, little enough to stop at once.
LEAD_SECS = 0.12
# The hold audio waits this long after the synthesiser's last audio has played (a breath after "please hold").
AFTER_SPEECH_SECS = 0.4


class HandoffGate:
    """The AI's silence, the hold audio and the human's voice during one call's handoff.

    Args:
        call_id: The call (processor names, logs).
        sample_rate: The pipeline's audio rate (16-bit mono PCM).
        hold_pcm: The hold audio (16-bit mono PCM at ``sample_rate``), looped; empty: silence on hold.
        audio_gate: The call's agent audio gate (held open out of ``ai`` mode).
        next_seq: The transcript's next turn number (the human's turns share it).

    """

    def __init__(
        self,
        *,
        call_id: str,
        sample_rate: int,
        hold_pcm: bytes = b"",
        audio_gate: AgentAudioGate | None = None,
        next_seq: Callable[[], int] | None = None,
    ) -> None:
        self.call_id = call_id
        self.sample_rate = sample_rate
        self._hold = hold_pcm
        self._audio_gate = audio_gate
        self.next_seq = next_seq
        self.mode: HandoffMode = "ai"
        self.turn_listeners: list[Callable[[str], None]] = []
        self.caller_audio: Callable[[bytes], None] | None = None
        self._chunk_bytes = int(sample_rate * CHUNK_SECS) * 2
        self._tts_until = 0.0
        self._tts_seen = 0.0  # when synthesised audio last passed the mixer (monotonic)
        self._hold_task: asyncio.Task[None] | None = None
        self.human_frames = 0
        self.caller_tap = _CallerTap(self, name=f"HandoffCallerTap#{call_id}")
        self.brain_tap = _BrainTap(self, name=f"HandoffBrainTap#{call_id}")
        self.mixer = _Mixer(self, name=f"HandoffMixer#{call_id}")

    def set_mode(self, mode: HandoffMode) -> None:
        """Switch to ``ai`` (the AI answers), ``hold`` (hold audio) or ``human`` (the human agent speaks)."""
        if mode == self.mode:
            return
        log.info("handoff_gate_mode", call_id=self.call_id, mode=mode, previous=self.mode)
        self.mode = mode
        if self._audio_gate is not None:
            self._audio_gate.hold_open(mode != "ai")
        if mode == "hold":
            self._start_hold()
        else:
            self._stop_hold()

    def _start_hold(self) -> None:
        if self._hold_task is None or self._hold_task.done():
            self._hold_task = asyncio.get_running_loop().create_task(self._play_hold(), name=f"hold-{self.call_id}")

    def _stop_hold(self) -> None:
        if self._hold_task is not None:
            self._hold_task.cancel()
            self._hold_task = None

    def _synthesised(self, frame: TTSAudioRawFrame) -> None:
        """Note synthesised audio passing to the output (it plays before the hold audio resumes)."""
        now = time.monotonic()
        self._tts_seen = now
        secs = len(frame.audio) / (2 * max(1, frame.sample_rate * frame.num_channels))
        self._tts_until = max(self._tts_until, now) + secs

    async def spoken(self, *, first_audio_within_s: float = 3.0, limit_s: float = 20.0) -> None:
        """Wait until what the synthesiser was asked to say from now on has played out to the caller.

        Returns once its audio has passed the mixer and its play-out time (plus a breath) is over; at once after
        ``first_audio_within_s`` when no synthesised audio came at all; never later than ``limit_s``.
        """
        started = time.monotonic()
        while True:
            now = time.monotonic()
            heard = self._tts_seen >= started
            if now - started >= limit_s or (not heard and now - started >= first_audio_within_s):
                return
            if heard and now >= self._tts_until + AFTER_SPEECH_SECS:
                return
            await asyncio.sleep(0.05)

    async def _play_hold(self) -> None:
        started = time.monotonic()
        # The synthesiser's "please hold" may still be on its way: give it a moment to arrive first.
        self._tts_until = max(self._tts_until, started + AFTER_SPEECH_SECS)
        position = 0
        queued_until = 0.0
        while True:
            now = time.monotonic()
            if now < self._tts_until + AFTER_SPEECH_SECS:
                queued_until = 0.0
                await asyncio.sleep(min(0.1, self._tts_until + AFTER_SPEECH_SECS - now))
                continue
            if queued_until - now > LEAD_SECS:
                await asyncio.sleep(CHUNK_SECS)
                continue
            if self._hold:
                chunk = self._hold[position : position + self._chunk_bytes]
                position = (position + self._chunk_bytes) % len(self._hold)
                chunk = chunk.ljust(self._chunk_bytes, b"\0")
            else:
                chunk = bytes(self._chunk_bytes)
            await self.mixer.push_frame(OutputAudioRawFrame(audio=chunk, sample_rate=self.sample_rate, num_channels=1))
            queued_until = max(queued_until, now) + CHUNK_SECS

    async def feed_human(self, pcm: bytes) -> None:
        """Play the human agent's voice (16-bit mono PCM at the pipeline's rate) to the caller."""
        if self.mode != "human" or not pcm:
            return
        self.human_frames += 1
        await self.mixer.push_frame(OutputAudioRawFrame(audio=pcm, sample_rate=self.sample_rate, num_channels=1))

    def close(self) -> None:
        """Stop the hold audio (the call ends)."""
        self._stop_hold()


class _CallerTap(FrameProcessor):
    def __init__(self, gate: HandoffGate, *, name: str) -> None:
        super().__init__(name=name, enable_direct_mode=True)  # one attribute check per frame: no queue hop
        self._gate = gate

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        listener = self._gate.caller_audio
        if listener is not None and isinstance(frame, InputAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            listener(frame.audio)
        await self.push_frame(frame, direction)


class _BrainTap(FrameProcessor):
    def __init__(self, gate: HandoffGate, *, name: str) -> None:
        super().__init__(name=name, enable_direct_mode=True)
        self._gate = gate

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        gate = self._gate
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, LLMContextUserTurnFrame):
                for listener in list(gate.turn_listeners):
                    try:
                        listener(frame.text)
                    except Exception as exc:  # noqa: BLE001 - a trigger's failure must not break the call
                        log.warning("handoff_trigger_failed", call_id=gate.call_id, error_type=type(exc).__name__)
            elif gate.mode != "ai" and isinstance(frame, LLMContextFrame | InterruptionFrame):
                return  # the AI is silent: no answer, and nothing to interrupt
        await self.push_frame(frame, direction)


class _Mixer(FrameProcessor):
    def __init__(self, gate: HandoffGate, *, name: str) -> None:
        super().__init__(name=name)
        self._gate = gate

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        gate = self._gate
        if isinstance(frame, TTSAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            if gate.mode == "human":
                return  # the human speaks now; nothing synthesised reaches the caller
            gate._synthesised(frame)
        elif isinstance(frame, EndFrame | CancelFrame):
            gate.close()
        await self.push_frame(frame, direction)
