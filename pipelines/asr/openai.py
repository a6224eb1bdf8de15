"""OpenAI-compatible transcription (``POST {base_url}/audio/transcriptions``), e.g. OpenAI or a local server.

Each utterance is uploaded after the VAD's stop (pipecat's segmented ``OpenAISTTService``); the knowledge
base's terms go in the ``prompt``.
"""

from __future__ import annotations

from pipecat.services.openai.stt import OpenAISTTService
from pipecat.transcriptions.language import Language

from pipelines.asr.base import ASRBackend
from pipelines.options import ASROptions


class OpenAITranscriptionBackend(ASRBackend):
    """Settings for an OpenAI-compatible transcription endpoint (nothing to load)."""

    name = "openai"

    def __init__(self, options: ASROptions) -> None:
        self._options = options
        self._prompt = options.prompt or (", ".join(options.hotwords) if options.hotwords else None)

    @classmethod
    def prewarm(cls, options: ASROptions) -> OpenAITranscriptionBackend:
        """Check the options (no network at start-up)."""
        if not options.api_key and not options.base_url:
            raise RuntimeError("the openai ASR backend needs an API key or a base_url of a compatible server")
        return cls(options)

    def adapt(self, *, lm_path: str, dict_path: str, hotwords: tuple[str, ...] = ()) -> None:
        """Use new knowledge-base terms as the transcription prompt for new calls."""
        if hotwords and not self._options.prompt:
            self._prompt = ", ".join(hotwords)

    def create_service(self, *, call_id: str) -> OpenAISTTService:
        """A transcription client for one call."""
        return OpenAISTTService(
            api_key=self._options.api_key or "not-needed",
            base_url=self._options.base_url,
            settings=OpenAISTTService.Settings(
                model=self._options.model or "gpt-4o-mini-transcribe",
                language=Language(self._options.language),
                prompt=self._prompt,
            ),
            sample_rate=self._options.sample_rate,
        )
