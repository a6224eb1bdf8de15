"""One call's pocketsphinx decoder on a thread of this process (when no worker process decodes).

Each call into the decoder handles one 20 ms frame, so the event loop is never held for long.
"""

from __future__ import annotations

import queue
import threading
import time

from pipelines.asr.pocketsphinx_worker import UtteranceDecoder
from pipelines.asr.sphinx.decoder_pool import DecoderPool
from pipelines.asr.sphinx.results import ResultCallback, to_result

__all__ = ["ThreadDecoderStream"]


class ThreadDecoderStream:
    """One call's decoder on its own thread, fed through a queue.

    Args:
        pool: Lends the decoder for the call's length.
        on_result: Called on the decoder's thread with each result.
        sample_rate: Of the audio fed.
        interim_every_frames: Read an interim hypothesis every this many 20 ms frames.
    """

    def __init__(
        self,
        pool: DecoderPool,
        on_result: ResultCallback,
        *,
        sample_rate: int,
        interim_every_frames: int,
    ) -> None:
        self._pool = pool
        self._on_result = on_result
        self._bytes_per_ms = sample_rate * 2 / 1000
        self._piece_bytes = sample_rate * 2 * 20 // 1000
        self._interim_every = interim_every_frames
        self._queue: queue.SimpleQueue[tuple[str, bytes, float]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="pocketsphinx", daemon=True)
        self._thread.start()

    def start_utterance(self, preroll: bytes) -> None:
        """Start an utterance with the audio kept from before the VAD's start."""
        self._queue.put(("start", preroll, 0.0))

    def feed(self, audio: bytes) -> None:
        """Decode one more piece of the utterance."""
        self._queue.put(("audio", audio, 0.0))

    def end_utterance(self) -> None:
        """End the utterance; its final result follows."""
        self._queue.put(("end", b"", time.perf_counter()))

    def abort_utterance(self) -> None:
        """Drop the utterance without a final result."""
        self._queue.put(("abort", b"", 0.0))

    def close(self) -> None:
        """Stop the thread; the decoder goes back to the pool."""
        self._queue.put(("close", b"", 0.0))

    def _run(self) -> None:
        generation, decoder = self._pool.acquire()
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
                    self._on_result(to_result(result_kind, result, self._bytes_per_ms, end_stamp))
                utterance.results.clear()
        except Exception as exc:  # noqa: BLE001 - reported to the pipeline, the thread must not die silently
            self._on_result(("error", repr(exc), 0.0, 0.0, None, (), None))
        finally:
            try:
                utterance.abort()
            except RuntimeError:
                return
            self._pool.release(generation, decoder)
