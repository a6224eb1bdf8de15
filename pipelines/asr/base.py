"""Speech recognition backends: process-wide resources, one STT processor per call."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from pipecat.services.stt_service import STTService

from pipelines.options import ASROptions

# Backend name → "module:Class". One file per backend beside this one.
ASR_BACKENDS: dict[str, str] = {
    "pocketsphinx": "pipelines.asr.pocketsphinx:PocketsphinxBackend",
    "faster-whisper": "pipelines.asr.faster_whisper:FasterWhisperBackend",
    "openai": "pipelines.asr.openai:OpenAITranscriptionBackend",
}


@dataclass(frozen=True, slots=True)
class ASRResult:
    """What a recogniser attaches to its transcription frames (``frame.result``)."""

    text: str
    final: bool
    # Time from the end-of-speech signal to this result (final results only).
    finalize_ms: float | None = None
    # Recogniser CPU time for the utterance so far.
    decode_ms: float = 0.0
    audio_ms: float = 0.0
    confidence: float | None = None


class ASRBackend(ABC):
    """A speech recognition engine, prewarmed once per process.

    ``prewarm`` loads whatever is heavy (models, decoders, HTTP clients' settings); ``create_service``
    is cheap and returns a fresh pipecat ``STTService`` for one call.
    """

    name: str = ""

    @classmethod
    @abstractmethod
    def prewarm(cls, options: ASROptions) -> ASRBackend:
        """Load the engine's process-wide resources."""

    @abstractmethod
    def create_service(self, *, call_id: str) -> STTService:
        """A recogniser for one call."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what ``prewarm`` started (worker processes); calls must be over."""

    def adapt(self, *, lm_path: str, dict_path: str, hotwords: tuple[str, ...] = ()) -> None:  # noqa: B027 - optional hook
        """Adapt to a changed knowledge base (new calls use it; calls in progress keep theirs).

        Args:
            lm_path: A domain ARPA language model (see ``pipelines.asr.domain_lm``).
            dict_path: Its pronunciation dictionary.
            hotwords: Knowledge-base terms, for engines that take hints instead of a language model.
        """
