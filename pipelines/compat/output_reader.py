"""Patch ``pipecat.output_reader_takes_queued_frames``: the output transport hands on queued frames at once.

pipecat's output transport routes the agent's audio and every frame that must stay in step with it (the
response's start, its text, the synthesiser's start) through one queue, read by its audio task with
``asyncio.wait_for(queue.get(), timeout)`` for every frame, queued or not. On Python 3.11 pipecat makes
``wait_for`` ``wait_for2``, which wraps the ``get()`` in a new task and a waiter future: even a frame already
queued takes three event-loop turns to come out, and each turn gives the GIL to the call's other threads and
waits to get it back. Taking what is already queued at once costs no turn. An empty queue is waited on exactly as
pipecat does (its timeout still tells the bot has stopped speaking), and a mixer keeps pipecat's own reader: only
the reader without a mixer is replaced (pipecat 1.14 has no setting for it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import Any

from pipecat.frames.frames import Frame
from pipecat.transports.base_output import BOT_VAD_STOP_FALLBACK_SECS, BaseOutputTransport

from pipelines.compat.registry import usable

__all__ = ["PATCH", "install"]

PATCH = "pipecat.output_reader_takes_queued_frames"

_MediaSender: Any = BaseOutputTransport.MediaSender


async def _without_mixer(sender: Any, vad_stop_secs: float) -> AsyncGenerator[Frame, None]:
    """Pipecat's reader without a mixer, taking a queued frame at once."""
    while True:
        queue = sender._audio_queue
        try:
            if queue.empty():
                frame = await asyncio.wait_for(queue.get(), timeout=vad_stop_secs)
            else:
                frame = queue.get_nowait()
            await sender._filter_audio(frame)
            sender._apply_volume(frame)
            yield frame
            queue.task_done()
        except TimeoutError:
            # As pipecat: no audio for a while, so the bot is not speaking (if it was).
            await sender._bot_stopped_speaking()


def install() -> bool:
    """Replace pipecat's output reader (without a mixer) process-wide, if the registry allows it.

    Returns:
        Whether this call replaced it: ``False`` when it already was, or when the patch steps aside (pipecat's
        reader is then kept).
    """
    if getattr(_MediaSender, "_voxdesk_queued_at_once", False) or not usable(PATCH):
        return False
    original: Callable[[Any], AsyncGenerator[Frame, None]] = _MediaSender._next_frame

    def _next_frame(self: Any) -> AsyncGenerator[Frame, None]:
        if self._mixer:
            return original(self)
        return _without_mixer(self, BOT_VAD_STOP_FALLBACK_SECS)

    # The registry's check unwraps to the original's source; tests run the two side by side through it.
    _next_frame.__wrapped__ = original  # type: ignore[attr-defined]
    _MediaSender._next_frame = _next_frame
    _MediaSender._voxdesk_queued_at_once = True
    return True
