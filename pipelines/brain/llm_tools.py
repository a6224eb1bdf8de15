"""Function-calling glue shared by the LLM brains: each tool is a pipecat function handler over ``CallTools``."""

from __future__ import annotations

from typing import Any

from pipecat.frames.frames import EndTaskFrame, FunctionCallResultProperties, TTSSpeakFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import FunctionCallParams, LLMService

from pipelines.contracts import PersonaSpec
from pipelines.tools import END, SEARCH, TICKET, TRANSFER, CallTools


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

    async def custom(params: FunctionCallParams) -> None:
        # The operator's custom API tool: the model gets the mapped values and the sentence to say.
        await params.result_callback(await tools.custom(params.function_name, dict(params.arguments)))

    handlers = {SEARCH: search, TICKET: ticket, TRANSFER: transfer, END: end_call}
    for name in tools.available:
        llm.register_function(name, handlers.get(name, custom))
