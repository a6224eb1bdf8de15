"""espeak-ng (Debian package): many languages, robotic voice."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from typing import Any

from pipelines.options import TTSOptions
from pipelines.tts.base import TTSBackend, TTSCapabilities
from pipelines.tts.subprocess_tts import SubprocessTTSService


class EspeakTTSService(SubprocessTTSService):
    """espeak-ng for one call (its WAV is 22.05 kHz; the base class resamples).

    Args:
        binary: Path of ``espeak-ng``.
        voice: An espeak-ng voice (``en-us``, ``de``, ``hi``, ...).
        speaking_rate: 1.0 is normal (175 words per minute).
        **kwargs: Passed to ``SubprocessTTSService``.
    """

    def __init__(self, *, binary: str, voice: str, speaking_rate: float = 1.0, **kwargs: Any) -> None:
        super().__init__(voice=voice, trim_silence=True, **kwargs)
        self._binary = binary
        self._voice = voice
        self._wpm = int(175 * max(0.5, min(2.0, speaking_rate)))

    def command(self, text: str) -> Sequence[str]:
        """``espeak-ng -v VOICE -s WPM --stdout TEXT``."""
        return [self._binary, "-v", self._voice, "-s", str(self._wpm), "--stdout", "--", text]


class EspeakBackend(TTSBackend):
    """Finds espeak-ng once per process."""

    name = "espeak-ng"
    capabilities = TTSCapabilities(offline=True, programs=("espeak-ng",))

    def __init__(self, binary: str, options: TTSOptions) -> None:
        self._binary = binary
        self._options = options

    @classmethod
    def prewarm(cls, options: TTSOptions) -> EspeakBackend:
        """Find ``espeak-ng``."""
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise RuntimeError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
        return cls(binary, options)

    def create_service(
        self, *, call_id: str, voice: str | None = None, speaking_rate: float | None = None
    ) -> EspeakTTSService:
        """An espeak-ng synthesiser for one call."""
        return EspeakTTSService(
            binary=self._binary,
            voice=voice or self._options.voice or "en-us",
            speaking_rate=speaking_rate or self._options.speaking_rate,
            call_id=call_id,
            sample_rate=self._options.sample_rate,
        )
