"""The agent's tools, their descriptions and examples, and their execution as call events.

Every brain uses the same tools: LLM backends through function calling (``TOOL_SCHEMAS``), the extractive
brain by embedding similarity to ``ToolSpec.description`` and ``ToolSpec.examples``. Each call and its
result is a call event (``CallSink.event``) with kinds ``tool_call`` and ``tool_result``; a confirming question
(the extractive brain's "Do you mean …?") is an event of kind ``confirm`` naming the passage asked about.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema

from pipelines.contracts import (
    CallEventRecord,
    CallSink,
    CollectedDigits,
    DigitCollector,
    HandoffHandler,
    HandoffRequest,
    Retrieval,
    Retriever,
    TicketHandler,
    TicketRequest,
)

log = structlog.get_logger(__name__)
SEARCH, TICKET, TRANSFER, END = "search_knowledge_base", "create_ticket", "transfer_to_human", "end_call"
COLLECT = "collect_digits"
# The call event (kind) of a confirming question: which passage the agent asked the caller about.
CONFIRM = "confirm"
# The most digits one collection takes (an account or card-length number).
MAX_KEYED_DIGITS = 32


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool: its name, what it does, and how callers ask for it."""

    name: str
    description: str
    examples: tuple[str, ...]
    parameters: dict[str, dict[str, Any]]
    required: tuple[str, ...]


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        SEARCH,
        "Search the company's knowledge base to answer a caller's question about products, accounts, "
        "orders, billing, policies or how to do something.",
        (
            "how do i reset my password",
            "what is your refund policy",
            "how long does shipping take",
            "can i change my plan",
            "where can i find my invoice",
            "what are your opening hours",
            "does it work on my phone",
            "how much does it cost",
        ),
        {"query": {"type": "string", "description": "The caller's question, in their words."}},
        ("query",),
    ),
    ToolSpec(
        TICKET,
        "Create a support ticket so the team follows up later, when the caller reports a problem that "
        "needs investigation or asks for a ticket or a call back.",
        (
            "please create a ticket",
            "open a support ticket for me",
            "i want to report a problem",
            "i want to file a complaint",
            "can someone call me back about this",
            "log this issue please",
            "raise a ticket about my broken order",
        ),
        {
            "subject": {"type": "string", "description": "A short subject line."},
            "description": {"type": "string", "description": "What the caller needs, in a few sentences."},
        },
        ("subject", "description"),
    ),
    ToolSpec(
        TRANSFER,
        "Transfer the caller to a human agent when they ask for a person, or the question cannot be "
        "answered from the knowledge base.",
        (
            "i want to talk to a human",
            "can i speak to a person",
            "transfer me to an agent",
            "let me talk to someone",
            "connect me with a real person",
            "i want to speak to a representative",
            "get me a manager",
        ),
        {
            "reason": {"type": "string", "description": "Why the caller needs a human."},
            "summary": {"type": "string", "description": "A summary of the call so far for the human agent."},
        },
        ("reason",),
    ),
    ToolSpec(
        END,
        "End the call when the caller says goodbye or has nothing more to ask.",
        (
            "goodbye",
            "bye bye",
            "that's all thank you",
            "no that is everything thanks",
            "i'm done",
            "you can hang up now",
            "end the call",
        ),
        {},
        (),
    ),
)


# Offered to LLM brains on phone lines only (the call has a keypad); the extractive brain opens a collection
# itself when it asks for a digit-like argument, so it is not among TOOLS (matched by examples).
KEYPAD = ToolSpec(
    COLLECT,
    "On a phone line, ask the caller to key in a number (an account, order or reference number) on the keypad, "
    "followed by the hash key. Says the prompt, then returns the digits keyed, or outcome timeout when none were.",
    (),
    {
        "prompt": {
            "type": "string",
            "description": "What to say to ask for the number, e.g. 'Please key in your "
            "account number followed by the hash key.'",
        },
        "max_digits": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_KEYED_DIGITS,
            "description": "The most digits the number has.",
        },
    },
    ("prompt",),
)


def tools_schema(extra: Sequence[ToolSpec] = ()) -> ToolsSchema:
    """The tools as pipecat function schemas (for LLM backends with function calling), with ``extra`` ones."""
    return ToolsSchema(
        standard_tools=[
            FunctionSchema(name=t.name, description=t.description, properties=t.parameters, required=list(t.required))
            for t in (*TOOLS, *extra)
        ]
    )


class CustomToolHandler(Protocol):
    """Runs one of the operator's custom API tools (Integration Studio) for a call; returns its JSON result.

    The result has ``ok``, ``values`` (named values mapped from the API's answer), ``say`` (the sentence to speak,
    or None) and ``error``.
    """

    async def __call__(self, call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Call the tool ``name`` with ``arguments``."""
        ...


class CallTools:
    """The tools of one call: run them and record each call and result as call events.

    Args:
        call_id: The call.
        retriever: Knowledge-base search.
        sink: Where the call events go.
        create_ticket: Records a ticket request (injected by the agent); ``None``: tool unavailable.
        transfer_to_human: Opens a handoff (injected by the agent); ``None``: tool unavailable.
        turn_seq: Returns the current turn number (for the events).
        top_k: Passages per search.
    """

    def __init__(
        self,
        *,
        call_id: str,
        retriever: Retriever,
        sink: CallSink,
        create_ticket: TicketHandler | None,
        transfer_to_human: HandoffHandler | None,
        turn_seq: Callable[[], int | None] = lambda: None,
        top_k: int = 3,
        custom_tools: Sequence[ToolSpec] = (),
        call_custom: CustomToolHandler | None = None,
        collect_digits: DigitCollector | None = None,
    ) -> None:
        self.call_id = call_id
        self._retriever = retriever
        self._sink = sink
        self._create_ticket = create_ticket
        self._transfer = transfer_to_human
        self._turn_seq = turn_seq
        self._top_k = top_k
        self.end_requested = False
        # The operator's custom API tools (offered to LLM brains by function calling); none without a handler.
        self.custom_tools: tuple[ToolSpec, ...] = tuple(custom_tools) if call_custom is not None else ()
        self._call_custom = call_custom
        # The caller's keypad (phone lines only); ``None``: digits cannot be collected.
        self._collect_digits = collect_digits

    @property
    def available(self) -> tuple[str, ...]:
        """Names of the tools this call can use."""
        names = [SEARCH, END]
        if self._create_ticket is not None:
            names.append(TICKET)
        if self._transfer is not None:
            names.append(TRANSFER)
        if self._collect_digits is not None:
            names.append(COLLECT)
        names.extend(t.name for t in self.custom_tools)
        return tuple(names)

    @property
    def keypad(self) -> bool:
        """Whether the caller can key digits in (a phone line)."""
        return self._collect_digits is not None

    @property
    def llm_extra(self) -> tuple[ToolSpec, ...]:
        """The tools offered to LLM brains beside ``TOOLS``: the keypad (phone lines) and the custom tools."""
        return (*((KEYPAD,) if self.keypad else ()), *self.custom_tools)

    async def _event(self, kind: str, data: dict[str, Any]) -> None:
        await self._sink.event(CallEventRecord(kind=kind, turn_seq=self._turn_seq(), data=data))

    async def search(self, query: str, *, record: bool = True) -> tuple[Retrieval, float]:
        """Search the knowledge base; returns the retrieval and its wall time in ms.

        ``record=False`` is a speculative search (RAG prefetch): no call events, no query log; the one used
        is recorded with :meth:`record_search`.
        """
        if record:
            await self._event("tool_call", {"tool": SEARCH, "arguments": {"query": query}})
        t0 = time.perf_counter()
        retrieval = await self._retriever.retrieve(query, top_k=self._top_k, call_id=self.call_id, log=record)
        elapsed = (time.perf_counter() - t0) * 1000
        if record:
            await self._event("tool_result", self._search_result(retrieval))
        return retrieval, elapsed

    async def record_search(self, query: str, retrieval: Retrieval) -> None:
        """Record a knowledge-base search that the RAG processor already ran for this turn (events, query log)."""
        await self._event("tool_call", {"tool": SEARCH, "arguments": {"query": query}})
        await self._event("tool_result", self._search_result(retrieval))
        await self.log_query(query, retrieval)

    async def record_confirm(self, citation: str, score: float) -> None:
        """Record that the agent asked the caller whether the passage ``citation`` is what they meant."""
        await self._event(CONFIRM, {"tool": CONFIRM, "citation": citation, "score": score})

    async def log_query(self, query: str, retrieval: Retrieval) -> None:
        """Put a question answered from a speculative search in the knowledge base's query log."""
        await self._retriever.log(query, retrieval, call_id=self.call_id)

    @staticmethod
    def _search_result(retrieval: Retrieval) -> dict[str, Any]:
        return {
            "tool": SEARCH,
            "found": retrieval.found,
            "citations": [p.citation for p in retrieval.passages[:3]],
            "top_score": retrieval.passages[0].score if retrieval.passages else None,
        }

    async def ticket(self, subject: str, description: str) -> str | None:
        """Record a ticket request; returns its reference (``None`` if unavailable or failed)."""
        if self._create_ticket is None:
            return None
        await self._event("tool_call", {"tool": TICKET, "arguments": {"subject": subject, "description": description}})
        try:
            ref = await self._create_ticket(TicketRequest(self.call_id, subject, description))
        except Exception as exc:  # noqa: BLE001 - a handler failure becomes an event and a spoken apology
            log.warning("tool_handler_failed", call_id=self.call_id, tool=TICKET, error_type=type(exc).__name__)
            await self._event("tool_result", {"tool": TICKET, "ok": False, "error": type(exc).__name__})
            return None
        await self._event("tool_result", {"tool": TICKET, "ok": True, "reference": ref})
        return ref

    async def transfer(self, reason: str, summary: str) -> str | None:
        """Open a handoff; returns its reference (``None`` if unavailable or failed)."""
        if self._transfer is None:
            return None
        await self._event("tool_call", {"tool": TRANSFER, "arguments": {"reason": reason, "summary": summary}})
        try:
            ref = await self._transfer(HandoffRequest(self.call_id, reason, summary))
        except Exception as exc:  # noqa: BLE001 - a handler failure becomes an event and a spoken apology
            log.warning("tool_handler_failed", call_id=self.call_id, tool=TRANSFER, error_type=type(exc).__name__)
            await self._event("tool_result", {"tool": TRANSFER, "ok": False, "error": type(exc).__name__})
            return None
        await self._event("tool_result", {"tool": TRANSFER, "ok": True, "reference": ref})
        return ref

    async def custom(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Run the custom API tool ``name``; its result (``ok``, ``values``, ``say``, ``error``) is recorded too."""
        if self._call_custom is None or name not in {t.name for t in self.custom_tools}:
            return {"ok": False, "values": {}, "say": None, "error": f"No tool named {name}."}
        await self._event("tool_call", {"tool": name, "arguments": arguments})
        try:
            result = await self._call_custom(self.call_id, name, arguments)
        except Exception as exc:  # noqa: BLE001 - a handler failure becomes an event and a spoken apology
            log.warning("tool_handler_failed", call_id=self.call_id, tool=name, error_type=type(exc).__name__)
            result = {"ok": False, "values": {}, "say": None, "error": type(exc).__name__}
        # The event keeps whether it worked and which values came back, not the values (they may be personal).
        await self._event(
            "tool_result", {"tool": name, "ok": bool(result.get("ok")), "values": sorted(result.get("values") or {})}
        )
        return result

    async def collect_digits(self, *, max_digits: int = 16) -> CollectedDigits | None:
        """Collect digits the caller keys (``#`` ends them); ``None`` without a keypad or when it failed.

        Raises ``asyncio.CancelledError`` when the awaiting task is cancelled (the caller answered by voice); the
        events record how many digits came and how the collection ended, never the digits.
        """
        if self._collect_digits is None:
            return None
        max_digits = max(1, min(MAX_KEYED_DIGITS, max_digits))
        await self._event("tool_call", {"tool": COLLECT, "arguments": {"max_digits": max_digits}})
        try:
            result = await self._collect_digits(max_digits=max_digits)
        except Exception as exc:  # noqa: BLE001 - a failure becomes an event; the caller may still say it
            log.warning("tool_handler_failed", call_id=self.call_id, tool=COLLECT, error_type=type(exc).__name__)
            await self._event("tool_result", {"tool": COLLECT, "ok": False, "error": type(exc).__name__})
            return None
        await self._event(
            "tool_result", {"tool": COLLECT, "ok": True, "count": len(result.digits), "ended": result.ended}
        )
        return result

    async def end_call(self) -> None:
        """Mark the call to end once the goodbye has been spoken."""
        await self._event("tool_call", {"tool": END, "arguments": {}})
        self.end_requested = True
        await self._event("tool_result", {"tool": END, "ok": True})
