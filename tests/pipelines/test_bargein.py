"""The barge-in policy over the agent's echo: a transcript that arrives after the next speech has started belongs
to the utterance the recogniser numbered it with, not to the speech now over the agent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.utils.asyncio.task_manager import TaskManager

from pipelines.asr.base import ASRResult
from pipelines.compat.input_push import ARRIVED_NS
from pipelines.processors.audio_gate import AgentAudioGate
from pipelines.processors.bargein import BargeInPolicy
from pipelines.transports.memory import MemoryTransport

pytestmark = [pytest.mark.unit]


@dataclass
class Desk:
    """A policy with a real audio gate, and what it asked of the user aggregator."""

    policy: BargeInPolicy
    gate: AgentAudioGate
    turns: list[str] = field(default_factory=list)
    resets: int = 0

    async def hear(self, frame: Frame) -> None:
        await self.policy.process_frame(frame)
        await asyncio.sleep(0)  # let a timer the frame cancelled unwind

    async def echo(self) -> None:
        """A burst of echo: speech that stops as soon as the agent's audio is paused."""
        await self.hear(VADUserStartedSpeakingFrame())
        assert self.gate.paused
        await self.hear(VADUserStoppedSpeakingFrame(stop_secs=0.0))

    async def speak_on(self) -> None:
        """Speech over the agent that runs on past the pause of its audio (not echo), its words still unknown."""
        await self.hear(VADUserStartedSpeakingFrame())
        await asyncio.sleep(0.2)  # longer than the policy's echo tail (0.15 s)
        await self.hear(VADUserStoppedSpeakingFrame(stop_secs=0.0))


def transcript(text: str, utterance: int | None, *, final: bool = True) -> Frame:
    result = ASRResult(text=text, final=final, utterance=utterance)
    if final:
        return TranscriptionFrame(text, "caller", "", result=result)
    return InterimTranscriptionFrame(text, "caller", "", result=result)


@pytest.fixture
async def desk() -> AsyncIterator[Desk]:
    gate = AgentAudioGate(MemoryTransport().output(), call_id="t")
    policy = BargeInPolicy(call_id="t", gate=gate)
    desk = Desk(policy=policy, gate=gate)

    async def started(_strategy: object, _params: object) -> None:
        desk.turns.append("started")

    async def reset(_strategy: object) -> None:
        desk.resets += 1

    policy.add_event_handler("on_user_turn_started", started)
    policy.add_event_handler("on_reset_aggregation", reset)
    await policy.setup(SimpleNamespace(task_manager=TaskManager(loop=asyncio.get_running_loop())))  # type: ignore[arg-type]
    policy.note_agent_text("We send a reset link to your email address.", new_response=True)
    await desk.hear(BotStartedSpeakingFrame())
    yield desk
    await policy.cleanup()


async def test_a_dismissed_echo_final_arriving_during_the_next_echo_keeps_the_agent_held(desk: Desk) -> None:
    await desk.echo()  # utterance 1: dismissed, the agent plays on
    assert not desk.gate.paused
    await desk.hear(VADUserStartedSpeakingFrame())  # utterance 2 starts over the agent
    resets = desk.resets
    await desk.hear(transcript("it", 1))  # utterance 1's final, late
    assert desk.gate.paused, "a late final of dismissed echo resumed the agent while newer speech was judged"
    assert desk.resets == resets + 1, "the dismissed final stayed in the user aggregation"
    await desk.hear(transcript("at the", 2, final=False))
    await desk.hear(VADUserStoppedSpeakingFrame(stop_secs=0.0))  # utterance 2 ends when the agent stopped: echo
    await desk.hear(transcript("at the", 2))
    assert desk.turns == [] and not desk.gate.paused


async def test_a_late_final_with_the_callers_own_words_interrupts(desk: Desk) -> None:
    await desk.speak_on()  # utterance 1: the caller, words still being decoded
    await desk.hear(VADUserStartedSpeakingFrame())  # utterance 2
    await desk.hear(transcript("what about my invoice", 1))
    assert desk.turns == ["started"]


async def test_a_late_backchannel_final_neither_interrupts_nor_resumes(desk: Desk) -> None:
    await desk.speak_on()
    await desk.hear(VADUserStartedSpeakingFrame())  # utterance 2 holds the agent
    await desk.hear(transcript("okay", 1))
    assert desk.turns == [] and desk.gate.paused


async def test_the_current_utterances_final_is_judged_as_before(desk: Desk) -> None:
    await desk.hear(VADUserStartedSpeakingFrame())
    await desk.hear(transcript("uh-huh", 1))
    assert desk.turns == [] and not desk.gate.paused
    await desk.hear(VADUserStartedSpeakingFrame())
    await desk.hear(transcript("cancel my order", 2))
    assert desk.turns == ["started"]


async def test_the_echo_tail_is_reckoned_in_line_time_when_the_vad_falls_behind(desk: Desk) -> None:
    await desk.hear(VADUserStartedSpeakingFrame())  # the agent's audio is paused: its echo ends on the line now
    await asyncio.sleep(0.3)
    # The VAD is analysing audio read off the line 0.3 s ago: the echo's end reaches it only now.
    behind = InputAudioRawFrame(audio=bytes(640), sample_rate=16000, num_channels=1)
    behind.metadata[ARRIVED_NS] = time.monotonic_ns() - 300_000_000
    await desk.hear(behind)
    await desk.hear(VADUserStoppedSpeakingFrame(stop_secs=0.0))
    assert desk.turns == [] and not desk.gate.paused, "echo that ended at the pause was taken for the caller's voice"
