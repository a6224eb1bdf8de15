"""Custom API tools reach the agent: LLM brains are offered them by function calling and their calls go through
the SSRF guard to the API, with tool events recorded (the extractive brain: test_extractive_tools.py)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pipecat.services.llm_service import FunctionCallParams
from pipecat.services.openai.llm import OpenAILLMService

from agent.calls.tools import CustomApiCaller
from control_api.integrations.secrets import box_from_settings
from control_api.services import calls as call_service
from pipelines.brain.llm_tools import register_tools
from pipelines.contracts import PersonaSpec
from pipelines.tools import CallTools, ToolSpec, tools_schema
from tests.control_api.conftest import Accounts
from tests.integrations.standins import ORDERS_TOKEN, OrdersApi
from tests.integrations.test_custom_api import config
from tests.pipelines.conftest import RecordingSink

pytestmark = pytest.mark.integration


class NoSearch:
    """The retriever is not used by these tests (custom tools only)."""

    async def retrieve(self, query: str, *, top_k: int, call_id: str | None = None, log: bool = True) -> Any:
        raise AssertionError("not searched")

    async def log(self, query: str, retrieval: Any, *, call_id: str | None = None) -> None:
        raise AssertionError("not logged")


def test_an_llm_brain_calls_the_custom_tool(client: TestClient, accounts: Accounts, orders: OrdersApi) -> None:
    body = {"name": "orders", "type": "custom_api", "config": config(orders.url), "secrets": {"token": ORDERS_TOKEN}}
    assert client.post("/api/integrations", json=body, headers=accounts.headers("admin")).status_code == 201
    state = client.app.state.voxdesk  # type: ignore[attr-defined]
    settings = state.settings

    async def run() -> tuple[list[str], dict[str, Any], RecordingSink, Any]:
        caller = CustomApiCaller(
            box=box_from_settings(settings.integrations),
            allowed_private_hosts=settings.integrations.allowed_private_hosts,
        )
        try:
            specs = await caller.refresh(state.sessions)
            assert caller.snapshot() == specs
            async with state.sessions() as session:
                call = await call_service.create_call(session, channel="webrtc", caller_name="Asha")
            sink = RecordingSink()
            tools = CallTools(
                call_id=call.id,
                retriever=NoSearch(),  # type: ignore[arg-type]
                sink=sink,
                create_ticket=None,
                transfer_to_human=None,
                custom_tools=specs,
                call_custom=caller,
            )
            schema = tools_schema(tools.custom_tools)
            llm = OpenAILLMService(api_key="not-used")  # never reached: the handler is called as pipecat would
            register_tools(llm, tools, PersonaSpec())
            results: list[Any] = []

            async def result_callback(result: Any, **_: Any) -> None:
                results.append(result)

            handler = llm._functions["check_order_status"].handler
            await handler(
                FunctionCallParams(
                    function_name="check_order_status",
                    tool_call_id="call-1",
                    arguments={"order_id": "1234"},
                    llm=llm,
                    pipeline_worker=None,  # type: ignore[arg-type]
                    context=None,  # type: ignore[arg-type]
                    result_callback=result_callback,
                    app_resources=None,
                    worker_runner=None,
                )
            )
            return [t.name for t in schema.standard_tools], results[0], sink, tools.available
        finally:
            await caller.aclose()

    assert client.portal is not None
    names, result, sink, available = client.portal.call(run)
    assert "check_order_status" in names and "check_order_status" in available
    assert result["ok"] is True and result["say"].startswith("Your order is shipped: Router X2")
    assert result["values"]["status"] == "shipped"
    [sent] = orders.requests
    assert sent["headers"]["Authorization"] == f"Bearer {ORDERS_TOKEN}" and sent["body"]["caller"] == "Asha"
    kinds = [(e.kind, e.data.get("tool")) for e in sink.events]
    assert kinds == [("tool_call", "check_order_status"), ("tool_result", "check_order_status")]
    assert sink.events[1].data == {
        "tool": "check_order_status",
        "ok": True,
        "values": ["eta", "gone", "item", "status"],
    }


def test_without_a_handler_no_custom_tool_is_offered() -> None:
    spec = ToolSpec("check_order_status", "Look up an order.", (), {"order_id": {"type": "string"}}, ("order_id",))
    # Formatting is off for this statement: the call's wiring on one line, its tools on the next.
    tools = CallTools(
        call_id="c", retriever=NoSearch(), sink=RecordingSink(), create_ticket=None, transfer_to_human=None,  # type: ignore[arg-type]
        custom_tools=[spec], call_custom=None,
    )  # fmt: skip
    assert tools.available == ("search_knowledge_base", "end_call") and tools.custom_tools == ()
