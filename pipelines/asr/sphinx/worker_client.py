"""The pipe client of one pocketsphinx worker process (``pipelines.asr.pocketsphinx_worker``) and its streams.

The C decoder holds the GIL while it works, about a millisecond per 20 ms frame; in a worker process that
millisecond is not taken from the event loop carrying every call's audio.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import queue
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from pipelines.asr.pocketsphinx_worker import Kind, read_message, write_message
from pipelines.asr.sphinx.results import ResultCallback, to_result
from pipelines.worker_process import ModuleWorker

__all__ = ["WorkerClient", "WorkerStream"]

log = structlog.get_logger(__name__)

# pipes default to 64 KiB; 1 MiB holds ~30 s of one call's speech if the worker falls behind (Linux only).
_F_SETPIPE_SZ = 1031
_PIPE_BYTES = 1 << 20


class WorkerClient:
    """A decoding worker process and the streams it serves.

    Messages are written from the calls' event loop into a pipe the worker drains (a write blocks only if the
    worker has fallen ~30 s of speech behind); results are read on a thread and handed to each stream's
    callback. When the worker exits, every open stream gets an error and ``on_exit`` is called.

    Args:
        kwargs: The decoder arguments the worker loads first.
        on_exit: Called on the reader thread when the worker exits unexpectedly.
        start_timeout: How long to wait for the worker's first model to load.

    Raises:
        OSError: The worker did not start or could not load the model.
    """

    def __init__(
        self, kwargs: dict[str, Any], *, on_exit: Callable[[WorkerClient], None], start_timeout: float = 60.0
    ) -> None:
        self._child = ModuleWorker("pipelines.asr.pocketsphinx_worker")
        self.process = self._child.process
        self._stdin = self._child.stdin
        self._stdout = self._child.stdout
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._stdin.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._callbacks: dict[int, Callable[[int, dict[str, Any]], None]] = {}
        self._started: queue.SimpleQueue[str | None] | None = queue.SimpleQueue()
        self.alive = True
        self._reader = threading.Thread(target=self._read_loop, name="pocketsphinx-worker", daemon=True)
        self._reader.start()
        self.configure(kwargs)
        try:
            error = self._started.get(timeout=start_timeout)
        except queue.Empty:
            error = "no answer"
        self._started = None
        if error is not None:
            self.close()
            raise OSError(f"pocketsphinx worker did not start: {error}")

    @property
    def streams(self) -> int:
        """Streams open on this worker."""
        return len(self._callbacks)

    def configure(self, kwargs: dict[str, Any]) -> None:
        """Decode streams started from now on with these decoder arguments (the worker loads the model)."""
        self.send(Kind.CONFIG, 0, json.dumps({"kwargs": kwargs}).encode())

    def open(self, callback: Callable[[int, dict[str, Any]], None]) -> int:
        """Register a stream; ``callback(kind, result)`` is called on the reader thread."""
        with self._lock:
            stream_id = next(self._ids)
            self._callbacks[stream_id] = callback
        return stream_id

    def forget(self, stream_id: int) -> None:
        """Stop delivering results to a stream."""
        with self._lock:
            self._callbacks.pop(stream_id, None)

    def send(self, kind: int, stream_id: int, payload: bytes = b"") -> bool:
        """Write one message; False if the worker is gone."""
        # Its own lock: a write blocked on a full pipe must not stop the reader thread handing out results
        # (the worker, blocked writing results, would never drain the pipe).
        with self._write_lock:
            if not self.alive:
                return False
            try:
                write_message(self._stdin, kind, stream_id, payload)
            except (OSError, ValueError):
                self.alive = False
                return False
        return True

    def _read_loop(self) -> None:
        while True:
            message = read_message(self._stdout)
            if message is None:
                break
            kind, stream_id, payload = message
            result: dict[str, Any] = json.loads(payload) if payload else {}
            if kind == Kind.READY:
                if self._started is not None:
                    self._started.put(result.get("error"))
                elif result.get("error"):
                    log.error("asr_worker_model_swap_failed", kept="previous model", error=str(result["error"])[:200])
                continue
            with self._lock:
                callback = self._callbacks.get(stream_id)
            if callback is not None:
                callback(kind, result)
        with self._lock:
            was_alive, self.alive = self.alive, False
            orphans, self._callbacks = list(self._callbacks.values()), {}
        if self._started is not None:
            self._started.put("the worker exited")
        for callback in orphans:
            callback(Kind.ERROR, {"error": "the recogniser worker process exited"})
        if was_alive:
            self._on_exit(self)

    def close(self) -> None:
        """End the worker's input and wait for it to exit."""
        self.alive = False
        with self._write_lock:  # a message being written is finished; later writes see the worker closed
            pass
        self._child.stop(timeout=5)


class WorkerStream:
    """One call's stream in a worker process; on a replaced worker the next utterance opens a new stream.

    Args:
        pick_worker: The least busy running worker, or ``None`` when none runs.
        on_result: Called on the worker's reader thread with each result.
        sample_rate: Of the audio fed.
        interim_every_frames: Read an interim hypothesis every this many 20 ms frames.
    """

    def __init__(
        self,
        pick_worker: Callable[[], WorkerClient | None],
        on_result: ResultCallback,
        *,
        sample_rate: int,
        interim_every_frames: int,
    ) -> None:
        self._pick_worker = pick_worker
        self._on_result = on_result
        self._bytes_per_ms = sample_rate * 2 / 1000
        self._interim = struct.pack(">I", interim_every_frames)
        self._end_stamp = 0.0
        self._worker: WorkerClient | None = None
        self._id = 0
        self._failed = False
        self._attach()

    def _attach(self) -> None:
        if self._worker is not None:
            self._worker.forget(self._id)
        self._worker = self._pick_worker()
        self._id = self._worker.open(self._on_message) if self._worker is not None else 0
        self._failed = False

    def _on_message(self, kind: int, result: dict[str, Any]) -> None:
        if kind == Kind.ERROR:
            self._fail(str(result.get("error")))
        elif kind in (Kind.INTERIM, Kind.FINAL):
            self._on_result(to_result(kind, result, self._bytes_per_ms, self._end_stamp))

    def _fail(self, reason: str) -> None:
        if not self._failed:
            self._failed = True
            self._on_result(("error", reason, 0.0, 0.0, None, (), None))

    def _send(self, kind: int, payload: bytes = b"") -> None:
        if self._failed:
            return
        if self._worker is None or not self._worker.send(kind, self._id, payload):
            self._fail("the recogniser worker process exited")

    def start_utterance(self, preroll: bytes) -> None:
        """Start an utterance with the audio kept from before the VAD's start."""
        if self._failed or self._worker is None or not self._worker.alive:
            self._attach()  # the worker was replaced (or none was running): this utterance goes to a live one
        self._send(Kind.START, self._interim + preroll)

    def feed(self, audio: bytes) -> None:
        """Decode one more piece of the utterance."""
        self._send(Kind.AUDIO, audio)

    def end_utterance(self) -> None:
        """End the utterance; its final result follows."""
        self._end_stamp = time.perf_counter()
        self._send(Kind.END)

    def abort_utterance(self) -> None:
        """Drop the utterance without a final result."""
        self._send(Kind.ABORT)

    def close(self) -> None:
        """Close the stream in the worker."""
        if self._worker is not None:
            self._worker.send(Kind.CLOSE, self._id)
            self._worker.forget(self._id)
