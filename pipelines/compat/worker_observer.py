"""Patch ``pipecat.worker_observer_lean``: a call's observers are queued only the events they read.

pipecat's worker observer queues one "frame processed" event per frame per processor to every observer, whether it
reads them or not, and every frame's first push: with audio flowing both ways that is a hundred or more hops a
second through each observer's queue, per call, almost all of them audio frames nobody looks at. pipecat 1.14 has
no setting for it: :func:`lean_observer` replaces a worker's observer (``PipelineWorker._observer``) before it runs.
"""

from __future__ import annotations

from pipecat.observers.base_observer import BaseObserver, FrameProcessed, FramePushed
from pipecat.pipeline.worker import PipelineWorker
from pipecat.pipeline.worker_observer import WorkerObserver

from pipelines.compat.registry import usable

__all__ = ["PATCH", "LeanWorkerObserver", "lean_observer"]

PATCH = "pipecat.worker_observer_lean"


class LeanWorkerObserver(WorkerObserver):
    """pipecat's worker observer, queueing to each observer only the events it reads.

    - "frame processed" events go only to observers that override ``on_process_frame``;
    - pushes go only to observers whose ``observed_frames`` (a tuple of frame classes, when the observer has
      one) matches the frame; an observer without it gets every push, as with pipecat's.
    """

    async def on_process_frame(self, data: FrameProcessed) -> None:
        """Queue ``data`` for the observers that override ``on_process_frame``."""
        for proxy in (self._proxies or {}).values():
            if type(proxy.observer).on_process_frame is not BaseObserver.on_process_frame:
                await proxy.queue.put(data)

    async def on_push_frame(self, data: FramePushed) -> None:
        """Queue ``data`` for the observers that want this frame (first push, or every push if they ask)."""
        if not self._proxies:
            return
        frame = data.frame
        wanting = [
            proxy
            for proxy in self._proxies.values()
            if (wanted := getattr(proxy.observer, "observed_frames", None)) is None or isinstance(frame, wanted)
        ]
        if not wanting:
            return
        data.first_push = frame.id not in self._frames_pushed
        if data.first_push:
            self._frames_pushed[frame.id] = frame
        for proxy in wanting:
            if data.first_push or proxy.observer.observe_every_push:
                await proxy.queue.put(data)


def lean_observer(worker: PipelineWorker) -> bool:
    """Give ``worker`` a :class:`LeanWorkerObserver` (before it runs) with the observers it was built with.

    Returns:
        Whether ``worker`` now has one; ``False`` when the patch steps aside (pipecat's observer is kept).
    """
    current = worker._observer
    if isinstance(current, LeanWorkerObserver):
        return True
    if type(current) is not WorkerObserver or not usable(PATCH):
        return False
    worker._observer = LeanWorkerObserver(observers=list(current._observers))
    return True
