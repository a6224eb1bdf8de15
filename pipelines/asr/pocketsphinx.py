"""Offline streaming speech recognition with pocketsphinx, adapted to the knowledge base.

The decoder is fed frame by frame while the caller speaks, so that the end of speech leaves only the final
search (a few milliseconds with the domain model) to do. By default the decoding runs in a worker process
(``pipelines.asr.pocketsphinx_worker``) that serves every call's stream: the C decoder holds the GIL while it
works, about a millisecond per 20 ms frame, and in the server that millisecond would be taken from the event
loop carrying every call's audio. With ``processes=0`` each call decodes on a thread of its own in the server
instead (each call into the decoder handles one 20 ms frame, so the loop is never held for long). Decoders
are pooled (loading one costs ~15 ms with the domain model, ~0.4 s with the general one) and replaced when
the domain model is rebuilt. A worker process that dies fails the utterances it was decoding and is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import json
import os
import queue
import struct
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pocketsphinx
from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    StartFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import STTService
from pipecat.utils.time import time_now_iso8601

from config.settings import missing_acoustic_model_files
from pipelines.asr.base import ASRBackend, ASRResult
from pipelines.asr.pocketsphinx_worker import Kind, UtteranceDecoder, read_message, write_message
from pipelines.metrics import ASR_WORKER_EXITS
from pipelines.options import ASROptions
from pipelines.worker_process import ModuleWorker

__all__ = ["PocketsphinxBackend", "PocketsphinxSTTService"]


@dataclass(frozen=True, slots=True)
class _DecoderConfig:
    generation: int
    kwargs: dict[str, Any]


class PocketsphinxBackend(ASRBackend):
    """Process-wide pocketsphinx resources: the decoder configuration and a pool of idle decoders."""

    name = "pocketsphinx"

    def __init__(self, options: ASROptions) -> None:
        if options.acoustic_model is not None and (missing := missing_acoustic_model_files(options.acoustic_model)):
            where = options.acoustic_model
            raise ValueError(f"acoustic model {where} is not a pocketsphinx model directory (no {', '.join(missing)})")
        self._options = options
        self._lock = threading.Lock()
        self._config = _DecoderConfig(0, self._decoder_kwargs(options.lm_path, options.dict_path))
        self._idle: list[tuple[int, pocketsphinx.Decoder]] = []
        self._workers: list[_DecoderProcess | None] = []
        self._closed = False

    @classmethod
    def prewarm(cls, options: ASROptions) -> PocketsphinxBackend:
        """Start the decoding worker processes and load ``options.prewarm_decoders`` decoders in this one.

        Decoders in this process serve whole-file transcription (and calls, with ``processes=0``).
        """
        backend = cls(options)
        decoders = [backend._new_decoder(backend._config) for _ in range(max(0, options.prewarm_decoders))]
        with backend._lock:
            backend._idle.extend((backend._config.generation, d) for d in decoders)
        count = options.processes if options.processes is not None else max(2, (os.cpu_count() or 1) // 2)
        backend._workers = [backend._spawn() for _ in range(max(0, count))]
        return backend

    def _spawn(self) -> _DecoderProcess | None:
        try:
            return _DecoderProcess(self._config.kwargs, on_exit=self._on_worker_exit)
        except OSError as exc:
            logger.error(f"pocketsphinx worker process did not start, decoding on threads instead: {exc}")
            return None

    def _on_worker_exit(self, dead: _DecoderProcess) -> None:
        """A worker process exited (on its reader thread): replace it unless the backend is closing."""
        if self._closed:
            return
        ASR_WORKER_EXITS.inc()
        logger.error("pocketsphinx worker process exited; its utterances in progress failed, starting another")
        fresh = self._spawn()
        with self._lock:
            self._workers = [fresh if w is dead else w for w in self._workers]

    def open_stream(
        self, on_result: Callable[[_Result], None], *, sample_rate: int, interim_every_frames: int
    ) -> _DecoderStream:
        """One call's streaming decoder: in a worker process when one is running, else on a thread here."""
        if self.live_worker() is not None:
            return _ProcessStream(self, on_result, sample_rate=sample_rate, interim_every_frames=interim_every_frames)
        return _StreamingDecoder(self, on_result, sample_rate=sample_rate, interim_every_frames=interim_every_frames)

    def live_worker(self) -> _DecoderProcess | None:
        """The least busy running worker process, if any."""
        with self._lock:
            live = [w for w in self._workers if w is not None and w.alive]
        return min(live, key=lambda w: w.streams) if live else None

    def close(self) -> None:
        """Stop the worker processes."""
        self._closed = True
        with self._lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            if worker is not None:
                worker.close()

    def _decoder_kwargs(self, lm_path: object, dict_path: object) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"samprate": self._options.sample_rate, "loglevel": "FATAL"}
        if self._options.acoustic_model is not None:
            kwargs["hmm"] = str(self._options.acoustic_model)
        if lm_path is not None:
            kwargs["lm"] = str(lm_path)
        if dict_path is not None:
            kwargs["dict"] = str(dict_path)
        # The lattice best-path pass costs a few ms at the end of an utterance and cuts word errors by a fifth
        # on the evaluation set; the flat second pass (``accurate``) costs ~100 ms more for little gain.
        kwargs["bestpath"] = True
        kwargs["fwdflat"] = self._options.accurate
        return kwargs

    @staticmethod
    def _new_decoder(config: _DecoderConfig) -> pocketsphinx.Decoder:
        return pocketsphinx.Decoder(**config.kwargs)

    @property
    def generation(self) -> int:
        """Increases each time the domain model changes."""
        return self._config.generation

    def acquire(self) -> tuple[int, pocketsphinx.Decoder]:
        """Take an idle decoder of the current model, or load one (call this off the event loop)."""
        with self._lock:
            config = self._config
            while self._idle:
                generation, decoder = self._idle.pop()
                if generation == config.generation:
                    return generation, decoder
        return config.generation, self._new_decoder(config)

    def release(self, generation: int, decoder: pocketsphinx.Decoder) -> None:
        """Give a decoder back to the pool (dropped if the model changed meanwhile)."""
        with self._lock:
            if generation == self._config.generation and len(self._idle) < 64:
                self._idle.append((generation, decoder))

    def adapt(self, *, lm_path: str, dict_path: str, hotwords: tuple[str, ...] = ()) -> None:
        """Use a rebuilt domain model for calls that start from now on."""
        with self._lock:
            self._config = _DecoderConfig(self._config.generation + 1, self._decoder_kwargs(lm_path, dict_path))
            self._idle.clear()
            workers = [w for w in self._workers if w is not None]
        for worker in workers:
            worker.configure(self._config.kwargs)  # the worker loads it off this thread; streams after use it

    def create_service(self, *, call_id: str) -> PocketsphinxSTTService:
        """A streaming recogniser for one call."""
        return PocketsphinxSTTService(backend=self, call_id=call_id, sample_rate=self._options.sample_rate)


_Result = tuple[str, str, float, float, float | None]  # kind, text, decode_ms, audio_ms, finalize_ms


def _result(kind: int, result: dict[str, Any], bytes_per_ms: float, end_stamp: float) -> _Result:
    """A decoder's result as the STT service reads it (``finalize_ms`` measured from ``end_stamp``)."""
    text, decode_ms = str(result.get("text", "")), float(result.get("decode_ms", 0.0))
    audio_ms = float(result.get("audio_bytes", 0)) / bytes_per_ms
    if kind == Kind.FINAL:
        return ("final", text, decode_ms, audio_ms, (time.perf_counter() - end_stamp) * 1000)
    return ("interim", text, decode_ms, audio_ms, None)


class _StreamingDecoder:
    """One call's decoder on its own thread, fed through a queue."""

    def __init__(
        self,
        backend: PocketsphinxBackend,
        on_result: Callable[[_Result], None],
        *,
        sample_rate: int,
        interim_every_frames: int,
    ) -> None:
        self._backend = backend
        self._on_result = on_result
        self._bytes_per_ms = sample_rate * 2 / 1000
        self._piece_bytes = sample_rate * 2 * 20 // 1000
        self._interim_every = interim_every_frames
        self._queue: queue.SimpleQueue[tuple[str, bytes, float]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="pocketsphinx", daemon=True)
        self._thread.start()

    def start_utterance(self, preroll: bytes) -> None:
        self._queue.put(("start", preroll, 0.0))

    def feed(self, audio: bytes) -> None:
        self._queue.put(("audio", audio, 0.0))

    def end_utterance(self) -> None:
        self._queue.put(("end", b"", time.perf_counter()))

    def abort_utterance(self) -> None:
        self._queue.put(("abort", b"", 0.0))

    def close(self) -> None:
        self._queue.put(("close", b"", 0.0))

    def _run(self) -> None:
        generation, decoder = self._backend.acquire()
        utterance = UtteranceDecoder(decoder=decoder, piece_bytes=self._piece_bytes)
        end_stamp = 0.0
        try:
            while True:
                kind, data, stamp = self._queue.get()
                if kind == "close":
                    break
                if kind == "start":
                    utterance.start(self._interim_every, data)
                elif kind == "audio":
                    utterance.feed(data)
                elif kind == "end":
                    end_stamp = stamp
                    utterance.end()
                elif kind == "abort":
                    utterance.abort()
                for result_kind, result in utterance.results:
                    self._on_result(_result(result_kind, result, self._bytes_per_ms, end_stamp))
                utterance.results.clear()
        except Exception as exc:  # noqa: BLE001 - reported to the pipeline, the thread must not die silently
            self._on_result(("error", repr(exc), 0.0, 0.0, None))
        finally:
            try:
                utterance.abort()
            except RuntimeError:
                return
            self._backend.release(generation, decoder)


class _DecoderStream(Protocol):
    """One call's streaming decoder, wherever it decodes."""

    def start_utterance(self, preroll: bytes) -> None: ...
    def feed(self, audio: bytes) -> None: ...
    def end_utterance(self) -> None: ...
    def abort_utterance(self) -> None: ...
    def close(self) -> None: ...


# pipes default to 64 KiB; 1 MiB holds ~30 s of one call's speech if the worker falls behind (Linux only).
_F_SETPIPE_SZ = 1031
_PIPE_BYTES = 1 << 20


class _DecoderProcess:
    """A decoding worker process (``pipelines.asr.pocketsphinx_worker``) and the streams it serves.

    Messages are written from the calls' event loop into a pipe the worker drains (a write blocks only if the
    worker has fallen ~30 s of speech behind); results are read on a thread and handed to each stream's
    callback. When the worker exits, every open stream gets an error and ``on_exit`` is called.
    """

    def __init__(
        self, kwargs: dict[str, Any], *, on_exit: Callable[[_DecoderProcess], None], start_timeout: float = 60.0
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
                    logger.error(f"pocketsphinx worker kept its previous model: {result['error']}")
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


class _ProcessStream:
    """One call's stream in a worker process; on a replaced worker the next utterance opens a new stream."""

    def __init__(
        self,
        backend: PocketsphinxBackend,
        on_result: Callable[[_Result], None],
        *,
        sample_rate: int,
        interim_every_frames: int,
    ) -> None:
        self._backend = backend
        self._on_result = on_result
        self._bytes_per_ms = sample_rate * 2 / 1000
        self._interim = struct.pack(">I", interim_every_frames)
        self._end_stamp = 0.0
        self._worker: _DecoderProcess | None = None
        self._id = 0
        self._failed = False
        self._attach()

    def _attach(self) -> None:
        if self._worker is not None:
            self._worker.forget(self._id)
        self._worker = self._backend.live_worker()
        self._id = self._worker.open(self._on_message) if self._worker is not None else 0
        self._failed = False

    def _on_message(self, kind: int, result: dict[str, Any]) -> None:
        if kind == Kind.ERROR:
            self._fail(str(result.get("error")))
        elif kind in (Kind.INTERIM, Kind.FINAL):
            self._on_result(_result(kind, result, self._bytes_per_ms, self._end_stamp))

    def _fail(self, reason: str) -> None:
        if not self._failed:
            self._failed = True
            self._on_result(("error", reason, 0.0, 0.0, None))

    def _send(self, kind: int, payload: bytes = b"") -> None:
        if self._failed:
            return
        if self._worker is None or not self._worker.send(kind, self._id, payload):
            self._fail("the recogniser worker process exited")

    def start_utterance(self, preroll: bytes) -> None:
        if self._failed or self._worker is None or not self._worker.alive:
            self._attach()  # the worker was replaced (or none was running): this utterance goes to a live one
        self._send(Kind.START, self._interim + preroll)

    def feed(self, audio: bytes) -> None:
        self._send(Kind.AUDIO, audio)

    def end_utterance(self) -> None:
        self._end_stamp = time.perf_counter()
        self._send(Kind.END)

    def abort_utterance(self) -> None:
        self._send(Kind.ABORT)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.send(Kind.CLOSE, self._id)
            self._worker.forget(self._id)


class PocketsphinxSTTService(STTService):
    """Streaming pocketsphinx recogniser for one call.

    Audio is buffered as pre-roll until the VAD (in the user aggregator downstream) reports speech; the
    pre-roll and every following frame go to the decoder as they arrive. Interim hypotheses are pushed
    as ``InterimTranscriptionFrame`` s; at the VAD's end of speech the final hypothesis is pushed as a
    finalized ``TranscriptionFrame`` whose ``result`` is an :class:`ASRResult`.

    Args:
        backend: The process-wide decoder pool.
        call_id: The call this recogniser serves (log context).
        preroll_ms: Audio kept from before the VAD's speech start (it fires ``start_secs`` late).
        interim_every_ms: How often an interim hypothesis is read while the caller speaks.
        **kwargs: Passed to ``STTService``.
    """

    def __init__(
        self,
        *,
        backend: PocketsphinxBackend,
        call_id: str,
        preroll_ms: int = 500,
        interim_every_ms: int = 60,
        **kwargs: Any,
    ) -> None:
        # The final hypothesis arrives a few ms after the VAD's stop; 0.3 s bounds the wait if it does not.
        # Direct mode: feeding a frame is a pipe write and the results come back on their own task, so the
        # caller's audio crosses this stage within the transport's task instead of through a queue and a task.
        kwargs.setdefault("enable_direct_mode", True)
        super().__init__(ttfs_p99_latency=0.3, settings=STTSettings(model="pocketsphinx", language=None), **kwargs)
        self._backend = backend
        self._call_id = call_id
        self._preroll_ms = preroll_ms
        self._interim_every_ms = interim_every_ms
        self._preroll: deque[bytes] = deque()
        self._preroll_bytes = 0
        self._in_utterance = False
        self._decoder: _DecoderStream | None = None
        self._results: asyncio.Queue[_Result] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    def can_generate_metrics(self) -> bool:
        """This service reports TTFB metrics."""
        return True

    async def start(self, frame: StartFrame) -> None:
        """Start the decoder thread and the result reader."""
        await super().start(frame)
        loop = asyncio.get_running_loop()

        def on_result(result: _Result) -> None:
            try:
                loop.call_soon_threadsafe(self._results.put_nowait, result)
            except RuntimeError:  # the loop closed while the call was ending: nobody is waiting
                return

        frames_per_interim = max(1, self._interim_every_ms // 20)
        self._decoder = self._backend.open_stream(
            on_result, sample_rate=self.sample_rate, interim_every_frames=frames_per_interim
        )
        self._reader = self.create_task(self._read_results(), name="pocketsphinx_results")

    async def stop(self, frame: EndFrame) -> None:
        """Stop the decoder thread."""
        await super().stop(frame)
        await self._shutdown()

    async def cancel(self, frame: CancelFrame) -> None:
        """Stop the decoder thread."""
        await super().cancel(frame)
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None
        if self._reader is not None:
            await self.cancel_task(self._reader)
            self._reader = None

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """Feed one audio frame (results arrive asynchronously from the decoder thread)."""
        if self._in_utterance and self._decoder is not None:
            self._decoder.feed(audio)
        else:
            self._preroll.append(audio)
            self._preroll_bytes += len(audio)
            limit = int(self.sample_rate * 2 * self._preroll_ms / 1000)
            while self._preroll_bytes > limit and len(self._preroll) > 1:
                self._preroll_bytes -= len(self._preroll.popleft())
        yield None

    async def _handle_vad_user_started_speaking(self, frame: VADUserStartedSpeakingFrame) -> None:
        await super()._handle_vad_user_started_speaking(frame)
        if self._decoder is None or self._in_utterance:
            return
        self._in_utterance = True
        self._decoder.start_utterance(b"".join(self._preroll))
        self._preroll.clear()
        self._preroll_bytes = 0

    async def _handle_vad_user_stopped_speaking(self, frame: VADUserStoppedSpeakingFrame) -> None:
        await super()._handle_vad_user_stopped_speaking(frame)
        if self._decoder is None or not self._in_utterance:
            return
        self._in_utterance = False
        self._decoder.end_utterance()

    async def _read_results(self) -> None:
        while True:
            kind, text, decode_ms, audio_ms, finalize_ms = await self._results.get()
            if kind == "error":
                logger.bind(call_id=self._call_id).error("pocketsphinx decoder failed")
                await self.push_error(f"pocketsphinx decoder failed: {text}")
                continue
            result = ASRResult(
                text=text, final=kind == "final", finalize_ms=finalize_ms, decode_ms=decode_ms, audio_ms=audio_ms
            )
            if kind == "interim":
                await self.push_frame(InterimTranscriptionFrame(text, self._user_id, time_now_iso8601(), result=result))
            elif text:
                transcript = TranscriptionFrame(text, self._user_id, time_now_iso8601(), result=result)
                transcript.finalized = True
                await self.push_frame(transcript)
            else:
                await self.stop_ttfb_metrics()
