"""The digit collector of the one DTMF rule (agent/transports/digits.py), over a real SQLite call record."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.calls.channels import NullChannel
from agent.calls.media import CallControls
from agent.calls.session import CallSession
from agent.transports.digits import caller_digit, collect_digits, collecting
from control_api.db.engine import session_factory
from control_api.db.migrate import upgrade
from control_api.db.models import CallEvent
from control_api.services import calls

if TYPE_CHECKING:
    from agent.calls.service import VoiceService

pytestmark = pytest.mark.unit


class _Line:
    """A call on a phone line with a real call record; transfers (the cold-transfer boundary) are recorded."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = session_factory(engine)
        self.transfers: list[str] = []

    async def start(self) -> None:
        async with self.sessions() as session:
            record = await calls.create_call(session, channel="sip")
        self.call = CallSession(
            call_id=record.id,
            channel_name="sip",
            sessions=self.sessions,
            client=NullChannel(),
            silence_timeout_secs=60,
            max_call_secs=600,
            on_closed=lambda _call: None,
        )
        # No handoff desk (call.handoff is None): a 0 falls through to the cold transfer, which is recorded here.
        self.controls = CallControls(call=self.call, voice=cast("VoiceService", None))

    async def _transfer(self, target: str) -> bool:
        self.transfers.append(target)
        return True

    async def press(self, keys: str) -> None:
        for key in keys:
            await caller_digit(
                self.sessions, self.call, self.controls, key, transfer=self._transfer, transfer_target="sip:desk@pbx"
            )

    async def events(self) -> list[tuple[str, dict[str, object] | None]]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(CallEvent).where(CallEvent.call_id == self.call.call_id).order_by(CallEvent.id)
            )
            return [(row.kind, row.data) for row in rows]


@pytest.fixture
async def line(sqlite_engine: AsyncEngine) -> _Line:
    await upgrade(sqlite_engine)
    phone = _Line(sqlite_engine)
    await phone.start()
    return phone


async def _collect_while(line: _Line, keys: str, **limits: float) -> tuple[str, str]:
    task = asyncio.create_task(collect_digits(line.sessions, line.call.call_id, **limits))  # type: ignore[arg-type]
    while not collecting(line.call.call_id):
        await asyncio.sleep(0)
    await line.press(keys)
    result = await task
    return result.digits, result.ended


async def test_terminator_ends_and_zero_is_a_digit(line: _Line) -> None:
    assert await _collect_while(line, "40012#9") == ("40012", "terminator")
    # The 9 after the # was outside the collection: stored as a plain digit; no transfer was asked for by the 0s.
    assert line.transfers == []
    assert not collecting(line.call.call_id)
    events = await line.events()
    # The 9 was keyed before the collection's task woke (stored first); the collection's event follows.
    assert sorted(events, key=repr) == [
        ("digits_collected", {"count": 5, "ended": "terminator"}),
        ("dtmf", {"digit": "9"}),
    ]
    assert "40012" not in repr(events)  # the collected digits themselves are never stored as events


async def test_max_digits_ends(line: _Line) -> None:
    assert await _collect_while(line, "123456", max_digits=4) == ("1234", "max_digits")
    assert sorted(kind for kind, _ in await line.events()) == ["digits_collected", "dtmf", "dtmf"]


async def test_a_digit_after_the_end_goes_the_normal_way(line: _Line) -> None:
    # The 0 is keyed after the # ended the collection but before its task woke: it asks for a person.
    assert await _collect_while(line, "12#0") == ("12", "terminator")
    assert line.transfers == ["sip:desk@pbx"]
    assert ("dtmf", {"digit": "0"}) in await line.events()


def _outcomes(outcome: str) -> float:
    return REGISTRY.get_sample_value("voxdesk_digit_collections_total", {"outcome": outcome}) or 0.0


async def test_a_cancelled_collection_lets_digits_through(line: _Line) -> None:
    cancelled, complete = _outcomes("cancelled"), _outcomes("complete")
    task = asyncio.create_task(collect_digits(line.sessions, line.call.call_id))
    while not collecting(line.call.call_id):
        await asyncio.sleep(0)
    await line.press("4")
    task.cancel()  # the caller answered by voice
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not collecting(line.call.call_id)
    await line.press("0")
    assert line.transfers == ["sip:desk@pbx"]
    assert await line.events() == [("dtmf", {"digit": "0"})]
    assert (_outcomes("cancelled"), _outcomes("complete")) == (cancelled + 1, complete)


async def test_inter_digit_timeout_ends(line: _Line) -> None:
    assert await _collect_while(line, "77", timeout_s=0.05) == ("77", "timeout")
    assert (await line.events())[0] == ("digits_collected", {"count": 2, "ended": "timeout"})


async def test_no_digit_at_all_times_out(line: _Line) -> None:
    result = await collect_digits(line.sessions, line.call.call_id, first_timeout_s=0.05)
    assert (result.digits, result.ended) == ("", "timeout")


async def test_zero_outside_a_collection_still_asks_for_a_person(line: _Line) -> None:
    await line.press("0")
    assert line.transfers == ["sip:desk@pbx"]
    assert await line.events() == [("dtmf", {"digit": "0"})]


async def test_one_collection_per_call(line: _Line) -> None:
    first = asyncio.create_task(collect_digits(line.sessions, line.call.call_id, first_timeout_s=5))
    while not collecting(line.call.call_id):
        await asyncio.sleep(0)
    with pytest.raises(ValueError, match="already open"):
        await collect_digits(line.sessions, line.call.call_id)
    await line.press("#")
    assert (await first).ended == "terminator"
    with pytest.raises(ValueError, match="out of range"):
        await collect_digits(line.sessions, line.call.call_id, max_digits=0)
