"""The agent's brain: process-wide resources, one answering processor per call."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

from pipecat.processors.frame_processor import FrameProcessor

from pipelines.contracts import PersonaSpec, TextEmbedder
from pipelines.options import BrainOptions
from pipelines.tools import CallTools

# Backend name → "module:Class". One file per backend beside this one.
BRAIN_BACKENDS: dict[str, str] = {
    "extractive": "pipelines.brain.extractive:ExtractiveBackend",
    "ollama": "pipelines.brain.ollama:OllamaBackend",
    "openai": "pipelines.brain.openai:OpenAIBackend",
    "openai-realtime": "pipelines.brain.openai_realtime:OpenAIRealtimeBackend",
}


def system_prompt(persona: PersonaSpec) -> str:
    """The system instructions for generative brains, built from the persona."""
    base = (
        f"You are {persona.name}, a voice support agent answering phone calls. Answer only from the knowledge-base "
        "passages you are given or retrieve with search_knowledge_base; if they do not contain the answer, say you "
        "do not know and offer to transfer the caller to a human with transfer_to_human. Speak in short, plain "
        "sentences (this is read aloud): no lists, markdown, URLs or emojis. Use create_ticket when the caller "
        "reports a problem needing follow-up, and end_call when they say goodbye."
    )
    language = f" Reply in the language with code {persona.language!r}." if persona.language else ""
    extra = f"\n\n{persona.instructions}" if persona.instructions else ""
    return base + language + extra


@runtime_checkable
class Prefetching(Protocol):
    """A brain processor that can start work on the caller's text before the turn ends."""

    def prefetch(self, text: str) -> None:
        """Start work for ``text`` (a final or interim transcript); must not block."""
        ...


class BrainBackend(ABC):
    """An answering engine, prewarmed once per process.

    Attributes:
        speech_to_speech: The brain hears and speaks itself (no ASR/TTS stages).
        wants_passages_in_context: The RAG processor should add retrieved passages to the LLM context.
    """

    name: str = ""
    speech_to_speech: bool = False
    wants_passages_in_context: bool = True

    @classmethod
    @abstractmethod
    def prewarm(cls, options: BrainOptions, *, embedder: TextEmbedder | None) -> BrainBackend:
        """Load the engine's process-wide resources."""

    async def warm(self) -> None:  # noqa: B027 - optional hook
        """Finish asynchronous warm-up (e.g. embedding tool examples) once per process."""

    @abstractmethod
    def create_processor(self, *, call_id: str, persona: PersonaSpec, tools: CallTools) -> FrameProcessor:
        """The answering processor for one call."""
