"""The agent's brain: process-wide resources, one answering processor per call."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from pipecat.processors.frame_processor import FrameProcessor

from pipelines.contracts import PersonaSpec, TextEmbedder
from pipelines.options import BrainOptions
from pipelines.tools import CallTools


@dataclass(frozen=True, slots=True)
class BrainCapabilities:
    """What an answering engine does (declared on its class; callers ask this, never the backend's name).

    Attributes:
        speech_to_speech: The brain hears and speaks itself (no ASR/TTS stages).
        passages_in_context: The RAG processor should add retrieved passages to the LLM context (and the
            context carries the tools' schema).
        offline: Needs no network service: it runs in this process or in processes it starts.
        verbatim_answers: It speaks sentences chosen from the passages as they are written, so its sentence
            choice shows exactly what a caller would hear (the console's test-a-question preview uses it).
        chat_completions: It is an OpenAI chat-completions endpoint at ``pipeline.llm`` (base URL, key, model), so
            other parts may send it one-off requests (the handoff briefing's summary).
    """

    speech_to_speech: bool = False
    passages_in_context: bool = True
    offline: bool = False
    verbatim_answers: bool = False
    chat_completions: bool = False


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


@runtime_checkable
class ActionSensing(Protocol):
    """A brain processor that can tell, before a turn is decided, whether its text asks for an action."""

    async def acts_on(self, text: str) -> bool:
        """Whether the brain would act on ``text`` (hand over to a person, open a ticket) rather than search."""
        ...


class BrainBackend(ABC):
    """An answering engine, prewarmed once per process.

    Attributes:
        name: The name it is registered under in ``pipelines.registry`` (reported, never compared).
        capabilities: What the engine does.
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[BrainCapabilities] = BrainCapabilities()

    @classmethod
    @abstractmethod
    def prewarm(cls, options: BrainOptions, *, embedder: TextEmbedder | None) -> BrainBackend:
        """Load the engine's process-wide resources."""

    async def warm(self) -> None:  # noqa: B027 - optional hook
        """Finish asynchronous warm-up (e.g. embedding tool examples) once per process."""

    @abstractmethod
    def create_processor(self, *, call_id: str, persona: PersonaSpec, tools: CallTools) -> FrameProcessor:
        """The answering processor for one call."""
