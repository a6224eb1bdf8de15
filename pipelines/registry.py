"""The backend registries and the one lookup that turns a configured name into a backend class.

This is the one place a stage backend is named: a name maps to ``module:Class``, imported only when chosen.
Adding a backend is one new file beside its stage's ``base.py`` and one entry here (and the same name in the
settings' ``Literal``, which a test holds equal to these keys); what a backend can do is declared on its
class (``capabilities``, ``speech_to_speech``, ...), so callers ask the class, never compare names.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, overload

from pipelines.asr.base import ASRBackend
from pipelines.brain.base import BrainBackend
from pipelines.tts.base import TTSBackend

__all__ = ["BACKENDS", "Stage", "UnknownBackendError", "backend_class", "backend_names"]

Stage = Literal["asr", "brain", "tts"]

BACKENDS: Mapping[Stage, Mapping[str, str]] = MappingProxyType(
    {
        "asr": MappingProxyType(
            {
                "pocketsphinx": "pipelines.asr.pocketsphinx:PocketsphinxBackend",
                "faster-whisper": "pipelines.asr.faster_whisper:FasterWhisperBackend",
                "openai": "pipelines.asr.openai:OpenAITranscriptionBackend",
            }
        ),
        "brain": MappingProxyType(
            {
                "extractive": "pipelines.brain.extractive:ExtractiveBackend",
                "ollama": "pipelines.brain.ollama:OllamaBackend",
                "openai": "pipelines.brain.openai:OpenAIBackend",
                "openai-realtime": "pipelines.brain.openai_realtime:OpenAIRealtimeBackend",
            }
        ),
        "tts": MappingProxyType(
            {
                "flite": "pipelines.tts.flite:FliteBackend",
                "espeak-ng": "pipelines.tts.espeak:EspeakBackend",
                "piper": "pipelines.tts.piper:PiperBackend",
                "openai": "pipelines.tts.openai:OpenAITTSBackend",
            }
        ),
    }
)

AnyBackendClass = type[ASRBackend] | type[BrainBackend] | type[TTSBackend]
_BASES: Mapping[Stage, AnyBackendClass] = MappingProxyType(
    {"asr": ASRBackend, "brain": BrainBackend, "tts": TTSBackend}
)


class UnknownBackendError(ValueError):
    """The configured backend name is not in the registry."""


def backend_names(stage: Stage) -> tuple[str, ...]:
    """The backend names registered for ``stage``, in registry order."""
    return tuple(BACKENDS[stage])


@overload
def backend_class(stage: Literal["asr"], name: str) -> type[ASRBackend]: ...
@overload
def backend_class(stage: Literal["brain"], name: str) -> type[BrainBackend]: ...
@overload
def backend_class(stage: Literal["tts"], name: str) -> type[TTSBackend]: ...
def backend_class(stage: Stage, name: str) -> AnyBackendClass:
    """Import and return the class registered for ``stage`` under ``name`` (the only backend lookup).

    Args:
        stage: ``"asr"``, ``"brain"`` or ``"tts"``.
        name: The configured backend name.

    Returns:
        The backend class, a subclass of the stage's base class; ask it what it can do (``capabilities``).

    Raises:
        UnknownBackendError: ``name`` is not registered for ``stage``.
        TypeError: the registered class does not subclass the stage's base class.
    """
    registry = BACKENDS[stage]
    try:
        target = registry[name]
    except KeyError:
        choices = ", ".join(sorted(registry))
        raise UnknownBackendError(f"unknown {stage} backend {name!r}; choose one of {choices}") from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    base = _BASES[stage]
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise TypeError(f"{target} is not a {base.__name__}")
    return cls
