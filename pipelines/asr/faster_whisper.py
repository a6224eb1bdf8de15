"""faster-whisper (CTranslate2) from a local model directory, biased to the knowledge base.

The model loads once per process; each call gets pipecat's segmented Whisper service over the shared model
(a whole utterance is transcribed after the VAD's stop, in a worker thread: CTranslate2 releases the GIL).
Knowledge-base terms go in as ``hotwords`` and an ``initial_prompt``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from pipecat.services.whisper.stt import WhisperSTTService

from pipelines.asr.base import ASRBackend, ASRCapabilities, FileTranscript, TimedWord
from pipelines.compat import usable
from pipelines.options import ASROptions

_WHISPER_RATE = 16000


class _SharedWhisperSTTService(WhisperSTTService):
    """pipecat's Whisper service over a process-wide model (no load per call)."""

    def __init__(self, *, shared_model: Any, **kwargs: Any) -> None:
        self._shared_model = shared_model
        super().__init__(**kwargs)

    def _load(self) -> None:
        # A private hook of pipecat's (pipelines.compat: pipecat.whisper_shared_model); when the installed pipecat
        # differs from the one it was written for, the library loads its own model.
        if usable("pipecat.whisper_shared_model"):
            self._model = self._shared_model
        else:
            super()._load()  # type: ignore[no-untyped-call]  # pipecat is untyped


class FasterWhisperBackend(ASRBackend):
    """A CTranslate2 Whisper model loaded once from ``options.model_path``."""

    name = "faster-whisper"
    capabilities = ASRCapabilities(file_transcription=True, hotwords=True, offline=True)

    def __init__(self, options: ASROptions, model: Any) -> None:
        self._options = options
        self._model = model
        self._hotwords = " ".join(options.hotwords) or None
        self._prompt = options.prompt

    @classmethod
    def prewarm(cls, options: ASROptions) -> FasterWhisperBackend:
        """Load the model (CPU, int8) from the local directory; nothing is downloaded."""
        if options.model_path is None or not options.model_path.is_dir():
            raise RuntimeError(
                "faster-whisper needs a local CTranslate2 model directory "
                "(VOXDESK_PIPELINE__ASR__MODEL_PATH); models are never downloaded at run time"
            )
        from faster_whisper import WhisperModel  # type: ignore[import-untyped]  # no type information shipped

        return cls(options, WhisperModel(str(options.model_path), device="cpu", compute_type="int8"))

    def adapt(self, *, lm_path: str, dict_path: str, hotwords: tuple[str, ...] = (), prompt: str | None = None) -> None:
        """Use a changed knowledge base's terms as hotwords and its prompt as the initial prompt for new calls."""
        if hotwords:
            self._hotwords = " ".join(hotwords)
        if prompt:
            self._prompt = prompt

    async def transcribe(self, pcm: bytes, *, sample_rate: int) -> FileTranscript:
        """Transcribe a whole recording with word timestamps on a worker thread (CTranslate2 releases the GIL)."""
        if sample_rate != _WHISPER_RATE:
            raise ValueError(f"Whisper takes {_WHISPER_RATE} Hz audio, not {sample_rate} Hz")
        audio = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float32) / 32768.0

        def run() -> FileTranscript:
            segments, _info = self._model.transcribe(
                audio,
                language=self._options.language,
                word_timestamps=True,
                hotwords=self._hotwords,
                initial_prompt=self._prompt,
            )
            texts: list[str] = []
            words: list[TimedWord] = []
            for segment in segments:  # a lazy generator: decoding happens while it is read
                texts.append(segment.text.strip())
                words.extend(
                    TimedWord(
                        word=w.word.strip(),
                        start=round(float(w.start), 2),
                        end=round(float(w.end), 2),
                        confidence=round(float(w.probability), 3),
                    )
                    for w in segment.words or ()
                )
            return FileTranscript(text=" ".join(t for t in texts if t), words=tuple(words))

        return await asyncio.to_thread(run)

    def create_service(self, *, call_id: str) -> WhisperSTTService:
        """A Whisper recogniser for one call over the shared model."""
        return _SharedWhisperSTTService(
            shared_model=self._model,
            settings=WhisperSTTService.Settings(
                model=str(self._options.model_path),
                language=self._options.language,
                no_speech_prob=0.6,
                hotwords=self._hotwords,
                initial_prompt=self._prompt,
            ),
            sample_rate=self._options.sample_rate,
        )
