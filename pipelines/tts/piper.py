"""Piper (local ONNX voice file + its ``.onnx.json``), loaded once per process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import structlog
from pipecat.frames.frames import ErrorFrame, Frame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from pipelines.options import TTSOptions
from pipelines.tts.base import TTSBackend, TTSCapabilities, first_clause_split, speakable

log = structlog.stdlib.get_logger(__name__)


class PiperVoiceTTSService(TTSService):
    """Piper for one call over a process-wide voice; synthesis runs in a worker thread.

    Args:
        voice: A loaded ``piper.PiperVoice``.
        call_id: The call (log context).
        **kwargs: Passed to ``TTSService``.
    """

    def __init__(self, *, voice: Any, call_id: str, **kwargs: Any) -> None:
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=None, voice="piper", language=None),
            **kwargs,
        )
        self._voice = voice
        self._call_id = call_id

    def can_generate_metrics(self) -> bool:
        """This service reports TTFB metrics."""
        return True

    def _synthesise(self, text: str) -> list[bytes]:
        return [bytes(chunk.audio_int16_bytes) for chunk in self._voice.synthesize(text)]

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Synthesise ``text`` clause by clause."""
        try:
            for piece in first_clause_split(speakable(text)):
                chunks = await asyncio.to_thread(self._synthesise, piece)

                async def audio(chunks: list[bytes] = chunks) -> AsyncIterator[bytes]:
                    for chunk in chunks:
                        yield chunk

                async for frame in self._stream_audio_frames_from_iterator(
                    audio(), in_sample_rate=self._voice.config.sample_rate, context_id=context_id
                ):
                    await self.stop_ttfb_metrics()
                    yield frame
        except (OSError, RuntimeError, ValueError) as exc:
            log.error("piper_synthesis_failed", call_id=self._call_id, error_type=type(exc).__name__)
            yield ErrorFrame(error=f"piper synthesis failed: {exc}")


class PiperBackend(TTSBackend):
    """A Piper voice loaded once from ``options.model_path`` (``.onnx`` with ``.onnx.json`` beside it)."""

    name = "piper"
    capabilities = TTSCapabilities(offline=True)

    def __init__(self, options: TTSOptions, voice: Any) -> None:
        self._options = options
        self._voice = voice

    @classmethod
    def prewarm(cls, options: TTSOptions) -> PiperBackend:
        """Load the voice file; nothing is downloaded."""
        path = options.model_path
        if path is None or not path.is_file() or not path.with_suffix(path.suffix + ".json").is_file():
            raise RuntimeError(
                "piper needs a local voice: VOXDESK_PIPELINE__TTS__MODEL_PATH=/path/voice.onnx with voice.onnx.json "
                "beside it; voices are never downloaded at run time"
            )
        from piper import PiperVoice  # type: ignore[import-not-found]  # optional extra (pipecat-ai[piper])

        return cls(options, PiperVoice.load(str(path)))

    def create_service(
        self, *, call_id: str, voice: str | None = None, speaking_rate: float | None = None
    ) -> PiperVoiceTTSService:
        """A Piper synthesiser for one call."""
        return PiperVoiceTTSService(voice=self._voice, call_id=call_id, sample_rate=self._options.sample_rate)
