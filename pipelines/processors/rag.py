"""RAG context: retrieve while the caller is still finishing, attach the passages to the turn.

Two processors share one state. ``listener`` sits between the recogniser and the user aggregator (which
consumes transcripts): it starts a retrieval on every final transcript and prefetches on interim text.
``processor`` sits between the user aggregator and the brain: on the turn's ``LLMContextFrame`` it takes
the retrieval for the turn's text (usually finished already), pushes a ``KnowledgeFrame`` and, for
generative brains, adds the passages to the LLM context.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import cast

import structlog
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    LLMContextFrame,
    TranscriptionFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContextMessage
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from pipelines.contracts import Retrieval
from pipelines.frames import KnowledgeFrame
from pipelines.tools import CallTools

log = structlog.stdlib.get_logger(__name__)

__all__ = ["RAGContext"]

_Pending = asyncio.Task[tuple[Retrieval, float] | None]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def passages_message(retrieval: Retrieval, *, limit: int = 3) -> str:
    """The passages as a context message for a generative brain."""
    if not retrieval.found or not retrieval.passages:
        return "Knowledge base: nothing relevant was found for the caller's last question."
    lines = ["Knowledge-base passages for the caller's last question (answer only from these):"]
    for i, p in enumerate(retrieval.passages[:limit], start=1):
        lines.append(f"[{i}] ({p.citation}) {p.text}")
    return "\n".join(lines)


class RAGContext:
    """Retrieval state of one call, with its two processors.

    Args:
        tools: The call's tools (retrieval goes through ``search``).
        call_id: The call.
        inject_passages: Add the passages to the LLM context (generative brains).
        prefetch_min_words: Interim text needs this many words before it is prefetched.
        text_hooks: Also called with each text that is retrieved (e.g. the brain's own prefetch).
    """

    def __init__(
        self,
        *,
        tools: CallTools,
        call_id: str,
        inject_passages: bool,
        prefetch_min_words: int = 4,
        text_hooks: Sequence[Callable[[str], None]] = (),
    ) -> None:
        self.tools = tools
        self.text_hooks = tuple(text_hooks)
        self.call_id = call_id
        self.inject_passages = inject_passages
        self.prefetch_min_words = prefetch_min_words
        self.finals: list[str] = []
        self.pending: OrderedDict[str, _Pending] = OrderedDict()
        self.listener = _TranscriptListener(self)
        self.processor = RAGContextProcessor(self)

    async def _retrieve(self, text: str) -> tuple[Retrieval, float] | None:
        try:
            return await self.tools.search(text, record=False)
        except Exception as exc:  # noqa: BLE001 - a failing retriever must not break the call
            log.warning("retrieval_failed", call_id=self.call_id, error_type=type(exc).__name__)
            await self.listener.push_error(f"retrieval failed: {exc}", exception=exc)
            return None

    def start(self, text: str) -> None:
        """Start retrieving ``text`` unless already started (keeps the 8 most recent)."""
        key = _norm(text)
        if not key or key in self.pending:
            return
        for hook in self.text_hooks:
            hook(text)
        self.pending[key] = self.listener.create_task(self._retrieve(text), name="rag_retrieve")
        while len(self.pending) > 8:
            _, old = self.pending.popitem(last=False)
            if not old.done():
                old.cancel()

    async def lookup(self, text: str) -> Retrieval:
        """The retrieval of ``text``, a final transcript not yet pushed (the recogniser's evidence probe).

        Joins the prefetch already searching ``text`` or starts the one the turn will take when ``text`` becomes
        its final, so a transcript the probe weighed is searched once per turn. Raises what the search raised.
        """
        self.start(text)
        task = self.pending.get(_norm(text))
        if task is not None:
            await asyncio.wait([task])  # never raises for the task: one evicted or cancelled is searched below
            if not task.cancelled() and (result := task.result()) is not None:
                return result[0]
        retrieval, _ = await self.tools.search(text, record=False)
        return retrieval

    def take(self, text: str) -> _Pending | None:
        """The retrieval started for ``text``, if any."""
        return self.pending.pop(_norm(text), None)

    async def reset(self) -> None:
        """Forget the turn's transcripts and cancel prefetches."""
        self.finals.clear()
        for task in self.pending.values():
            if not task.done():
                await self.listener.cancel_task(task)
        self.pending.clear()


class _TranscriptListener(FrameProcessor):
    """Starts retrievals from transcripts (place it before the user aggregator)."""

    def __init__(self, rag: RAGContext) -> None:
        super().__init__(name=f"RAGListener#{rag.call_id}", enable_direct_mode=True)
        self._rag = rag

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame) and frame.text.strip():
            self._rag.finals.append(frame.text.strip())
            self._rag.start(" ".join(self._rag.finals))
        elif isinstance(frame, InterimTranscriptionFrame):
            words = frame.text.split()
            if len(words) >= self._rag.prefetch_min_words:
                self._rag.start(" ".join([*self._rag.finals, frame.text.strip()]))
        elif isinstance(frame, (EndFrame, CancelFrame)):
            await self._rag.reset()
        await self.push_frame(frame, direction)


class RAGContextProcessor(FrameProcessor):
    """Attaches the turn's retrieval to the turn (place it between the user aggregator and the brain)."""

    def __init__(self, rag: RAGContext) -> None:
        super().__init__(name=f"RAGContext#{rag.call_id}")
        self._rag = rag

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame) and direction == FrameDirection.DOWNSTREAM:
            await self._attach(frame)
        await self.push_frame(frame, direction)

    async def _attach(self, frame: LLMContextFrame) -> None:
        question = ""
        for message in reversed(frame.context.get_messages()):
            if isinstance(message, dict) and message.get("role") == "user" and isinstance(message.get("content"), str):
                question = cast(str, message["content"])
                break
        if not question.strip():
            return
        t0 = time.perf_counter()
        task = self._rag.take(question)
        if task is not None and not task.cancelled():
            result = await task
        else:
            for hook in self._rag.text_hooks:
                hook(question)
            result = await self._rag._retrieve(question)
        waited = (time.perf_counter() - t0) * 1000
        await self._rag.reset()
        if result is None:
            return
        retrieval, retrieval_ms = result
        await self.push_frame(
            KnowledgeFrame(question=question, retrieval=retrieval, retrieval_ms=retrieval_ms, waited_ms=waited)
        )
        if self._rag.inject_passages:
            # The LLM answers from these passages: this is the turn's logged question (off the answer's path).
            self.create_task(self._rag.tools.log_query(question, retrieval), name="rag_query_log")
            frame.context.add_message(
                cast(LLMContextMessage, {"role": "system", "content": passages_message(retrieval)})
            )
