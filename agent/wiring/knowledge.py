"""Adapter from the knowledge room to the pipeline's ``Retriever`` protocol.

``pipelines`` never imports ``knowledge``: it receives this adapter (the knowledge embedders already satisfy
``TextEmbedder``). The knowledge service's own result
types carry the same fields (plus extras such as the title), so the adapter only copies them into the
pipeline's frozen records and bounds the time a retrieval may take on the call's path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from knowledge.types import Passage as KnowledgePassage
from knowledge.types import Retrieval as KnowledgeRetrieval
from pipelines.contracts import Passage, Retrieval

logger = structlog.get_logger(__name__)


class KnowledgeSearch(Protocol):
    """What the knowledge service offers: ``retrieve(question, top_k=..., call_id=...)``."""

    async def retrieve(
        self, question: str, *, top_k: int | None = None, call_id: str | None = None, log: bool = True
    ) -> Any:
        """Passages for ``question``, best first, with ``found``."""
        ...

    async def log(self, question: str, retrieval: Any, *, call_id: str | None = None) -> None:
        """Log a question answered from an unlogged retrieval."""
        ...


class KnowledgeRetriever:
    """``pipelines.contracts.Retriever`` over the knowledge service.

    A retrieval that fails, takes longer than ``timeout_s`` or finds the knowledge base not running answers
    "not found" (the agent then says it does not know and offers a human) instead of stalling the call; the
    failure is logged with the call id.

    Args:
        search: Returns the knowledge service now (None while it is not running).
        timeout_s: Longest a retrieval may take on the call path.

    """

    def __init__(self, search: Callable[[], KnowledgeSearch | None], *, timeout_s: float = 2.0) -> None:
        self._search = search
        self._timeout = timeout_s
        self._logging: set[asyncio.Task[None]] = set()

    async def retrieve(
        self, question: str, *, top_k: int = 5, call_id: str | None = None, log: bool = True
    ) -> Retrieval:
        """Retrieve passages for ``question`` (logged unless ``log`` is False).

        The query log is written after the answer, as a task of its own: a busy or failing database delays the
        log, never the answer, and never turns a found answer into "not found".
        """
        started = time.perf_counter()
        service = self._search()
        if service is None:
            logger.warning("retrieval_unavailable", call_id=call_id)
            return Retrieval(found=False, passages=(), latency_ms=0.0)
        try:
            async with asyncio.timeout(self._timeout):
                result = await service.retrieve(question, top_k=top_k, call_id=call_id, log=False)
        except Exception as exc:  # noqa: BLE001 - a failed search must not break the call
            logger.warning("retrieval_failed", call_id=call_id, error_type=type(exc).__name__)
            return Retrieval(found=False, passages=(), latency_ms=(time.perf_counter() - started) * 1000)
        passages = tuple(
            Passage(
                text=p.text,
                score=float(p.score),
                document_id=str(p.document_id),
                chunk_id=str(p.chunk_id),
                citation=str(p.citation),
                heading=p.heading,
                closeness=tuple(getattr(p, "closeness", ())),
            )
            for p in result.passages
        )
        latency = getattr(result, "latency_ms", None) or (time.perf_counter() - started) * 1000
        retrieval = Retrieval(
            found=bool(result.found),
            passages=passages,
            latency_ms=float(latency),
            borderline=bool(getattr(result, "borderline", False)),
            unanswerable=bool(getattr(result, "unanswerable", False)),
            narrow=bool(getattr(result, "narrow", False)),
        )
        if log:
            await self.log(question, retrieval, call_id=call_id)
        return retrieval

    async def log(self, question: str, retrieval: Retrieval, *, call_id: str | None = None) -> None:
        """Log a question the agent answered from a speculative retrieval, off the answer's path.

        The write runs as a task of its own (kept until done): a busy database delays the log, not the answer.
        """
        task = asyncio.create_task(self._log(question, retrieval, call_id), name="query-log")
        self._logging.add(task)
        task.add_done_callback(self._logging.discard)

    async def drain(self) -> None:
        """Wait for the query-log writes still running."""
        while self._logging:
            await asyncio.gather(*self._logging, return_exceptions=True)

    async def _log(self, question: str, retrieval: Retrieval, call_id: str | None) -> None:
        service = self._search()
        if service is None:
            return
        try:
            await service.log(question, _to_knowledge(retrieval), call_id=call_id)
        except Exception as exc:  # noqa: BLE001 - the query log must not break the call
            logger.warning("query_log_failed", call_id=call_id, error_type=type(exc).__name__)


def _to_knowledge(retrieval: Retrieval) -> KnowledgeRetrieval:
    passages = tuple(
        KnowledgePassage(
            text=p.text,
            score=p.score,
            document_id=p.document_id,
            chunk_id=p.chunk_id,
            citation=p.citation,
            heading=p.heading,
        )
        for p in retrieval.passages
    )
    top = passages[0].score if passages else None
    return KnowledgeRetrieval(
        found=retrieval.found,
        passages=passages,
        latency_ms=retrieval.latency_ms,
        top_score=top,
        borderline=retrieval.borderline,
        unanswerable=retrieval.unanswerable,
        narrow=retrieval.narrow,
    )
