"""Offline streaming speech recognition with pocketsphinx, adapted to the knowledge base.

The decoder is fed frame by frame while the caller speaks, on a dedicated thread per call, so that the
end of speech leaves only the final search (a few milliseconds with the domain model) to do. The C
decoder holds the GIL while it works: each call into it handles one 20 ms transport frame, which with
the domain language model takes about a millisecond, so the event loop is never held for long.
Decoders are pooled per process (loading one costs ~15 ms with the domain model, ~0.4 s with the
general one) and replaced when the domain model is rebuilt.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

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

from pipelines.asr.base import ASRBackend, ASRResult
from pipelines.options import ASROptions

__all__ = ["PocketsphinxBackend", "PocketsphinxSTTService"]


@dataclass(frozen=True, slots=True)
class _DecoderConfig:
    generation: int
    kwargs: dict[str, Any]


class PocketsphinxBackend(ASRBackend):
    """Process-wide pocketsphinx resources: the decoder configuration and a pool of idle decoders."""

    name = "pocketsphinx"

    def __init__(self, options: ASROptions) -> None:
        self._options = options
        self._lock = threading.Lock()
        self._config = _DecoderConfig(0, self._decoder_kwargs(options.lm_path, options.dict_path))
        self._idle: list[tuple[int, pocketsphinx.Decoder]] = []

    @classmethod
    def prewarm(cls, options: ASROptions) -> PocketsphinxBackend:
        """Load ``options.prewarm_decoders`` decoders (the acoustic model and language model)."""
        backend = cls(options)
        decoders = [backend._new_decoder(backend._config) for _ in range(max(0, options.prewarm_decoders))]
        with backend._lock:
            backend._idle.extend((backend._config.generation, d) for d in decoders)
        return backend

    def _decoder_kwargs(self, lm_path: object, dict_path: object) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"samprate": self._options.sample_rate, "loglevel": "FATAL"}
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

    def create_service(self, *, call_id: str) -> PocketsphinxSTTService:
        """A streaming recogniser for one call."""
        return PocketsphinxSTTService(backend=self, call_id=call_id, sample_rate=self._options.sample_rate)


_Result = tuple[str, str, float, float, float | None]  # kind, text, decode_ms, audio_ms, finalize_ms


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
        in_utt = False
        decode_s = 0.0
        audio_bytes = 0
        frames = 0
        last_text = ""
        try:
            while True:
                kind, data, stamp = self._queue.get()
                if kind == "close":
                    break
                if kind == "start":
                    if in_utt:
                        decoder.end_utt()
                    decoder.start_utt()
                    in_utt, decode_s, audio_bytes, frames, last_text = True, 0.0, 0, 0, ""
                    kind = "audio"
                if kind == "audio" and in_utt and data:
                    t0 = time.perf_counter()
                    # The decoder holds the GIL for the whole call: the pre-roll (up to 0.5 s) goes in 20 ms
                    # pieces, so the event loop waits at most one piece's decoding (about a millisecond).
                    for offset in range(0, len(data), self._piece_bytes):
                        decoder.process_raw(data[offset : offset + self._piece_bytes], False, False)
                    audio_bytes += len(data)
                    frames += 1
                    if frames % self._interim_every == 0:
                        hyp = decoder.hyp()
                        text = hyp.hypstr if hyp is not None else ""
                        if text and text != last_text:
                            last_text = text
                            self._on_result(("interim", text, decode_s * 1000, audio_bytes / self._bytes_per_ms, None))
                    decode_s += time.perf_counter() - t0
                elif kind == "end" and in_utt:
                    t0 = time.perf_counter()
                    decoder.end_utt()
                    hyp = decoder.hyp()
                    in_utt = False
                    decode_s += time.perf_counter() - t0
                    text = hyp.hypstr if hyp is not None else ""
                    finalize_ms = (time.perf_counter() - stamp) * 1000
                    self._on_result(("final", text, decode_s * 1000, audio_bytes / self._bytes_per_ms, finalize_ms))
                elif kind == "abort" and in_utt:
                    decoder.end_utt()
                    in_utt = False
        except Exception as exc:  # noqa: BLE001 - reported to the pipeline, the thread must not die silently
            self._on_result(("error", repr(exc), 0.0, 0.0, None))
        finally:
            if in_utt:
                try:
                    decoder.end_utt()
                except RuntimeError:
                    return
            self._backend.release(generation, decoder)


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
        super().__init__(ttfs_p99_latency=0.3, settings=STTSettings(model="pocketsphinx", language=None), **kwargs)
        self._backend = backend
        self._call_id = call_id
        self._preroll_ms = preroll_ms
        self._interim_every_ms = interim_every_ms
        self._preroll: deque[bytes] = deque()
        self._preroll_bytes = 0
        self._in_utterance = False
        self._decoder: _StreamingDecoder | None = None
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
        self._decoder = _StreamingDecoder(
            self._backend, on_result, sample_rate=self.sample_rate, interim_every_frames=frames_per_interim
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
