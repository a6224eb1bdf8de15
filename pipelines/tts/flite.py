"""flite (CMU Flite, Debian package): the offline default voice."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import structlog

from pipelines.options import TTSOptions
from pipelines.tts.base import TTSBackend, TTSCapabilities
from pipelines.tts.flite_native import NATIVE_VOICES, FliteWorkerPool
from pipelines.tts.subprocess_tts import SubprocessTTSService

log = structlog.stdlib.get_logger(__name__)

DEFAULT_VOICE = "slt"


class FliteTTSService(SubprocessTTSService):
    """flite for one call: the process's resident flite workers, or the ``flite`` command without them.

    Args:
        binary: Path of the ``flite`` executable.
        voice: A flite voice (``slt``, ``rms``, ``awb``, ``kal16``, ...).
        speaking_rate: 1.0 is normal; larger is faster.
        pool: The process's resident flite workers (None: run the command per clause).
        **kwargs: Passed to ``SubprocessTTSService``.
    """

    def __init__(
        self,
        *,
        binary: str,
        voice: str,
        speaking_rate: float = 1.0,
        pool: FliteWorkerPool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(voice=voice, **kwargs)
        self._binary = binary
        self._voice = voice
        self._stretch = 1.0 / max(0.5, min(2.0, speaking_rate))
        self._pool = pool if pool is not None and voice in pool.voices else None

    async def render(self, text: str, *, urgent: bool = False) -> tuple[bytes, int]:
        """Synthesise on a resident worker (the same audio the command would write), else run the command."""
        if self._pool is None:
            return await super().render(text, urgent=urgent)
        return await self._pool.synthesise(text, voice=self._voice, stretch=self._stretch, urgent=urgent)

    async def render_stream(self, text: str, *, urgent: bool = False) -> AsyncGenerator[tuple[bytes, int], None]:
        """On a resident worker, the audio in pieces as flite's vocoder writes them; else the command's, whole."""
        if self._pool is None:
            async for piece in super().render_stream(text, urgent=urgent):
                yield piece
            return
        pieces = self._pool.stream(text, voice=self._voice, stretch=self._stretch, urgent=urgent)
        async with contextlib.aclosing(pieces):
            async for piece in pieces:
                yield piece

    def command(self, text: str) -> Sequence[str]:
        """``flite -voice V --setf duration_stretch=S -t TEXT -o /dev/stdout``."""
        return [
            self._binary,
            "-voice",
            self._voice,
            "--setf",
            f"duration_stretch={self._stretch:.3f}",
            "-t",
            text,
            "-o",
            "/dev/stdout",
        ]


class FliteBackend(TTSBackend):
    """Checks that flite and the voice exist, once per process."""

    name = "flite"
    capabilities = TTSCapabilities(offline=True, programs=("flite",))

    def __init__(
        self, binary: str, options: TTSOptions, voices: frozenset[str], pool: FliteWorkerPool | None = None
    ) -> None:
        self._binary = binary
        self._options = options
        self._voices = voices
        self.pool = pool

    @classmethod
    def prewarm(cls, options: TTSOptions) -> FliteBackend:
        """Find ``flite`` and check the voice is built in."""
        binary = shutil.which("flite")
        if binary is None:
            raise RuntimeError("flite is not installed (Debian: apt-get install flite)")
        listing = subprocess.run([binary, "-lv"], capture_output=True, text=True, check=True, timeout=10).stdout  # noqa: S603 - fixed argv
        voices = frozenset(listing.split()) - {"Voices", "available:"}
        voice = options.voice or DEFAULT_VOICE
        if voice not in voices:
            raise RuntimeError(f"flite has no voice {voice!r}; it has: {' '.join(sorted(voices))}")
        size = options.processes or min(4, os.cpu_count() or 1)
        try:
            pool: FliteWorkerPool | None = FliteWorkerPool(sorted(voices & NATIVE_VOICES.keys()), size=size)
        except OSError as exc:
            # Same voices, same audio, a process per clause: slower, never silent.
            log.warning("resident_flite_unavailable", fallback="flite command per clause", error=str(exc))
            pool = None
        return cls(binary, options, voices, pool)

    def voices(self) -> tuple[str, ...]:
        """The voices built into this flite (``flite -lv``)."""
        return tuple(sorted(self._voices))

    def close(self) -> None:
        """Stop the resident flite workers."""
        if self.pool is not None:
            self.pool.close()

    def create_service(
        self, *, call_id: str, voice: str | None = None, speaking_rate: float | None = None
    ) -> FliteTTSService:
        """Flite for one call."""
        return FliteTTSService(
            binary=self._binary,
            # A persona voice of another engine (e.g. "en-us") falls back to the configured flite voice.
            voice=voice if voice in self._voices else self._options.voice or DEFAULT_VOICE,
            speaking_rate=speaking_rate or self._options.speaking_rate,
            pool=self.pool,
            call_id=call_id,
            sample_rate=self._options.sample_rate,
        )
