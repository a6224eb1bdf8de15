"""OpenAI Realtime (speech to speech): the model hears the caller and speaks itself, with the same tools.

It replaces the recogniser, the brain and the synthesiser (``capabilities.speech_to_speech``); the pipeline keeps the
transport, the user aggregator (local Silero VAD turn-taking), the taps and the latency meter.
"""

from __future__ import annotations

from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.openai.realtime import events
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService

from pipelines.brain.base import BrainBackend, BrainCapabilities, system_prompt
from pipelines.brain.llm_tools import register_tools
from pipelines.contracts import PersonaSpec, TextEmbedder
from pipelines.options import BrainOptions
from pipelines.tools import CallTools, tools_schema


class OpenAIRealtimeBackend(BrainBackend):
    """OpenAI's Realtime API over its WebSocket (``base_url`` may point at a compatible server)."""

    name = "openai-realtime"
    capabilities = BrainCapabilities(speech_to_speech=True)

    def __init__(self, options: BrainOptions) -> None:
        self.options = options

    @classmethod
    def prewarm(cls, options: BrainOptions, *, embedder: TextEmbedder | None) -> OpenAIRealtimeBackend:
        """Check the options (no network at start-up)."""
        if not options.api_key:
            raise RuntimeError("the openai-realtime brain needs an API key")
        return cls(options)

    def create_processor(self, *, call_id: str, persona: PersonaSpec, tools: CallTools) -> FrameProcessor:
        """The realtime session client for one call, with the tools registered."""
        llm = OpenAIRealtimeLLMService(
            api_key=self.options.api_key or "",
            base_url=self.options.base_url or "wss://api.openai.com/v1/realtime",
            settings=OpenAIRealtimeLLMService.Settings(
                model=self.options.model or "gpt-realtime",
                session_properties=events.SessionProperties(instructions=system_prompt(persona), tools=tools_schema()),
            ),
        )
        register_tools(llm, tools, persona)
        return llm
