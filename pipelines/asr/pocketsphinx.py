"""Offline streaming speech recognition with pocketsphinx, adapted to the knowledge base.

The decoder is fed frame by frame while the caller speaks, so that the end of speech leaves only the final
search (a few milliseconds with the domain model) to do. By default the decoding runs in a worker process
(``pipelines.asr.pocketsphinx_worker``) that serves every call's stream: the C decoder holds the GIL while it
works, about a millisecond per 20 ms frame, and in the server that millisecond would be taken from the event
loop carrying every call's audio. With ``processes=0`` each call decodes on a thread of its own in the server
instead (each call into the decoder handles one 20 ms frame, so the loop is never held for long). Decoders
are pooled (loading one costs ~15 ms with the domain model, ~0.4 s with the general one) and replaced when
the domain model is rebuilt. A worker process that dies fails the utterances it was decoding and is replaced.

This module holds the backend (which composes the parts in ``pipelines.asr.sphinx``) and the per-call STT
service; the decoder pool, the thread decoder, the worker processes' client and their supervisor live there.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncGenerator
from typing import Any

import pocketsphinx
import structlog
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
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import STTService
from pipecat.utils.time import time_now_iso8601

from config.settings import missing_acoustic_model_files
from pipelines.asr.base import (
    ASRBackend,
    ASRCapabilities,
    ASRResult,
    Evidence,
    EvidenceProbe,
    FileTranscript,
    RecognitionEvidenceFrame,
)
from pipelines.asr.sphinx.decoder_pool import DecoderPool
from pipelines.asr.sphinx.file_decoder import decode_file
from pipelines.asr.sphinx.results import DecoderResult, DecoderStream, ResultCallback
from pipelines.asr.sphinx.thread_decoder import ThreadDecoderStream
from pipelines.asr.sphinx.worker_client import WorkerClient, WorkerStream
from pipelines.asr.sphinx.worker_supervisor import WorkerSupervisor
from pipelines.asr.whisper_pool import WHISPER_SPECULATIONS, SecondOpinion
from pipelines.options import ASROptions
from pipelines.vad import frame_rms, under_peak

__all__ = ["PocketsphinxBackend", "PocketsphinxSTTService"]

_WHISPER_RATE = 16000
_MAX_UTTERANCE_BYTES = 30 * _WHISPER_RATE * 2  # Whisper's window at 16 kHz: audio beyond it is not kept
# Quiet, for the speculative start: a frame's RMS under this share of the utterance's loudest frame (-26 dB), or
# under the floor (pipelines.vad.under_peak).
_QUIET_RATIO = 0.05
# The speculative text serves the final only if no more than this much (quiet) audio followed it: more means the
# VAD heard speech the energy rule did not.
_MAX_SPECULATION_TAIL_MS = 500

log = structlog.get_logger(__name__)


class PocketsphinxBackend(ASRBackend):
    """Process-wide pocketsphinx resources: the decoder pool of this process and the decoding worker processes.

    Args:
        options: The recogniser options.

    Raises:
        ValueError: ``options.acoustic_model`` is not a pocketsphinx model directory.
    """

    name = "pocketsphinx"
    capabilities = ASRCapabilities(
        interim_results=True,
        file_transcription=True,
        domain_lm=True,
        acoustic_adaptation=True,
        offline=True,
    )

    def __init__(self, options: ASROptions) -> None:
        if options.acoustic_model is not None and (missing := missing_acoustic_model_files(options.acoustic_model)):
            where = options.acoustic_model
            raise ValueError(f"acoustic model {where} is not a pocketsphinx model directory (no {', '.join(missing)})")
        self._options = options
        self.pool = DecoderPool(options)
        self.supervisor = WorkerSupervisor(lambda: self.pool.config.kwargs)
        # Whisper's second opinion on finals (``pipelines.asr.whisper_pool``); None: pocketsphinx alone.
        self.second_opinion: SecondOpinion | None = None

    def use_second_opinion(self, opinion: SecondOpinion) -> None:
        """Have calls started from now on ask Whisper about their finals (its pool is closed with this backend)."""
        self.second_opinion = opinion

    @classmethod
    def prewarm(cls, options: ASROptions) -> PocketsphinxBackend:
        """Start the decoding worker processes and load ``options.prewarm_decoders`` decoders in this one.

        Decoders in this process serve whole-file transcription (and calls, with ``processes=0``).
        """
        backend = cls(options)
        backend.pool.prewarm(options.prewarm_decoders)
        count = options.processes if options.processes is not None else max(2, (os.cpu_count() or 1) // 2)
        backend.supervisor.start(count)
        return backend

    def open_stream(self, on_result: ResultCallback, *, sample_rate: int, interim_every_frames: int) -> DecoderStream:
        """One call's streaming decoder: in a worker process when one is running, else on a thread here."""
        if self.supervisor.live_worker() is not None:
            return WorkerStream(
                self.supervisor.live_worker,
                on_result,
                sample_rate=sample_rate,
                interim_every_frames=interim_every_frames,
            )
        return ThreadDecoderStream(
            self.pool, on_result, sample_rate=sample_rate, interim_every_frames=interim_every_frames
        )

    def live_worker(self) -> WorkerClient | None:
        """The least busy running worker process, if any."""
        return self.supervisor.live_worker()

    def close(self) -> None:
        """Stop the worker processes (Whisper's too)."""
        self.supervisor.close()
        if self.second_opinion is not None:
            self.second_opinion.pool.close()

    @property
    def generation(self) -> int:
        """Increases each time the domain model changes."""
        return self.pool.generation

    def acquire(self) -> tuple[int, pocketsphinx.Decoder]:
        """Take an idle decoder of the current model, or load one (call this off the event loop)."""
        return self.pool.acquire()

    def release(self, generation: int, decoder: pocketsphinx.Decoder) -> None:
        """Give a decoder back to the pool (dropped if the model changed meanwhile)."""
        self.pool.release(generation, decoder)

    def adapt(self, *, lm_path: str, dict_path: str, hotwords: tuple[str, ...] = (), prompt: str | None = None) -> None:
        """Use a rebuilt domain model for calls that start from now on."""
        config = self.pool.reconfigure(lm_path=lm_path, dict_path=dict_path)
        self.supervisor.configure(config.kwargs)
        if prompt and self.second_opinion is not None:
            self.second_opinion.pool.set_prompt(prompt)

    async def transcribe(self, pcm: bytes, *, sample_rate: int) -> FileTranscript:
        """Transcribe a whole recording on a pooled decoder of this process, on a worker thread."""
        if sample_rate != self._options.sample_rate:
            raise ValueError(f"the decoders take {self._options.sample_rate} Hz audio, not {sample_rate} Hz")

        def run() -> FileTranscript:
            generation, decoder = self.pool.acquire()
            try:
                return decode_file(decoder, pcm, sample_rate=sample_rate)
            finally:
                self.pool.release(generation, decoder)

        return await asyncio.to_thread(run)

    def create_service(self, *, call_id: str) -> PocketsphinxSTTService:
        """A streaming recogniser for one call."""
        return PocketsphinxSTTService(
            backend=self, call_id=call_id, sample_rate=self._options.sample_rate, second_opinion=self.second_opinion
        )


class PocketsphinxSTTService(STTService):
    """Streaming pocketsphinx recogniser for one call.

    Audio is buffered as pre-roll until the VAD (in the user aggregator downstream) reports speech; the
    pre-roll and every following frame go to the decoder as they arrive. Interim hypotheses are pushed
    as ``InterimTranscriptionFrame`` s; at the VAD's end of speech the final hypothesis is pushed as a
    finalized ``TranscriptionFrame`` whose ``result`` is an :class:`ASRResult`.

    With a ``second_opinion`` the utterance's audio is kept too, and at the final Whisper may be asked (by its
    mode: always, or when the call's evidence probe says the evidence is weak); its transcript, if back before the
    deadline and not outranked (``best``), is pushed instead of pocketsphinx's (with no N-best list or confidence:
    Whisper has neither). Interim hypotheses are pushed as before, so barge-in and prefetch do not wait for it.

    Args:
        backend: The process-wide decoder pool.
        call_id: The call this recogniser serves (log context).
        preroll_ms: Audio kept from before the VAD's speech start (it fires ``start_secs`` late).
        interim_every_ms: How often an interim hypothesis is read while the caller speaks.
        second_opinion: Whisper's second opinion on finals (``None``: pocketsphinx alone).
        **kwargs: Passed to ``STTService``.
    """

    def __init__(
        self,
        *,
        backend: PocketsphinxBackend,
        call_id: str,
        preroll_ms: int = 500,
        interim_every_ms: int = 60,
        second_opinion: SecondOpinion | None = None,
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
        self._decoder: DecoderStream | None = None
        self._results: asyncio.Queue[DecoderResult] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._second = second_opinion if second_opinion is not None and second_opinion.mode != "off" else None
        self._probe: EvidenceProbe | None = None
        self._utterance: bytearray = bytearray()  # this utterance's audio (kept only with a second opinion)
        self._ended: bytes = b""  # the audio of the utterance whose final comes next
        self._vad_starts = 0
        self._result_utterances: deque[int] = deque()  # begun utterances whose final is still to come
        # Speculative start: the loudest frame so far, the quiet run's start (bytes into the utterance) and length,
        # and the decode of the audio before it (its byte count, its task) while the quiet lasts.
        self._peak_rms = 0.0
        self._quiet_from: int | None = None
        self._quiet_ms = 0.0
        self._speculation: tuple[int, asyncio.Task[str]] | None = None
        self._speculated = False  # this quiet run has asked for one (only its first refusal is counted busy)
        self._ended_speculation: tuple[int, asyncio.Task[str]] | None = None
        # The utterance's latest interim words, and (in a quiet run, when the rule weighs them) their evidence.
        self._interim = ""
        self._interim_evidence: asyncio.Task[Evidence | None] | None = None
        self._spared = False  # this quiet run's interim evidence was strong: no decode

    def use_evidence_probe(self, probe: EvidenceProbe) -> None:
        """Ask ``probe`` what each of a final's transcripts finds in the knowledge base (the second opinion's rule)."""
        self._probe = probe

    def can_generate_metrics(self) -> bool:
        """This service reports TTFB metrics."""
        return True

    async def start(self, frame: StartFrame) -> None:
        """Start the decoder thread and the result reader."""
        await super().start(frame)
        if self.sample_rate != _WHISPER_RATE:  # Whisper takes 16 kHz audio only
            self._second = None
        loop = asyncio.get_running_loop()

        def on_result(result: DecoderResult) -> None:
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
            if self._second is not None and len(self._utterance) < _MAX_UTTERANCE_BYTES:
                self._utterance += audio
                self._watch_for_silence(audio)
        else:
            self._preroll.append(audio)
            self._preroll_bytes += len(audio)
            limit = int(self.sample_rate * 2 * self._preroll_ms / 1000)
            while self._preroll_bytes > limit and len(self._preroll) > 1:
                self._preroll_bytes -= len(self._preroll.popleft())
        yield None

    def _watch_for_silence(self, audio: bytes) -> None:
        """Start Whisper on the utterance so far when a quiet run begins; drop that decode when speech resumes."""
        assert self._second is not None
        samples = len(audio) // 2
        if samples == 0:
            return
        rms = frame_rms(audio)
        self._peak_rms = max(self._peak_rms, rms)
        if not under_peak(rms, self._peak_rms, _QUIET_RATIO):  # speech
            self._quiet_from, self._quiet_ms, self._speculated, self._spared = None, 0.0, False, False
            self._forget_interim_evidence()
            if self._speculation is not None:
                self._speculation[1].cancel()
                self._speculation = None
                WHISPER_SPECULATIONS.labels(outcome="discarded").inc()
            return
        if self._quiet_from is None:
            self._quiet_from = len(self._utterance) - len(audio)
            self._weigh_interim()
        self._quiet_ms += samples * 1000 / self.sample_rate
        if (
            self._speculation is None
            and not self._spared
            and self._quiet_ms >= self._second.speculate_after_ms
            and self._peak_rms > 0
        ):
            worth = self._second.worth_speculating(self._interim_evidence, self._quiet_ms)
            if worth is None:  # the interim words are still being searched: ask again on the next frame
                return
            if not worth:
                self._spared = True
                return
            # One decode per quiet run, started on its first frame with an idle worker (a discarded decode frees
            # its worker within an encoder pass); with none idle until the final, the final's audio is decoded.
            first_try, self._speculated = not self._speculated, True
            if self._second.can_speculate(count_busy=first_try):
                task = self._second.speculate(bytes(self._utterance[: self._quiet_from]))
                if task is not None:
                    self._speculation = (self._quiet_from, task)

    def _weigh_interim(self) -> None:
        """Search the latest interim words (the quiet run's evidence), when the second opinion's rule weighs them."""
        self._forget_interim_evidence()
        if self._second is not None:
            self._interim_evidence = self._second.weigh_interim(self._probe, self._interim, call_id=self._call_id)

    def _forget_interim_evidence(self) -> None:
        if self._interim_evidence is not None:
            self._interim_evidence.cancel()
            self._interim_evidence = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Open the decoder's utterance at the VAD's speech start and close it at its end, then as STTService.

        The utterance is opened and closed before the base class passes the VAD frame on, so the final
        hypothesis is being decoded by the time the user aggregator downstream sees the end of speech.
        """
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._vad_starts += 1
            self._begin_utterance()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._end_utterance()
        await super().process_frame(frame, direction)

    def _begin_utterance(self) -> None:
        if self._decoder is None or self._in_utterance:
            return
        self._in_utterance = True
        self._result_utterances.append(self._vad_starts)
        preroll = b"".join(self._preroll)
        self._decoder.start_utterance(preroll)
        if self._second is not None:
            self._utterance = bytearray(preroll)
            self._peak_rms, self._quiet_from, self._quiet_ms, self._speculated = 0.0, None, 0.0, False
            self._interim, self._spared = "", False
            self._forget_interim_evidence()
            self._drop_speculation(self._speculation)
            self._speculation = None
        self._preroll.clear()
        self._preroll_bytes = 0

    def _end_utterance(self) -> None:
        if self._decoder is None or not self._in_utterance:
            return
        self._in_utterance = False
        self._decoder.end_utterance()
        if self._second is not None:
            self._ended, self._utterance = bytes(self._utterance), bytearray()
            self._drop_speculation(self._ended_speculation)  # a final that never came (no words)
            self._ended_speculation, self._speculation = self._speculation, None
            self._forget_interim_evidence()

    @staticmethod
    def _drop_speculation(speculation: tuple[int, asyncio.Task[str]] | None) -> None:
        if speculation is not None:
            speculation[1].cancel()
            WHISPER_SPECULATIONS.labels(outcome="discarded").inc()

    async def _read_results(self) -> None:
        while True:
            kind, text, decode_ms, audio_ms, finalize_ms, alternatives, confidence = await self._results.get()
            # Each utterance's results come in order and end with exactly one final (with or without words).
            utterance = self._result_utterances[0] if self._result_utterances else None
            if kind == "final" and self._result_utterances:
                self._result_utterances.popleft()
            if kind == "error":
                self._result_utterances.clear()  # the utterances in progress failed: no final comes for them
                log.error("asr_decoder_failed", call_id=self._call_id, backend="pocketsphinx")
                await self.push_error(f"pocketsphinx decoder failed: {text}")
                continue
            result = ASRResult(
                text=text,
                final=kind == "final",
                finalize_ms=finalize_ms,
                decode_ms=decode_ms,
                audio_ms=audio_ms,
                confidence=confidence,
                alternatives=alternatives,
                utterance=utterance,
            )
            if kind == "interim":
                if self._second is not None and self._in_utterance and text != self._interim:
                    self._interim = text
                    if self._quiet_from is not None and self._speculation is None:  # newer words in a quiet run
                        self._spared = False
                        self._weigh_interim()
                await self.push_frame(InterimTranscriptionFrame(text, self._user_id, time_now_iso8601(), result=result))
            elif text:
                if self._second is not None:
                    # The turn waits for this final (the user aggregator needs a transcript), at most the deadline.
                    pcm, self._ended = self._ended, b""
                    early = self._early(pcm)
                    heard = await self._second.revise(
                        text, confidence, pcm, call_id=self._call_id, probe=self._probe, early=early
                    )
                    if heard is not None:
                        text, alternatives, confidence = heard, (), None
                        result = ASRResult(
                            text=text,
                            final=True,
                            finalize_ms=finalize_ms,
                            decode_ms=decode_ms,
                            audio_ms=audio_ms,
                            utterance=utterance,
                        )
                transcript = TranscriptionFrame(text, self._user_id, time_now_iso8601(), result=result)
                transcript.finalized = True
                await self.push_frame(transcript)
                await self.push_frame(
                    RecognitionEvidenceFrame(text=text, alternatives=alternatives, confidence=confidence)
                )
            else:
                self._drop_speculation(self._ended_speculation)
                self._ended_speculation = None
                await self.stop_ttfb_metrics()

    def _early(self, pcm: bytes) -> asyncio.Task[str] | None:
        """The ended utterance's speculative decode, if it covers ``pcm`` but for a short quiet tail."""
        speculation, self._ended_speculation = self._ended_speculation, None
        if speculation is None:
            return None
        covered, task = speculation
        if (len(pcm) - covered) * 1000 / (2 * self.sample_rate) > _MAX_SPECULATION_TAIL_MS:
            self._drop_speculation(speculation)
            return None
        return task
