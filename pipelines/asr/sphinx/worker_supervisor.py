"""Starts the pocketsphinx worker processes, replaces those that exit, and picks the least busy one.

A worker process that dies fails the utterances it was decoding (its streams get an error) and is replaced;
if one cannot start, calls decode on threads of this process instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog

from pipelines.asr.sphinx.worker_client import WorkerClient
from pipelines.metrics import ASR_WORKER_EXITS

__all__ = ["WorkerSupervisor"]


log = structlog.get_logger(__name__)


class WorkerSupervisor:
    """The decoding worker processes of this server process.

    Args:
        decoder_kwargs: The current model's decoder arguments (read whenever a worker starts).
    """

    def __init__(self, decoder_kwargs: Callable[[], dict[str, Any]]) -> None:
        self._decoder_kwargs = decoder_kwargs
        self._lock = threading.Lock()
        self._workers: list[WorkerClient | None] = []
        self._closed = False

    @property
    def workers(self) -> list[WorkerClient | None]:
        """The worker slots (``None`` where a worker did not start)."""
        with self._lock:
            return list(self._workers)

    def start(self, count: int) -> None:
        """Start ``count`` worker processes (each loads the current model; call this off the event loop)."""
        started = [self._spawn() for _ in range(max(0, count))]
        with self._lock:
            self._workers.extend(started)

    def _spawn(self) -> WorkerClient | None:
        try:
            return WorkerClient(self._decoder_kwargs(), on_exit=self._on_worker_exit)
        except OSError as exc:
            log.error("asr_worker_start_failed", fallback="threads", error_type=type(exc).__name__)
            return None

    def _on_worker_exit(self, dead: WorkerClient) -> None:
        """A worker process exited (on its reader thread): replace it unless the supervisor is closing."""
        if self._closed:
            return
        ASR_WORKER_EXITS.inc()
        log.error("asr_worker_exited", action="replaced", note="utterances in progress failed")
        fresh = self._spawn()
        with self._lock:
            self._workers = [fresh if w is dead else w for w in self._workers]

    def live_worker(self) -> WorkerClient | None:
        """The least busy running worker process, if any."""
        with self._lock:
            live = [w for w in self._workers if w is not None and w.alive]
        return min(live, key=lambda w: w.streams) if live else None

    def configure(self, kwargs: dict[str, Any]) -> None:
        """Have every worker load these decoder arguments for streams started from now on."""
        for worker in self.workers:
            if worker is not None:
                worker.configure(kwargs)  # the worker loads it off this thread; streams after use it

    def close(self) -> None:
        """Stop the worker processes."""
        self._closed = True
        with self._lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            if worker is not None:
                worker.close()
