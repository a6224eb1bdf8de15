"""Barge-in policy: caller speech silences the agent at once; backchannels and echo do not interrupt it.

A user-turn start strategy for the user aggregator (the aggregator broadcasts the ``InterruptionFrame``
when a turn starts). While the agent is silent, VAD speech starts the turn immediately. While the agent is
speaking, the VAD's speech start pauses the agent's audio at once (:class:`AgentAudioGate`), and the policy
then decides: the caller interrupts when the recogniser's final text holds a word that is neither a
backchannel ("uh-huh", "okay", "right", ...) nor part of what the agent is saying (echo of its own voice), or
once the caller has spoken longer than a backchannel lasts and what was recognised is not echo. (Without a
gate the agent plays on while the policy decides, so an interim text with such a word interrupts at once.)
Speech that stops as soon as the agent's audio is paused is the agent's own echo (a line without echo
cancellation) and is dismissed with its transcript, which may arrive after the next speech has started (the
recogniser numbers its results' utterances: :attr:`ASRResult.utterance`). A backchannel, echo, or a sound with no
words resumes the agent's audio where it stopped (the answer is not cut, and the context is not touched). Ignored
speech is dropped from the user aggregation.

``text_tap`` (placed after the brain) tells the policy what the agent is about to say, for echo matching.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque

import structlog
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_start import BaseUserTurnStartStrategy

from pipelines.asr.base import ASRResult
from pipelines.compat.input_push import ARRIVED_NS
from pipelines.metrics import BARGE_IN_IGNORED
from pipelines.processors.audio_gate import AgentAudioGate

log = structlog.stdlib.get_logger(__name__)

__all__ = ["BACKCHANNELS", "BargeInPolicy"]

BACKCHANNELS: frozenset[str] = frozenset(
    {
        "uh",
        "huh",
        "uhhuh",
        "uh-huh",
        "mhm",
        "mm",
        "hmm",
        "mmhmm",
        "hm",
        "um",
        "ah",
        "oh",
        "okay",
        "ok",
        "kay",
        "right",
        "yeah",
        "yep",
        "yes",
        "yup",
        "sure",
        "alright",
        "all",
        "got",
        "it",
        "i",
        "see",
        "cool",
        "great",
        "fine",
        "good",
        "nice",
        "thanks",
        "thank",
        "you",
        "so",
        "well",
    }
)
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class BargeInPolicy(BaseUserTurnStartStrategy):
    """Decides when caller speech starts a turn, and so interrupts the agent.

    Args:
        call_id: The call (log context).
        backchannels: Words that, alone, never interrupt.
        max_backchannel_secs: Speech longer than this interrupts unless it is recognised as echo.
        echo_overlap: Share of recognised words found in the agent's current text above which the speech
            is taken for echo of the agent's own voice.
        gate: The call's agent audio gate (paused at the caller's speech start while the agent speaks);
            ``None``: the agent's audio plays on until the policy decides.
        resume_after_secs: After the caller's speech ends with no verdict (no words recognised), the paused
            agent resumes this much later.
        echo_tail_secs: Speech that ends within this long after the agent's audio was paused stopped because
            the agent stopped: it is echo of the agent's voice, whatever the recogniser made of it. (A caller's
            own words run on past the pause; an utterance under 0.1 s + this is dismissed, like a backchannel.)
    """

    def __init__(
        self,
        *,
        call_id: str,
        backchannels: frozenset[str] = BACKCHANNELS,
        max_backchannel_secs: float = 0.8,
        echo_overlap: float = 0.5,
        gate: AgentAudioGate | None = None,
        resume_after_secs: float = 0.3,
        echo_tail_secs: float = 0.15,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # pipecat's BaseObject.__init__ is untyped
        self._call_id = call_id
        self._backchannels = backchannels
        self._max_backchannel_secs = max_backchannel_secs
        self._echo_overlap = echo_overlap
        self._bot_speaking = False
        self._vad_speaking = False
        self._pending = False
        self._text = ""
        self._agent_words: set[str] = set()
        self._timer: asyncio.Task[None] | None = None
        self._resume_timer: asyncio.Task[None] | None = None
        self._gate = gate
        self._resume_after_secs = resume_after_secs
        self._echo_tail_secs = echo_tail_secs
        self._dismissed = False
        self._line_lags: deque[tuple[int, int]] = deque(maxlen=64)  # (seen, lag) of recent audio frames, ns
        self._utterances = 0  # VAD speech starts seen (the recogniser numbers its results' utterances alike)
        self._dismissed_utterances: set[int] = set()
        self.resumes = 0
        self.text_tap = _AgentTextTap(self)

    def note_agent_text(self, text: str, *, new_response: bool = False) -> None:
        """Remember what the agent is saying (for echo matching)."""
        if new_response:
            self._agent_words = set()
        self._agent_words.update(_words(text))

    async def handle_user_turn_started(self) -> None:
        """A turn started (by this or another strategy): forget pending speech."""
        await self._clear()

    async def cleanup(self) -> None:
        """Cancel the timer."""
        await super().cleanup()  # type: ignore[no-untyped-call]  # untyped in pipecat
        await self._cancel_timer()
        await self._cancel_resume_timer()
        if self._gate is not None:
            self._gate.resume()

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        """Track the agent's and the caller's speech; start the turn when the caller really barges in."""
        if isinstance(frame, InputAudioRawFrame):
            self._note_line_lag(frame)
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
            # The agent paused or finished while the caller's speech was pending: start the turn unless what
            # was recognised is echo of the agent or a backchannel.
            if self._pending and self._vad_speaking and self._judge(self._text) in ("speech", "empty"):
                return await self._start()
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._vad_speaking = True
            self._dismissed = False
            self._utterances += 1
            # An utterance with no words gets no final: forget it after a while.
            self._dismissed_utterances = {u for u in self._dismissed_utterances if u > self._utterances - 8}
            if not self._bot_speaking:
                return await self._start()
            if self._gate is not None:
                self._gate.pause()
            self._pending = True
            self._text = ""
            await self._cancel_timer()
            await self._cancel_resume_timer()
            self._timer = self.task_manager.create_task(self._long_speech(), f"{self}::long_speech")
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._vad_speaking = False
            await self._cancel_timer()
            if self._pending and self._echo_tail(frame):
                # The voice stopped when the agent's did: the agent's own echo (no echo cancellation upstream).
                BARGE_IN_IGNORED.labels(reason="echo").inc()
                await self._clear()
                self._dismissed = True  # its transcript, still to come, is not the caller's
                self._dismissed_utterances.add(self._utterances)
                self._resume()
                await self.trigger_reset_aggregation()  # type: ignore[no-untyped-call]  # untyped in pipecat
                return ProcessFrameResult.STOP
            if self._pending and self._gate is not None and self._gate.paused:
                await self._cancel_resume_timer()
                self._resume_timer = self.task_manager.create_task(self._resume_later(), f"{self}::resume")
        elif isinstance(frame, (InterimTranscriptionFrame, TranscriptionFrame)):
            final = isinstance(frame, TranscriptionFrame)
            utterance = frame.result.utterance if isinstance(frame.result, ASRResult) else None
            if utterance is not None and utterance != self._utterances:
                earlier = await self._earlier_utterance(frame.text, utterance, final=final)
                if earlier is not None:
                    return earlier
            elif self._dismissed and not self._pending:
                self._dismissed = not final
                if final:
                    self._dismissed_utterances.discard(self._utterances)
                    await self._drop_final()
                return ProcessFrameResult.STOP
            if not self._bot_speaking and not self._pending:
                return await self._start()
            self._text = frame.text
            verdict = self._judge(frame.text)
            # With the agent's audio already held, nothing is gained by trusting an early interim (the first
            # interim of "okay" can read "built"): the final text or the long-speech timer decides.
            if verdict == "speech" and (final or self._gate is None):
                return await self._start()
            if final:
                if verdict in ("backchannel", "echo"):
                    BARGE_IN_IGNORED.labels(reason=verdict).inc()
                    log.debug("barge_in_ignored", call_id=self._call_id, reason=verdict)
                await self._clear()
                self._resume()
                await self.trigger_reset_aggregation()  # type: ignore[no-untyped-call]  # untyped in pipecat
                return ProcessFrameResult.STOP
        return ProcessFrameResult.CONTINUE

    async def _earlier_utterance(self, text: str, utterance: int, *, final: bool) -> ProcessFrameResult | None:
        """A transcript of an utterance before the current one (a final comes after the next speech start).

        It must not decide for the speech now over the agent: a dismissed utterance's transcript is dropped; while
        newer speech is pending, an earlier utterance's final interrupts only with words of the caller's own.
        ``None``: neither applies, the transcript is judged as usual.
        """
        if utterance in self._dismissed_utterances:
            if final:
                self._dismissed_utterances.discard(utterance)
                await self._drop_final()
            return ProcessFrameResult.STOP
        if not self._pending:
            return None
        if final and self._judge(text) == "speech":
            return await self._start()
        if final:
            await self._drop_final()
        return ProcessFrameResult.STOP

    async def _drop_final(self) -> None:
        """Take a final transcript that is not the caller's back out of the user aggregation.

        The aggregator adds a final before its strategies see it; no caller turn is open while the agent speaks
        or after dismissed speech, so the aggregation holds nothing else of the caller's.
        """
        await self.trigger_reset_aggregation()  # type: ignore[no-untyped-call]  # untyped in pipecat

    def _note_line_lag(self, frame: InputAudioRawFrame) -> None:
        """Remember how long after it was read off the line the VAD analysed this frame of the caller's audio."""
        arrived = frame.metadata.get(ARRIVED_NS)
        if isinstance(arrived, int):
            now = time.monotonic_ns()
            self._line_lags.append((now, now - arrived))

    def _echo_tail(self, stopped: VADUserStoppedSpeakingFrame) -> bool:
        """Whether the caller's voice ended, on the line, within ``echo_tail_secs`` of the agent's audio being paused.

        The pause is the line's time (the agent's audio stops going out then). The VAD said the voice stopped at the
        frame's wall-clock ``timestamp``, however long the frame then waited to reach this policy, ``stop_secs``
        after it heard the voice end, in audio it analysed some time after it was read off the line (the lag of
        the audio frame it had just analysed: a busy event loop or GIL delays the VAD, not the line).
        """
        paused_ns = self._gate.last_paused_at_ns if self._gate is not None else None
        if paused_ns is None or not self._gate or not self._gate.paused:
            return False
        now = time.monotonic_ns()
        decided_ns = now - int(min(max(0.0, time.time() - stopped.timestamp), 1.0) * 1e9)
        lag_ns = next((lag for seen, lag in reversed(self._line_lags) if seen <= decided_ns), 0)
        voice_ended_ns = decided_ns - int(stopped.stop_secs * 1e9) - min(lag_ns, 1_000_000_000)
        return voice_ended_ns - paused_ns < self._echo_tail_secs * 1e9

    def _judge(self, text: str) -> str:
        words = _words(text)
        if not words:
            return "empty"
        agent = self._agent_words
        if len(words) >= 2 and agent and sum(w in agent for w in words) / len(words) >= self._echo_overlap:
            return "echo"
        if all(w in self._backchannels for w in words):
            return "backchannel"
        if agent and all(w in agent or w in self._backchannels for w in words) and len(words) < 3:
            return "echo"
        return "speech"

    async def _long_speech(self) -> None:
        await asyncio.sleep(self._max_backchannel_secs)
        self._timer = None
        if self._pending and self._vad_speaking and self._judge(self._text) in ("speech", "empty"):
            await self._start()

    async def _resume_later(self) -> None:
        await asyncio.sleep(self._resume_after_secs)
        self._resume_timer = None
        if self._pending and not self._vad_speaking and self._judge(self._text) != "speech":
            BARGE_IN_IGNORED.labels(reason="no_words").inc()
            await self._clear()
            self._resume()
            await self.trigger_reset_aggregation()  # type: ignore[no-untyped-call]  # untyped in pipecat

    def _resume(self) -> None:
        if self._gate is not None and self._gate.paused:
            self.resumes += 1
            self._gate.resume()

    async def _start(self) -> ProcessFrameResult:
        await self._clear()
        await self.trigger_user_turn_started()
        return ProcessFrameResult.STOP

    async def _clear(self) -> None:
        self._pending = False
        self._text = ""
        await self._cancel_timer()
        await self._cancel_resume_timer()

    async def _cancel_resume_timer(self) -> None:
        if self._resume_timer is not None and self._resume_timer is not asyncio.current_task():
            await self.task_manager.cancel_task(self._resume_timer)
        self._resume_timer = None

    async def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer is not asyncio.current_task():
            await self.task_manager.cancel_task(self._timer)
        self._timer = None


class _AgentTextTap(FrameProcessor):
    """Tells the barge-in policy what the agent is about to say (place it after the brain)."""

    def __init__(self, policy: BargeInPolicy) -> None:
        super().__init__(name=f"AgentTextTap#{policy._call_id}", enable_direct_mode=True)
        self._policy = policy
        self._new = True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMFullResponseStartFrame):
            self._new = True
        elif isinstance(frame, (LLMTextFrame, TTSSpeakFrame)):
            self._policy.note_agent_text(frame.text, new_response=self._new or isinstance(frame, TTSSpeakFrame))
            self._new = False
        await self.push_frame(frame, direction)
