"""The extractive brain on a phone line: an order number asked for may be keyed in (``collect_digits``).

A real pipecat pipeline runs the brain; the keypad is the product's (``PhoneKeypad`` over a real SQLite call
record, fed by the one DTMF rule ``caller_digit``), the custom tool goes through ``CustomApiCaller`` (the SSRF
guard, a run per call) to the local order API. Keyed digits ended by ``#`` answer the question; a spoken answer
that comes first closes the keypad; a WebSocket call is never offered one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from fastapi.testclient import TestClient
from pipecat.frames.frames import EndFrame, Frame, LLMContextFrame, LLMFullResponseEndFrame, LLMTextFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import WorkerRunner
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import FunctionCallParams
from pipecat.services.openai.llm import OpenAILLMService
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.calls.channels import NullChannel
from agent.calls.media import CallControls
from agent.calls.session import CallSession
from agent.calls.tools import CustomApiCaller
from agent.transports.digits import PhoneKeypad, caller_digit, collecting
from benchmarks.product_kb import demo_settings, service_embedder
from control_api.db.engine import session_factory
from control_api.db.migrate import upgrade
from control_api.db.models import CallEvent
from control_api.integrations.secrets import box_from_settings
from control_api.services import calls as call_service
from pipelines.brain import custom_tools as custom
from pipelines.brain.extractive import ExtractiveBackend
from pipelines.brain.llm_tools import register_tools
from pipelines.contracts import PersonaSpec, Retrieval
from pipelines.options import BrainOptions
from pipelines.tools import COLLECT, CallTools, ToolSpec, tools_schema
from tests.control_api.conftest import Accounts
from tests.integrations.standins import ORDERS_TOKEN, OrdersApi
from tests.integrations.test_custom_api import config
from tests.integrations.test_extractive_tools import RecordedSearch
from tests.pipelines.conftest import RecordingSink

if TYPE_CHECKING:
    from agent.calls.service import VoiceService

pytestmark = pytest.mark.integration
REQUEST = "can you check on my order please"


class Answers(FrameProcessor):
    """The end of the test pipeline: keeps what the brain says, one text per response."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.changed = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMTextFrame):
            self.texts.append(frame.text)
        if isinstance(frame, LLMFullResponseEndFrame):
            self.changed.set()
        await self.push_frame(frame, direction)

    async def wait_for(self, count: int) -> list[str]:
        while len(self.texts) < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 60)
        return self.texts


def _turn(text: str) -> LLMContextFrame:
    return LLMContextFrame(context=LLMContext(messages=[{"role": "user", "content": text}]))


class _Phone:
    """One call with its brain in a running pipeline; ``keys`` presses keys the way a phone transport does."""

    def __init__(self, state: Any, caller: CustomApiCaller, embedder: Any, specs: tuple[ToolSpec, ...]) -> None:
        self.state, self.caller, self.embedder, self.specs = state, caller, embedder, specs
        self.sink, self.answers = RecordingSink(), Answers()

    async def start(self, channel: str) -> None:
        async with self.state.sessions() as session:
            record = await call_service.create_call(session, channel=channel, caller_name="Asha")
        self.call = CallSession(
            call_id=record.id,
            channel_name=channel,
            sessions=self.state.sessions,
            client=NullChannel(),
            silence_timeout_secs=60,
            max_call_secs=600,
            on_closed=lambda _call: None,
        )
        self.controls = CallControls(call=self.call, voice=cast("VoiceService", None))
        keypad = PhoneKeypad(sessions=self.state.sessions, call_id=record.id) if channel == "sip" else None
        self.tools = CallTools(
            call_id=record.id,
            retriever=RecordedSearch(),
            sink=self.sink,
            create_ticket=None,
            transfer_to_human=None,
            custom_tools=self.specs,
            call_custom=self.caller,
            collect_digits=keypad,
        )
        brain = ExtractiveBackend(BrainOptions(), self.embedder).create_processor(
            call_id=record.id, persona=PersonaSpec(), tools=self.tools
        )
        self.worker = PipelineWorker(Pipeline([brain, self.answers]), cancel_on_idle_timeout=False)
        self.runner = WorkerRunner(handle_sigint=False)
        await self.runner.add_workers(self.worker)
        self.running = asyncio.create_task(self.runner.run())

    async def say(self, text: str) -> None:
        await self.worker.queue_frame(_turn(text))

    async def keys(self, keys: str) -> None:
        for key in keys:
            await caller_digit(self.state.sessions, self.call, self.controls, key)

    async def stop(self) -> None:
        await self.worker.queue_frame(EndFrame())
        await asyncio.wait_for(self.running, 30)

    async def digit_events(self) -> list[tuple[str, Any]]:
        async with self.state.sessions() as session:
            rows = await session.scalars(
                select(CallEvent)
                .where(CallEvent.call_id == self.call.call_id, CallEvent.kind.in_(("dtmf", "digits_collected")))
                .order_by(CallEvent.id)
            )
            return [(e.kind, e.data) for e in rows]


def _run(
    client: TestClient, accounts: Accounts, orders: OrdersApi, tmp_path: Path, script: Any
) -> tuple[Any, OrdersApi]:
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
        await caller.refresh(state.sessions)
        return caller.snapshot()

    assert client.portal is not None
    client.portal.call(embedder.warm)
    try:
        assert client.post("/api/integrations", json=body, headers=accounts.headers("admin")).status_code == 201
        specs = client.portal.call(loaded)
        assert [s.name for s in specs] == ["check_order_status"]
        phone = _Phone(state, caller, embedder, specs)
        return client.portal.call(script, phone), orders
    finally:
        client.portal.call(caller.aclose)


def test_keyed_digits_answer_the_question_for_the_order_number(
    client: TestClient, accounts: Accounts, orders: OrdersApi, tmp_path: Path
) -> None:
    async def script(phone: _Phone) -> tuple[list[str], list[Any]]:
        await phone.start("sip")
        try:
            await phone.say(REQUEST)
            await phone.answers.wait_for(1)
            while not collecting(phone.call.call_id):  # opened with the question
                await asyncio.sleep(0.01)
            await phone.keys("40917#")  # 0 is a digit here, not a request for a person
            texts = await phone.answers.wait_for(2)
            await phone.keys("0")  # after the collection: the normal way (stored; no desk here)
        finally:
            await phone.stop()
        return texts, await phone.digit_events()

    (texts, events), api = _run(client, accounts, orders, tmp_path, script)
    assert texts[0] == "Sure. What is the order id? You can say it, or key it in followed by the hash key."
    assert texts[1].startswith("Your order is shipped: Router X2"), texts
    [sent] = api.requests  # exactly one request, with the keyed number
    assert sent["body"]["order"] == "40917"
    assert events == [("digits_collected", {"count": 5, "ended": "terminator"}), ("dtmf", {"digit": "0"})]


def test_a_spoken_answer_first_closes_the_keypad(
    client: TestClient, accounts: Accounts, orders: OrdersApi, tmp_path: Path
) -> None:
    async def script(phone: _Phone) -> tuple[list[str], list[Any], list[Any]]:
        await phone.start("sip")
        try:
            await phone.say(REQUEST)
            await phone.answers.wait_for(1)
            assert collecting(phone.call.call_id)
            await phone.say("yes it's one two three four five")
            texts = await phone.answers.wait_for(2)
            assert not collecting(phone.call.call_id)
            await phone.keys("9#")  # too late for the question: plain digits
        finally:
            await phone.stop()
        tool_events = [(e.kind, e.data.get("tool"), e.data.get("ended")) for e in phone.sink.events]
        return texts, await phone.digit_events(), tool_events

    (texts, events, tool_events), api = _run(client, accounts, orders, tmp_path, script)
    assert texts[1].startswith("Your order is shipped: Router X2"), texts
    [sent] = api.requests
    assert sent["body"]["order"] == "12345"
    assert events == [("dtmf", {"digit": "9"}), ("dtmf", {"digit": "#"})]
    assert ("tool_call", COLLECT, None) in tool_events
    assert ("tool_result", COLLECT, None) not in tool_events  # cancelled, not ended


def test_a_websocket_call_is_never_offered_the_keypad(
    client: TestClient, accounts: Accounts, orders: OrdersApi, tmp_path: Path
) -> None:
    async def script(phone: _Phone) -> tuple[list[str], bool, tuple[str, ...]]:
        await phone.start("websocket")
        try:
            await phone.say(REQUEST)
            texts = await phone.answers.wait_for(1)
            open_keypad = collecting(phone.call.call_id)
        finally:
            await phone.stop()
        return texts, open_keypad, phone.tools.available

    (texts, open_keypad, available), api = _run(client, accounts, orders, tmp_path, script)
    assert texts == ["Sure. What is the order id?"]
    assert not open_keypad and COLLECT not in available and api.requests == []


@pytest.mark.unit
def test_which_arguments_can_be_keyed_in() -> None:
    def spec(**schema: Any) -> ToolSpec:
        return ToolSpec("t", "", (), {"x": schema}, ("x",))

    assert custom.keyable(spec(type="string", pattern="^[0-9]{4,10}$"), "x")
    assert custom.keyable(spec(type="integer"), "x")
    assert not custom.keyable(spec(type="string", pattern="^KB-[0-9]{8}$"), "x")  # letters cannot be keyed
    assert not custom.keyable(spec(type="string"), "x")  # a free string (a name, an address)
    assert custom.keyable(ToolSpec("t", "", (), {"account_number": {"type": "string"}}, ()), "account_number")
    assert not custom.keyable(spec(type="string", enum=["monday", "friday"]), "x")
    assert custom.most_digits(spec(type="string", maxLength=8), "x", 32) == 8


class _NoSearch:
    async def retrieve(self, query: str, *, top_k: int, call_id: str | None = None, log: bool = True) -> Retrieval:
        raise AssertionError("no search in this test")

    async def log(self, query: str, retrieval: Retrieval, *, call_id: str | None = None) -> None:
        return None


async def test_llm_brains_get_the_collect_digits_tool_on_phone_lines_only(sqlite_engine: AsyncEngine) -> None:
    await upgrade(sqlite_engine)
    sessions = session_factory(sqlite_engine)
    async with sessions() as session:
        record = await call_service.create_call(session, channel="sip")
    call = CallSession(
        call_id=record.id,
        channel_name="sip",
        sessions=sessions,
        client=NullChannel(),
        silence_timeout_secs=60,
        max_call_secs=600,
        on_closed=lambda _call: None,
    )
    controls = CallControls(call=call, voice=cast("VoiceService", None))

    def tools(keypad: PhoneKeypad | None) -> CallTools:
        return CallTools(
            call_id=record.id,
            retriever=_NoSearch(),
            sink=RecordingSink(),
            create_ticket=None,
            transfer_to_human=None,
            collect_digits=keypad,
        )

    browser = tools(None)
    assert COLLECT not in browser.available and COLLECT not in [t.name for t in browser.llm_extra]
    phone = tools(PhoneKeypad(sessions=sessions, call_id=record.id))
    assert COLLECT in [s.name for s in tools_schema(phone.llm_extra).standard_tools]
    llm = OpenAILLMService(api_key="not-used")  # never reached: the handler is called as pipecat would
    register_tools(llm, phone, PersonaSpec())
    results: list[Any] = []

    async def result_callback(result: Any, **_: Any) -> None:
        results.append(result)

    async def key_in(keys: str) -> None:
        while not collecting(record.id):
            await asyncio.sleep(0.01)
        for key in keys:
            await caller_digit(sessions, call, controls, key)

    keyer = asyncio.create_task(key_in("0042#"))
    await llm._functions[COLLECT].handler(
        FunctionCallParams(
            function_name=COLLECT,
            tool_call_id="call-1",
            arguments={"prompt": "Please key in your account number, then the hash key.", "max_digits": 8},
            llm=llm,
            pipeline_worker=None,  # type: ignore[arg-type]
            context=None,  # type: ignore[arg-type]
            result_callback=result_callback,
            app_resources=None,
            worker_runner=None,
        )
    )
    await keyer
    assert results == [{"ok": True, "digits": "0042", "outcome": "complete"}]
    events = [(e.kind, e.data) for e in cast("RecordingSink", phone._sink).events]
    assert events == [
        ("tool_call", {"tool": COLLECT, "arguments": {"max_digits": 8}}),
        ("tool_result", {"tool": COLLECT, "ok": True, "count": 4, "ended": "terminator"}),
    ]
