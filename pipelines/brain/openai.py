"""Any OpenAI-compatible chat-completions server (OpenAI, vLLM, llama.cpp server, ...).

Streamed tokens and function calling through pipecat's ``OpenAILLMService``.
"""

from __future__ import annotations

from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.openai.llm import OpenAILLMService

from pipelines.brain.base import BrainBackend, BrainCapabilities
from pipelines.brain.llm_tools import register_tools
from pipelines.contracts import PersonaSpec, TextEmbedder
from pipelines.options import BrainOptions
from pipelines.tools import CallTools


class OpenAIBackend(BrainBackend):
    """An OpenAI-compatible chat model with the call's tools."""

    capabilities = BrainCapabilities(chat_completions=True)

    name = "openai"
    default_model = "gpt-4o-mini"

    def __init__(self, options: BrainOptions) -> None:
        self.options = options

    @classmethod
    def prewarm(cls, options: BrainOptions, *, embedder: TextEmbedder | None) -> OpenAIBackend:
        """Check the options (no network at start-up)."""
        if not options.api_key and not options.base_url:
            raise RuntimeError(f"the {cls.name} brain needs an API key or a base_url")
        return cls(options)

    def create_processor(self, *, call_id: str, persona: PersonaSpec, tools: CallTools) -> FrameProcessor:
        """The chat model client for one call, with the tools registered."""
        llm = OpenAILLMService(
            api_key=self.options.api_key or "not-needed",
            base_url=self.options.base_url,
            settings=OpenAILLMService.Settings(
                model=self.options.model or self.default_model, temperature=self.options.temperature
            ),
        )
        register_tools(llm, tools, persona)
        return llm
