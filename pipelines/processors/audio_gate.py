"""Agent audio gate: holds the agent's audio at the transport's write, so a barge-in can silence it at once.

The barge-in policy pauses the gate the moment the caller's voice starts over the agent, before it knows whether
the caller is interrupting, nodding along ("uh-huh") or is the agent's own echo. An interruption then drops what
was held; anything else resumes the answer where it stopped, nothing lost.

pipecat's output transports pace their writes in real time (each write returns when its audio is due), so holding
the write is holding the audio: at most the chunk already written (20 ms) still plays. The output's audio queue is
left as it is; an interruption clears it as usual. pipecat gives up on a write held longer than
``audio_out_write_timeout_secs`` (10 s); the policy resumes far sooner.

``tap`` goes right after ``transport.output()``: it sees the ``InterruptionFrame`` once the output has cleared its
queue, and only then lets writes through again (dropping any write that was held across the interruption).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from pipecat.frames.frames import CancelFrame, EndFrame, Frame, InterruptionFrame, OutputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_output import BaseOutputTransport

from pipelines.vad import EchoReference

__all__ = ["AgentAudioGate", "GateState"]

GateState = Literal["paused", "resumed", "interrupted"]


class AgentAudioGate:
    """Pause/resume for one call's agent audio, installed on its output transport.

    Args:
        output: The call's output transport; its ``write_audio_frame`` is wrapped.
        call_id: The call (processor names).
        reference: Told each chunk of the agent's audio as it is written (the VAD's far-end reference).
    """

    def __init__(self, output: FrameProcessor, *, call_id: str, reference: EchoReference | None = None) -> None:
        if not isinstance(output, BaseOutputTransport):
            raise TypeError(f"the agent audio gate needs a pipecat output transport, not {type(output).__name__}")
        self._open = asyncio.Event()
        self._open.set()
        self._generation = 0
        self._held_open = False  # see hold_open
        self.last_paused_at_ns: int | None = None
        self.pauses = 0
        self._listeners: list[Callable[[GateState], None]] = []
        write: Callable[[OutputAudioRawFrame], Awaitable[bool]] = output.write_audio_frame

        async def gated_write(frame: OutputAudioRawFrame) -> bool:
            generation = self._generation
            if not self._open.is_set():
                await self._open.wait()
                if generation != self._generation:
                    return False  # held across an interruption: that audio is not to be played
            if reference is not None:
                reference.note(frame.audio)
            return await write(frame)

        # pipecat has no hook between its output queue and the write: the instance's method is wrapped.
        output.write_audio_frame = gated_write  # type: ignore[method-assign]
        self.tap = _GateTap(self, name=f"AgentAudioGate#{call_id}")

    def add_listener(self, listener: Callable[[GateState], None]) -> None:
        """Tell ``listener`` (e.g. a transport's own play-out buffer) each pause, resume and interruption."""
        self._listeners.append(listener)

    def _notify(self, state: GateState) -> None:
        for listener in self._listeners:
            listener(state)

    @property
    def paused(self) -> bool:
        """Whether the agent's audio is being held."""
        return not self._open.is_set()

    def hold_open(self, on: bool) -> None:
        """Keep the gate open whatever the barge-in policy asks (a handoff: hold audio, the human's voice)."""
        self._held_open = on
        if on and not self._open.is_set():
            self.resume()

    def pause(self) -> None:
        """Hold the agent's audio from the next chunk on."""
        if self._held_open:
            return
        if self._open.is_set():
            self._open.clear()
            self.last_paused_at_ns = time.monotonic_ns()
            self.pauses += 1
            self._notify("paused")

    def resume(self) -> None:
        """Play on from where the audio was held."""
        self._open.set()
        self._notify("resumed")

    def release_after_interruption(self) -> None:
        """Open the gate for the next answer; audio held until now is dropped."""
        self._generation += 1
        self._notify("interrupted")
        self.resume()


class _GateTap(FrameProcessor):
    """Re-opens the gate once the output transport has handled an interruption (or the call ends)."""

    def __init__(self, gate: AgentAudioGate, *, name: str) -> None:
        super().__init__(name=name, enable_direct_mode=True)  # a flag check per frame: no queue hop
        self._gate = gate

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            self._gate.release_after_interruption()
        elif isinstance(frame, (EndFrame, CancelFrame)):
            self._gate.resume()
        await self.push_frame(frame, direction)
