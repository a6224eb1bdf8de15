"""Run one call's pipeline: worker + runner (no signal handling inside uvicorn), live events, clean end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InterimTranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.worker import PipelineWorker
from pipecat.workers.runner import WorkerRunner

from agent.calls.session import CallSession

log = structlog.get_logger(__name__)
SAMPLE_RATE = 16000

_ACTIVITY = (
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
)


class LiveCallObserver(BaseObserver):
    """Shows who is speaking and the caller's interim text to the caller's client; keeps the silence timer fresh.

    Final turns reach the client through the call sink, the agent's text as it is spoken through
    :class:`AgentCaptions`. The observer is told about each frame once, on its first push: every push it
    observes costs a hop through the worker's observer queue.

    Args:
        call: The call whose client and timers are fed.

    """

    # The frames it reads (the call's observer queues only these to it: not the audio).
    observed_frames: tuple[type[Frame], ...] = (*_ACTIVITY, InterimTranscriptionFrame)

    def __init__(self, *, call: CallSession) -> None:
        super().__init__(observe_every_push=False)
        self._call = call
        self._speaking: dict[str, bool] = {"agent": False, "caller": False}

    async def _speaking_changed(self, role: str, speaking: bool) -> None:
        # Speaking frames are broadcast both ways; report each change once.
        if self._speaking[role] != speaking:
            self._speaking[role] = speaking
            self._call.speaking(role, speaking)
            await self._call.client.send({"type": "speaking", "role": role, "speaking": speaking})

    async def on_push_frame(self, data: FramePushed) -> None:
        """Inspect one frame on its first push."""
        frame: Frame = data.frame
        if isinstance(frame, _ACTIVITY):
            self._call.touch()
            if isinstance(frame, BotStartedSpeakingFrame):
                await self._speaking_changed("agent", True)
            elif isinstance(frame, BotStoppedSpeakingFrame):
                await self._speaking_changed("agent", False)
            elif isinstance(frame, UserStartedSpeakingFrame | VADUserStartedSpeakingFrame):
                await self._speaking_changed("caller", True)
            else:
                await self._speaking_changed("caller", False)
        elif isinstance(frame, InterimTranscriptionFrame):
            self._call.touch()
            await self._call.client.send({"type": "transcript", "role": "caller", "text": frame.text, "final": False})


class AgentCaptions:
    """Shows the agent's text to the caller's client as its audio is played (a ``SpokenTextListener``).

    The pipeline's agent tap, after the output transport, calls it for each ``TTSTextFrame``: the output
    passes the text on once its audio has played, so the captions keep in step with the voice.

    Args:
        call: The call whose client is fed.

    """

    def __init__(self, *, call: CallSession) -> None:
        self._call = call

    async def __call__(self, text: str) -> None:
        """Send ``text`` to the client as the agent's interim transcript."""
        await self._call.client.send({"type": "transcript", "role": "agent", "text": text, "final": False})


async def run_call(
    call: CallSession,
    worker: PipelineWorker,
    *,
    initial_frames: Sequence[Frame] = (),
    client_ready: asyncio.Event | None = None,
    end_reason: Callable[[], str | None] | None = None,
) -> None:
    """Run ``worker`` for ``call`` until it finishes or the call ends; the call always ends.

    Args:
        call: The call session (its stoppers cancel the pipeline).
        worker: The call's pipeline worker (transport in ... transport out).
        initial_frames: Frames queued once the pipeline has started and the client is ready (the greeting).
        client_ready: Set when the caller's media is connected (None: ready at once).
        end_reason: Says why the pipeline finished by itself (e.g. ``agent_ended`` after the end-call
            tool); ``pipeline_finished`` when it returns None.

    """
    # The task was spawned from a request: drop its request id, keep the call id on every line.
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(call_id=call.call_id)
    worker.add_observer(LiveCallObserver(call=call))
    runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False, name=f"runner-{call.call_id}")

    async def stop(reason: str) -> None:
        await worker.cancel(reason=reason)

    call.on_stop(stop)

    pipeline_started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")  # type: ignore[untyped-decorator]
    async def on_started(_worker: Any, _frame: Frame) -> None:
        pipeline_started.set()

    async def greet() -> None:
        await pipeline_started.wait()
        if client_ready is not None:
            await client_ready.wait()
        if initial_frames:
            await worker.queue_frames(list(initial_frames))

    greeter = asyncio.create_task(greet(), name=f"greet-{call.call_id}")
    reason, failed = "pipeline_finished", False
    try:
        await runner.add_workers(worker)
        call.start_timers()
        await runner.run()
    except asyncio.CancelledError:
        reason = "server_shutdown"
        raise
    except Exception as exc:  # noqa: BLE001 - any pipeline crash ends the call as failed
        log.error("call_pipeline_failed", call_id=call.call_id, error_type=type(exc).__name__)
        reason, failed = "pipeline_error", True
    finally:
        greeter.cancel()
        if reason == "pipeline_finished" and end_reason is not None:
            reason = end_reason() or reason
        await call.end(reason, failed=failed)
        await call.sink.flush()  # the call may have ended before its pipeline stored its last records
