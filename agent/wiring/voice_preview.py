"""The persona editor's spoken preview: the control plane's ``VoicePreview``, spoken by the calls' own synthesiser.

Registered with ``control_api.services.personas.register_preview`` once the voice stages are loaded, so the
preview is the same engine, voice list and text clean-up (``speakable``) as a call's greeting.
"""

from __future__ import annotations

from collections.abc import Callable

from control_api.problems import ProblemError
from control_api.services.personas import Voices
from pipelines.options import TTSOptions
from pipelines.tts.base import TTSBackend, speakable
from pipelines.tts.subprocess_tts import SubprocessTTSService


class StagesVoicePreview:
    """Speaks persona previews with the process's prewarmed synthesiser.

    Args:
        backend: Gives the loaded synthesiser (None while the stages load or in speech-to-speech mode).
        options: The configured synthesiser options (its default voice).
    """

    def __init__(self, backend: Callable[[], TTSBackend | None], options: TTSOptions) -> None:
        self._backend = backend
        self._options = options

    def _loaded(self) -> TTSBackend:
        backend = self._backend()
        if backend is None:
            raise ProblemError(503, "The voice engine is still loading.", type_="voice-unavailable")
        return backend

    def voices(self) -> Voices:
        """The synthesiser's installed voices (just the configured one where the engine lists none)."""
        backend = self._loaded()
        default = self._options.voice
        listed = backend.voices() or ((default,) if default else ())
        return Voices(engine=backend.name, voices=listed, default=default if default in listed else None)

    async def speak(self, text: str, voice: str | None) -> tuple[bytes, int]:
        """16-bit mono PCM of ``text`` in ``voice`` (None: the engine's default) and its sample rate."""
        service = self._loaded().create_service(call_id="voice-preview", voice=voice)
        if not isinstance(service, SubprocessTTSService):
            raise ProblemError(
                501, "This voice engine cannot speak a preview outside a call.", type_="preview-unsupported"
            )
        return await service.synthesise(speakable(text))
