"""OpenAI-compatible transcription (``POST {base_url}/audio/transcriptions``), e.g. OpenAI or a local server.

Each utterance is uploaded after the VAD's stop (pipecat's segmented ``OpenAISTTService``); the knowledge
base's terms go in the ``prompt``.
"""

from __future__ import annotations

import io
import wave
from typing import Any

import httpx
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.transcriptions.language import Language

from pipelines.asr.base import ASRBackend, ASRCapabilities, FileTranscript, RecognitionServiceError, TimedWord
from pipelines.options import ASROptions

_DEFAULT_BASE_URL = "https://api.openai.com/v1"
_DEFAULT_MODEL = "gpt-4o-mini-transcribe"
# The gpt-4o transcription models answer only ``json``/``text`` (no word timestamps); Whisper models and
# compatible servers answer ``verbose_json`` with ``timestamp_granularities[]=word``.
_TEXT_ONLY_PREFIX = "gpt-4o"


class OpenAITranscriptionBackend(ASRBackend):
    """Settings for an OpenAI-compatible transcription endpoint (nothing to load)."""

    name = "openai"
    capabilities = ASRCapabilities(file_transcription=True, hotwords=True, offline=False)

    def __init__(self, options: ASROptions) -> None:
        self._options = options
        self._prompt = options.prompt or (", ".join(options.hotwords) if options.hotwords else None)

    @classmethod
    def prewarm(cls, options: ASROptions) -> OpenAITranscriptionBackend:
        """Check the options (no network at start-up)."""
        if not options.api_key and not options.base_url:
            raise RuntimeError("the openai ASR backend needs an API key or a base_url of a compatible server")
        return cls(options)

    def adapt(self, *, lm_path: str, dict_path: str, hotwords: tuple[str, ...] = (), prompt: str | None = None) -> None:
        """Use a changed knowledge base's prompt (or, without one, its terms) as the transcription prompt."""
        if prompt:
            self._prompt = prompt
        elif hotwords:
            self._prompt = ", ".join(hotwords)

    async def transcribe(self, pcm: bytes, *, sample_rate: int) -> FileTranscript:
        """Upload a whole recording as WAV (``POST {base_url}/audio/transcriptions``); word timings when offered.

        Raises:
            RecognitionServiceError: The server could not be reached, answered with an error status or with
                something other than a transcription.
        """
        wav = io.BytesIO()
        with wave.open(wav, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(sample_rate)
            out.writeframes(pcm)
        model = self._options.model or _DEFAULT_MODEL
        words_offered = not model.startswith(_TEXT_ONLY_PREFIX)
        data: dict[str, Any] = {
            "model": model,
            "language": self._options.language,
            "response_format": "verbose_json" if words_offered else "json",
        }
        if words_offered:
            data["timestamp_granularities[]"] = "word"
        if self._prompt:
            data["prompt"] = self._prompt
        headers = {"Authorization": f"Bearer {self._options.api_key}"} if self._options.api_key else {}
        url = f"{(self._options.base_url or _DEFAULT_BASE_URL).rstrip('/')}/audio/transcriptions"
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=10.0)) as client:
                response = await client.post(
                    url, headers=headers, data=data, files={"file": ("audio.wav", wav.getvalue(), "audio/wav")}
                )
                response.raise_for_status()
            body = response.json()
            words = tuple(
                TimedWord(word=str(w["word"]).strip(), start=round(float(w["start"]), 2), end=round(float(w["end"]), 2))
                for w in body.get("words") or ()
            )
            text = str(body.get("text", "")).strip()
        except httpx.HTTPStatusError as exc:
            raise RecognitionServiceError(f"the transcription server answered {exc.response.status_code}") from exc
        except httpx.HTTPError as exc:
            raise RecognitionServiceError(f"the transcription server failed: {type(exc).__name__}") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RecognitionServiceError("the transcription server's answer is not a transcription") from exc
        return FileTranscript(text=text, words=words)

    def create_service(self, *, call_id: str) -> OpenAISTTService:
        """A transcription client for one call."""
        return OpenAISTTService(
            api_key=self._options.api_key or "not-needed",
            base_url=self._options.base_url,
            settings=OpenAISTTService.Settings(
                model=self._options.model or _DEFAULT_MODEL,
                language=Language(self._options.language),
                prompt=self._prompt,
            ),
            sample_rate=self._options.sample_rate,
        )
