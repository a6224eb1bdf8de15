"""The briefing's summary written by the configured LLM (an OpenAI-compatible chat-completions server).

The control plane builds the briefing with the extractive summary (``control_api.services.summary.summarize``,
offline, always there). With an LLM brain configured (``VOXDESK_PIPELINE__LLM__BACKEND=openai``, its base URL,
key and model), the voice process asks that model for a short summary of the transcript for the person taking
the call; any error, refusal, empty answer or a reply slower than ``VOXDESK_HANDOFF__BRIEFING_TIMEOUT_S`` keeps the
extractive one. The request is a plain ``POST {base_url}/chat/completions`` through the ``openai`` client (the
library pipecat's OpenAI services use, installed with the ``openai`` extra), never streamed, no tools.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import Counter

from config.settings import Settings
from pipelines.registry import backend_class

log = structlog.get_logger(__name__)

BRIEFINGS = Counter(
    "voxdesk_handoff_briefings_total",
    "Briefing summaries by who wrote them: llm, or extractive after an LLM failure (error, timeout, empty).",
    ["writer"],
)
SYSTEM_PROMPT = (
    "You brief a customer-support agent who is taking over a phone call from an AI assistant. In at most three "
    "short sentences say what the caller wants, what the assistant already told them, and what is still open. "
    "Use only the transcript; do not invent details; no greeting, no lists."
)
# Long calls: the most recent turns matter most to the person taking over.
MAX_TRANSCRIPT_CHARS = 12_000
ROLE_NAMES = {"caller": "Caller", "agent": "Assistant", "human": "Agent"}


def transcript_text(transcript: list[dict[str, Any]], *, limit: int = MAX_TRANSCRIPT_CHARS) -> str:
    """The briefing's transcript as ``Role: text`` lines, the latest ``limit`` characters."""
    lines = [f"{ROLE_NAMES.get(str(t.get('role')), 'Other')}: {t.get('text', '')}" for t in transcript]
    text = "\n".join(lines)
    return text[-limit:]


@dataclass(frozen=True, slots=True)
class LLMBriefing:
    """Writes a briefing's summary with an OpenAI-compatible chat model.

    Attributes:
        base_url: The server (``…/v1``); ``None``: OpenAI's own.
        api_key: Its key (a local server may need none).
        model: The chat model.
        timeout_s: Longer than this and the extractive summary stays.

    """

    base_url: str | None
    api_key: str | None
    model: str
    timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMBriefing | None:
        """The briefing writer of the configured brain; ``None`` for the extractive brain or when switched off."""
        llm = settings.pipeline.llm
        if not settings.handoff.briefing_llm or not backend_class("brain", llm.backend).capabilities.chat_completions:
            return None
        if not llm.base_url and llm.api_key is None:
            return None
        return cls(
            base_url=llm.base_url,
            api_key=llm.api_key.get_secret_value() if llm.api_key is not None else None,
            model=llm.model or "gpt-4o-mini",
            timeout_s=settings.handoff.briefing_timeout_s,
        )

    async def summarise(self, briefing: dict[str, Any], *, call_id: str) -> str | None:
        """The model's summary of the briefing's transcript and reason; ``None`` on any failure (logged)."""
        transcript = briefing.get("transcript") or []
        if not transcript:
            return None
        user = f"Why the call is handed over: {briefing.get('reason') or 'not given'}\n\nTranscript:\n"
        user += transcript_text(transcript)
        import openai  # the openai brain's extra (pipecat-ai[openai]); only configured with it

        client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self.api_key or "not-needed", timeout=self.timeout_s, max_retries=0
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                reply = await client.chat.completions.create(
                    model=self.model,
                    messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
                    temperature=0.2,
                    max_tokens=200,
                )
            text = (reply.choices[0].message.content or "").strip() if reply.choices else ""
        except Exception as exc:  # noqa: BLE001 - any failure keeps the extractive summary
            log.warning("briefing_llm_failed", call_id=call_id, error_type=type(exc).__name__)
            BRIEFINGS.labels(writer="extractive").inc()
            return None
        finally:
            await client.close()
        if not text:
            BRIEFINGS.labels(writer="extractive").inc()
            return None
        BRIEFINGS.labels(writer="llm").inc()
        return text[:2000]

    async def apply(self, briefing: dict[str, Any], *, call_id: str) -> dict[str, Any]:
        """The briefing with the model's summary (``summary_by: llm``), or unchanged (``summary_by: extractive``)."""
        summary = await self.summarise(briefing, call_id=call_id)
        if summary is None:
            return {**briefing, "summary_by": "extractive"}
        return {**briefing, "summary": summary, "extractive_summary": briefing.get("summary"), "summary_by": "llm"}
