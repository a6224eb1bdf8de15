"""Function-calling glue shared by the LLM brains: each tool is a pipecat function handler over ``CallTools``."""

from __future__ import annotations

from typing import Any

from pipecat.frames.frames import EndTaskFrame, FunctionCallResultProperties, TTSSpeakFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import FunctionCallParams, LLMService

from pipelines.contracts import PersonaSpec
from pipelines.tools import COLLECT, END, SEARCH, TICKET, TRANSFER, CallTools


def register_tools(llm: LLMService[Any], tools: CallTools, persona: PersonaSpec) -> None:
    """Register the call's tools as function handlers on ``llm`` (tool events are recorded by ``tools``)."""

    async def search(params: FunctionCallParams) -> None:
        query = str(params.arguments.get("query", ""))
        retrieval, _ = await tools.search(query)
        result: dict[str, Any] = {
            "found": retrieval.found,
            "passages": [{"citation": p.citation, "text": p.text} for p in retrieval.passages[:3]]
            if retrieval.found
            else [],
        }
        await params.result_callback(result)

    async def ticket(params: FunctionCallParams) -> None:
        ref = await tools.ticket(
            subject=str(params.arguments.get("subject", "Caller request"))[:120],
            description=str(params.arguments.get("description", "")),
        )
        # Queued for the helpdesk, not yet confirmed: the model is told so, so that it does not say "created".
        await params.result_callback(
            {"ok": ref is not None, "reference": ref, "status": "queued" if ref is not None else "failed"}
        )

    async def transfer(params: FunctionCallParams) -> None:
        ref = await tools.transfer(
            reason=str(params.arguments.get("reason", "caller asked for a human")),
            summary=str(params.arguments.get("summary", "")),
        )
        await params.result_callback({"ok": ref is not None, "reference": ref})

    async def end_call(params: FunctionCallParams) -> None:
        await tools.end_call()
        await params.result_callback({"ok": True}, properties=FunctionCallResultProperties(run_llm=False))
        await params.llm.push_frame(TTSSpeakFrame(f"Thank you for calling. Goodbye from {persona.name}!"))
        await params.llm.push_frame(EndTaskFrame(reason="caller ended the call"), FrameDirection.UPSTREAM)

    async def collect(params: FunctionCallParams) -> None:
        # Phone lines only (the tool is offered where the call has a keypad). The prompt is spoken, the digits
        # keyed meanwhile count; the caller speaking interrupts the call and so cancels the collection.
        prompt = str(params.arguments.get("prompt", "")).strip()
        try:
            max_digits = int(params.arguments.get("max_digits", 16))
        except (TypeError, ValueError):
            max_digits = 16
        if prompt:
            await params.llm.push_frame(TTSSpeakFrame(prompt))
        result = await tools.collect_digits(max_digits=max_digits)
        if result is None:
            await params.result_callback({"ok": False, "digits": "", "outcome": "unavailable"})
            return
        outcome = "complete" if result.complete else "timeout"
        await params.result_callback({"ok": bool(result.digits), "digits": result.digits, "outcome": outcome})

    async def custom(params: FunctionCallParams) -> None:
        # The operator's custom API tool: the model gets the mapped values and the sentence to say.
        await params.result_callback(await tools.custom(params.function_name, dict(params.arguments)))

    handlers = {SEARCH: search, TICKET: ticket, TRANSFER: transfer, END: end_call, COLLECT: collect}
    for name in tools.available:
        llm.register_function(name, handlers.get(name, custom))
