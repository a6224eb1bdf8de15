"""Ollama (its OpenAI-compatible ``/v1`` API) through pipecat's ``OLLamaLLMService``."""

from __future__ import annotations

from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.ollama.llm import OLLamaLLMService

from pipelines.brain.base import BrainBackend
from pipelines.brain.llm_tools import register_tools
from pipelines.contracts import PersonaSpec, TextEmbedder
from pipelines.options import BrainOptions
from pipelines.tools import CallTools


class OllamaBackend(BrainBackend):
    """A local Ollama model with the call's tools (default ``http://localhost:11434/v1``)."""

    name = "ollama"

    def __init__(self, options: BrainOptions) -> None:
        self.options = options

    @classmethod
    def prewarm(cls, options: BrainOptions, *, embedder: TextEmbedder | None) -> OllamaBackend:
        """Nothing to load (the server holds the model)."""
        return cls(options)

    def create_processor(self, *, call_id: str, persona: PersonaSpec, tools: CallTools) -> FrameProcessor:
        """The Ollama client for one call, with the tools registered."""
        base_url = (self.options.base_url or "http://localhost:11434").rstrip("/")
        if not base_url.endswith("/v1"):
            base_url += "/v1"
        llm = OLLamaLLMService(
            base_url=base_url,
            settings=OLLamaLLMService.Settings(
                model=self.options.model or "llama3.2", temperature=self.options.temperature
            ),
        )
        register_tools(llm, tools, persona)
        return llm
