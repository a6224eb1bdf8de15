"""Patch ``pipecat.input_pushes_from_reader``: the input transport hands the caller's audio on as it is read.

pipecat's input transport puts every audio frame its reader produces on a queue, and a second task takes it off
with ``asyncio.wait_for(queue.get(), timeout)`` and pushes it on. With no audio filter that task only hands the
frame on (its timeout does nothing in pipecat 1.14), and on Python 3.11 pipecat makes that ``wait_for`` into
``wait_for2``, which starts a new task and a waiter future for every frame: each 20 ms frame of each call cost
several event-loop turns before the recogniser saw it. :func:`push_audio_directly` makes the transport push each
frame from the reader's own task, under the same conditions as pipecat's task: only while that task would run
(the transport is started and not stopped) and not while paused. A transport with an audio filter, or without
audio passthrough, keeps pipecat's queue (pipecat 1.14 has no setting for this).

Each frame it pushes carries when it was read (``frame.metadata[ARRIVED_NS]``, monotonic nanoseconds): how far a
later stage is behind the line is then known (the barge-in policy reckons the caller's voice in line time).
"""

from __future__ import annotations

import time
from typing import Any

from pipecat.frames.frames import InputAudioRawFrame
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.transports.base_input import BaseInputTransport

from pipelines.compat.registry import usable

__all__ = ["ARRIVED_NS", "PATCH", "push_audio_directly"]

PATCH = "pipecat.input_pushes_from_reader"
ARRIVED_NS = "voxdesk.arrived_ns"


def push_audio_directly(transport_input: FrameProcessor) -> bool:
    """Make ``transport_input`` push the caller's audio from its reader's task (module docstring).

    Returns:
        Whether it now does: only pipecat input transports without an audio filter, with audio passthrough,
        while the registry allows the patch (otherwise pipecat's queue is kept).
    """
    if not isinstance(transport_input, BaseInputTransport):
        return False
    params = transport_input._params
    if params.audio_in_filter is not None or not params.audio_in_passthrough or not usable(PATCH):
        return False
    queued = transport_input.push_audio_frame
    target: Any = transport_input

    async def push_audio_frame(frame: InputAudioRawFrame) -> None:
        # pipecat's audio task exists from "transport ready" until stop/cancel; a pause restarts it.
        if target._audio_task is None or target._paused or not params.audio_in_enabled:
            return
        frame.metadata[ARRIVED_NS] = time.monotonic_ns()
        if not target._audio_in_queue.empty():
            await queued(frame)  # frames queued before this one go first
            return
        await target.push_frame(frame)

    target.push_audio_frame = push_audio_frame
    return True
