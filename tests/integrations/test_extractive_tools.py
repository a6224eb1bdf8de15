"""The extractive brain (the offline default) calls the operator's custom API tools.

A turn is matched to an enabled custom tool with the knowledge service's embedder, its arguments are filled from
the caller's words by the parameters' JSON schema (spoken digits included), a missing required one is asked for
in one question, and the call goes through ``CustomApiCaller`` (the SSRF guard, a run per call) to a local API;
the agent speaks the response mapping's ``say``. A knowledge question in the same call stays a search.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agent.calls.tools import CustomApiCaller
from benchmarks.product_kb import demo_settings, service_embedder
from control_api.db.models import IntegrationRun
from control_api.integrations.secrets import box_from_settings
from control_api.services import calls as call_service
from pipelines.brain import custom_tools as custom
from pipelines.brain.extractive import ExtractiveBackend, pick_tool
from pipelines.contracts import PersonaSpec, Retrieval
from pipelines.options import BrainOptions
from pipelines.tools import SEARCH, TOOLS, CallTools, ToolSpec
from tests.control_api.conftest import Accounts
from tests.integrations.standins import ORDERS_TOKEN, OrdersApi
from tests.integrations.test_custom_api import config
from tests.pipelines.conftest import RecordingSink

ORDER = ToolSpec(
    "check_order_status",
    "Look up the status of the caller's order by its order number.",
    ("where is my order",),
    {"order_id": {"type": "string", "pattern": "^[0-9]{4,10}$", "title": "order number"}},
    ("order_id",),
)
ACCOUNT = ToolSpec(
    "account_balance",
    "Tell the caller the balance of their account.",
    (),
    {"account": {"type": "string", "pattern": "^KB-[0-9]{8}$"}, "months": {"type": "integer", "maximum": 24}},
    ("account",),
)
VISIT = ToolSpec(
    "book_visit",
    "Book an engineer visit.",
    (),
    {
        "day": {"type": "string", "enum": ["monday", "friday"]},
        "reference": {"type": "string", "description": "The fault reference"},
        "address": {"type": "string"},
    },
    ("day", "address"),
)


@pytest.mark.unit
def test_spoken_digits_become_one_number_and_values_are_left_out_of_matching() -> None:
    assert custom.normalise_digits("order one two three four five please") == "order 12345 please"
    assert custom.normalise_digits("I have one question") == "I have one question"  # one digit word is a word
    assert custom.normalise_digits("three for five, and for five days") == "345 and for five days"
    assert custom.normalise_digits("it is 12 34 5.") == "it is 12345"
    assert custom.without_values("what's the status of order 12345") == "what's the status of order"
    assert custom.without_values("is order four four five six one sent") == "is order sent"
    assert custom.without_values("12345") == "12345"  # nothing but a value: kept


@pytest.mark.unit
def test_arguments_are_filled_by_each_parameters_schema() -> None:
    assert custom.fill(ORDER, "what's the status of order 12345") == ({"order_id": "12345"}, None)
    assert custom.fill(ORDER, "order 12 please") == ({}, "order_id")  # the pattern wants 4-10 digits
    assert custom.fill(ORDER, "has order four four five six one been sent") == ({"order_id": "44561"}, None)
    args, missing = custom.fill(ACCOUNT, "balance of kb-12345678 over the last 6 months")
    assert args == {"account": "KB-12345678", "months": 6} and missing is None
    assert custom.fill(ACCOUNT, "balance over the last 36 months") == ({}, "account")  # 36 > maximum
    args, missing = custom.fill(VISIT, "send someone on Friday about fault F-2291")
    assert args == {"day": "friday", "reference": "F-2291"} and missing == "address"


@pytest.mark.unit
def test_an_answer_fills_the_asked_argument_or_is_not_one() -> None:
    pending = custom.PendingTool(spec=ORDER, arguments={}, missing="order_id")
    assert custom.ask(ORDER, "order_id") == "Sure. What is the order number?"
    assert custom.answer(ORDER, pending, "it's nine eight seven six five") == ({"order_id": "98765"}, None)
    assert custom.answer(ORDER, pending, "how do I reset my password") is None
    visit = custom.PendingTool(spec=VISIT, arguments={"day": "friday"}, missing="address")
    assert custom.ask(VISIT, "address") == "Sure. What is the address?"
    assert custom.answer(VISIT, visit, "12 High Street, Leeds.") == (
        {"day": "friday", "address": "12 High Street, Leeds"},
        None,
    )


@pytest.mark.unit
def test_what_is_spoken_comes_from_say_or_the_values() -> None:
    assert custom.spoken(ORDER, {"ok": True, "say": "It is shipped.", "values": {}}) == "It is shipped."
    said = custom.spoken(ORDER, {"ok": True, "say": None, "values": {"status": "shipped", "eta": None}})
    assert said == "Here is what I found. status: shipped."
    assert custom.spoken(ORDER, {"ok": False, "error": "404"}) == "I'm sorry, I couldn't check order status right now."


@pytest.mark.unit
def test_custom_tools_need_their_own_threshold_and_must_beat_the_search() -> None:
    available = [t.name for t in TOOLS] + [ORDER.name]
    names = {ORDER.name}
    base = {t.name: 0.1 for t in TOOLS}
    assert pick_tool({**base, ORDER.name: 0.7}, available, 0.55, custom_names=names) == ORDER.name
    assert pick_tool({**base, ORDER.name: 0.58}, available, 0.55, custom_names=names) == SEARCH  # below 0.6
    assert pick_tool({**base, SEARCH: 0.8, ORDER.name: 0.7}, available, 0.55, custom_names=names) == SEARCH
    assert pick_tool({**base, ORDER.name: 0.7}, [t.name for t in TOOLS], 0.55, custom_names=names) == SEARCH


class RecordedSearch:
    """A knowledge base with nothing in it that records what it was asked (the brain's search path)."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    async def retrieve(self, query: str, *, top_k: int, call_id: str | None = None, log: bool = True) -> Retrieval:
        self.queries.append(query)
        return Retrieval(found=False, passages=())

    async def log(self, query: str, retrieval: Retrieval, *, call_id: str | None = None) -> None:
        return None


@pytest.mark.integration
def test_the_extractive_brain_asks_for_the_order_number_then_calls_the_api_once(
    client: TestClient, accounts: Accounts, orders: OrdersApi, tmp_path: Path
) -> None:
    body = {"name": "orders", "type": "custom_api", "config": config(orders.url), "secrets": {"token": ORDERS_TOKEN}}
    state = client.app.state.voxdesk  # type: ignore[attr-defined]
    settings = state.settings
    embedder = service_embedder(demo_settings(tmp_path / "models"))

    caller = CustomApiCaller(
        box=box_from_settings(settings.integrations),
        allowed_private_hosts=settings.integrations.allowed_private_hosts,
        refresh_secs=3600.0,
    )

    async def loaded() -> tuple[ToolSpec, ...]:
        for _ in range(250):
            if caller.snapshot():
                break
            await asyncio.sleep(0.02)
        return caller.snapshot()

    async def run(specs: tuple[ToolSpec, ...]) -> tuple[list[Any], RecordingSink, RecordedSearch, str, Any]:
        async with state.sessions() as session:
            call = await call_service.create_call(session, channel="websocket", caller_name="Asha")
        sink, search = RecordingSink(), RecordedSearch()
        tools = CallTools(
            call_id=call.id,
            retriever=search,
            sink=sink,
            create_ticket=None,
            transfer_to_human=None,
            custom_tools=specs,
            call_custom=caller,
        )
        brain = ExtractiveBackend(BrainOptions(), embedder).create_processor(
            call_id=call.id, persona=PersonaSpec(), tools=tools
        )
        said = []
        for turn in (
            "can you check on my order please",
            "yes it's one two three four five",
            "what is your refund policy",
        ):
            text, _, tool = await brain._decide(turn)
            said.append((text, tool))
        return said, sink, search, call.id, tools.available

    assert client.portal is not None
    client.portal.call(embedder.warm)
    try:
        assert client.portal.call(caller.refresh, state.sessions) == ()
        # Saving the tool through the API reloads the voice side's list at once (same process, no 30 s wait).
        assert client.post("/api/integrations", json=body, headers=accounts.headers("admin")).status_code == 201
        specs = client.portal.call(loaded)
        assert [s.name for s in specs] == ["check_order_status"]
        said, sink, search, call_id, available = client.portal.call(run, specs)
    finally:
        client.portal.call(caller.aclose)
    assert "check_order_status" in available
    assert said[0] == ("Sure. What is the order id?", "check_order_status")  # no title: the name in words
    assert said[1][1] == "check_order_status" and said[1][0].startswith("Your order is shipped: Router X2"), said
    assert said[2][1] == SEARCH and search.queries == ["what is your refund policy"], said
    [sent] = orders.requests  # exactly one request, the rendered one
    assert sent["body"] == {"order": "12345", "caller": "Asha", "summary": sent["body"]["summary"]}
    assert sent["headers"]["Authorization"] == f"Bearer {ORDERS_TOKEN}" and sent["query"] == {"lang": "en"}
    events = [(e.kind, e.data.get("tool"), e.data.get("arguments")) for e in sink.events]
    assert events[:2] == [
        ("tool_call", "check_order_status", {"order_id": "12345"}),
        ("tool_result", "check_order_status", None),
    ]

    async def runs() -> list[Any]:
        async with state.sessions() as session:
            return list(
                (await session.execute(select(IntegrationRun).where(IntegrationRun.call_id == call_id))).scalars()
            )

    [run_row] = client.portal.call(runs)
    assert run_row.action == "tool:check_order_status" and run_row.status == "succeeded"
