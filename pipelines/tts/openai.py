"""OpenAI-compatible speech synthesis (``POST {base_url}/audio/speech``), streamed as raw PCM.

OpenAI's ``pcm`` response format is 24 kHz 16-bit little-endian mono; it is resampled to the pipeline's rate.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
import structlog
from pipecat.frames.frames import ErrorFrame, Frame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from pipelines.options import TTSOptions
from pipelines.tts.base import TTSBackend, TTSCapabilities

log = structlog.stdlib.get_logger(__name__)

OPENAI_PCM_RATE = 24000


class OpenAISpeechTTSService(TTSService):
    """Streams ``/audio/speech`` for each sentence.

    Args:
        client: A shared ``httpx.AsyncClient``.
        base_url: The API base (``https://api.openai.com/v1`` or a compatible server).
        api_key: Bearer token.
        model: Speech model (e.g. ``gpt-4o-mini-tts``).
        voice: Voice name (e.g. ``alloy``).
        speed: Speaking rate (0.25–4.0).
        call_id: The call (log context).
        **kwargs: Passed to ``TTSService``.
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        base_url: str,
        api_key: str,
        model: str,
        voice: str,
        speed: float,
        call_id: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=model, voice=voice, language=None),
            **kwargs,
        )
        self._client = client
        self._url = base_url.rstrip("/") + "/audio/speech"
        self._api_key = api_key
        self._model = model
        self._voice = voice
        self._speed = speed
        self._call_id = call_id

    def can_generate_metrics(self) -> bool:
        """This service reports TTFB metrics."""
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Request speech for ``text`` and stream it as it arrives."""
        body: dict[str, str | float] = {
            "model": self._model,
            "input": text,
            "voice": self._voice,
            "response_format": "pcm",
        }
        if self._speed != 1.0:
            body["speed"] = self._speed
        headers = {"Authorization": f"Bearer {self._api_key}"}
        try:
            async with self._client.stream("POST", self._url, json=body, headers=headers) as response:
                if response.status_code != 200:
                    await response.aread()
                    yield ErrorFrame(error=f"speech request failed with HTTP {response.status_code}")
                    return

                async def audio() -> AsyncIterator[bytes]:
                    carry = b""
                    async for chunk in response.aiter_bytes():
                        data = carry + chunk
                        cut = len(data) - len(data) % 2
                        carry = data[cut:]
                        if cut:
                            yield data[:cut]

                async for frame in self._stream_audio_frames_from_iterator(
                    audio(), in_sample_rate=OPENAI_PCM_RATE, context_id=context_id
                ):
                    await self.stop_ttfb_metrics()
                    yield frame
        except httpx.HTTPError as exc:
            log.error("speech_request_failed", call_id=self._call_id, error_type=type(exc).__name__)
            yield ErrorFrame(error=f"speech request failed: {type(exc).__name__}")


class OpenAITTSBackend(TTSBackend):
    """An OpenAI-compatible speech endpoint, with one HTTP connection pool per process."""

    name = "openai"
    capabilities = TTSCapabilities(offline=False)

    def __init__(self, options: TTSOptions) -> None:
        self._options = options
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))

    @classmethod
    def prewarm(cls, options: TTSOptions) -> OpenAITTSBackend:
        """Check the options (no network at start-up)."""
        if not options.api_key and not options.base_url:
            raise RuntimeError("the openai TTS backend needs an API key or a base_url of a compatible server")
        return cls(options)

    def create_service(
        self, *, call_id: str, voice: str | None = None, speaking_rate: float | None = None
    ) -> OpenAISpeechTTSService:
        """A speech client for one call."""
        return OpenAISpeechTTSService(
            client=self._client,
            base_url=self._options.base_url or "https://api.openai.com/v1",
            api_key=self._options.api_key or "not-needed",
            model=self._options.model or "gpt-4o-mini-tts",
            voice=voice or self._options.voice or "alloy",
            speed=speaking_rate or self._options.speaking_rate,
            call_id=call_id,
            sample_rate=self._options.sample_rate,
        )
