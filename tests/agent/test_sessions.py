"""Call sessions over a real (SQLite) database: records, sink, cap, timers, single end, tool rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.calls.consent import RecordingConsent
from agent.calls.registry import CallRegistry, CapacityError
from agent.calls.tools import HandoffOpener, TicketRecorder
from config import Settings
from control_api.db.engine import create_engine, session_factory
from control_api.db.migrate import upgrade
from control_api.db.models import Call, CallEvent, CallTurn, Consent, Handoff, IntegrationRun
from pipelines.contracts import CallEventRecord, HandoffRequest, LatencyRecord, TicketRequest, TurnRecord

pytestmark = pytest.mark.integration


class ListChannel:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any]) -> None:
        self.events.append(event)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


def registry(engine: AsyncEngine, **overrides: Any) -> CallRegistry:
    values: dict[str, Any] = {"max_calls": 2, "silence_timeout_secs": 60.0, "max_call_secs": 3600.0}
    values.update(overrides)
    return CallRegistry(sessions=session_factory(engine), **values)


async def test_call_lifecycle_turns_latency_and_end(engine: AsyncEngine) -> None:
    calls = registry(engine)
    channel = ListChannel()
    call = await calls.open(channel="webrtc", client=channel)
    sessions = session_factory(engine)
    async with sessions() as session:
        stored = await session.get(Call, call.call_id)
        assert stored is not None and stored.status == "ringing"
    await call.activate()
    now = datetime.now(UTC)
    await call.sink.turn(
        TurnRecord(seq=1, role="caller", text="how do i reset my router", started_at=now, ended_at=now)
    )
    await call.sink.latency(LatencyRecord(turn_seq=2, total_ms=420.0, asr_ms=30.0, tts_ms=80.0))
    await call.sink.turn(TurnRecord(seq=2, role="agent", text="Hold the reset button.", started_at=now, ended_at=now))
    await call.sink.event(CallEventRecord(kind="barge_in", turn_seq=2))
    stopped: list[str] = []

    async def stopper(reason: str) -> None:
        stopped.append(reason)

    call.on_stop(stopper)
    await call.end("caller_hangup")
    await call.end("again")  # idempotent
    assert stopped == ["caller_hangup"]
    assert len(calls) == 0
    async with sessions() as session:
        stored = await session.get(Call, call.call_id)
        assert stored is not None
        assert (stored.status, stored.end_reason, stored.outcome) == ("ended", "caller_hangup", "resolved")
        assert stored.answered_at is not None and stored.latency_p50_ms == 420.0
        turns = (await session.execute(select(CallTurn).order_by(CallTurn.seq))).scalars().all()
        assert [t.role for t in turns] == ["caller", "agent"]
        kinds = sorted((await session.execute(select(CallEvent.kind))).scalars())
        assert kinds == ["barge_in", "latency", "status"]
    types = [e["type"] for e in channel.events]
    assert types.count("transcript") == 2 and "latency" in types and types[-1] == "end"


async def test_capacity_cap_and_release(engine: AsyncEngine) -> None:
    calls = registry(engine, max_calls=2)
    first = await calls.open(channel="websocket")
    await calls.open(channel="websocket")
    with pytest.raises(CapacityError) as refused:
        await calls.open(channel="websocket")
    assert refused.value.status == 503 and refused.value.headers["Retry-After"]
    await first.end("caller_hangup")
    third = await calls.open(channel="websocket")
    assert calls.get(third.call_id) is third
    await calls.close_all()
    assert len(calls) == 0


async def test_silence_timeout_ends_call_as_abandoned(engine: AsyncEngine) -> None:
    calls = registry(engine, silence_timeout_secs=0.3)
    call = await calls.open(channel="webrtc")
    call.start_timers()
    await asyncio.wait_for(call.wait_ended(), timeout=30)
    async with session_factory(engine)() as session:
        stored = await session.get(Call, call.call_id)
        assert stored is not None and (stored.end_reason, stored.outcome) == ("silence_timeout", "abandoned")


async def test_silence_is_not_counted_while_the_agent_speaks(engine: AsyncEngine) -> None:
    # An answer longer than the silence timeout is not cut off: the timer is held while anyone speaks and starts
    # afresh when they stop.
    calls = registry(engine, silence_timeout_secs=0.3)
    call = await calls.open(channel="webrtc")
    call.start_timers()
    call.speaking("agent", True)
    await asyncio.sleep(1.0)
    assert not call.ended
    call.speaking("caller", True)
    call.speaking("agent", False)
    await asyncio.sleep(1.0)
    assert not call.ended
    call.speaking("caller", False)
    await asyncio.wait_for(call.wait_ended(), timeout=30)
    assert call.end_reason == "silence_timeout"


async def test_the_turn_in_progress_is_stored_before_the_calls_end(engine: AsyncEngine) -> None:
    calls = registry(engine)
    call = await calls.open(channel="websocket")
    sessions = session_factory(engine)
    seen_ended: list[str | None] = []

    async def store_turn_in_progress() -> None:
        async with sessions() as session:
            stored = await session.get(Call, call.call_id)
            seen_ended.append(stored.end_reason if stored is not None else "missing")
        now = datetime.now(UTC)
        await call.sink.turn(
            TurnRecord(seq=1, role="agent", text="Open the app.", started_at=now, ended_at=now, interrupted=True)
        )

    async def failing_step() -> None:
        raise RuntimeError("a step that fails does not stop the call's end")

    call.before_end(failing_step)
    call.before_end(store_turn_in_progress)
    await call.end("caller_hangup")
    assert seen_ended == [None]
    async with sessions() as session:
        stored = await session.get(Call, call.call_id)
        assert stored is not None and stored.end_reason == "caller_hangup"
        turns = (await session.execute(select(CallTurn))).scalars().all()
        assert [(t.role, t.text, t.interrupted) for t in turns] == [("agent", "Open the app.", True)]


async def test_max_call_length(engine: AsyncEngine) -> None:
    calls = registry(engine, silence_timeout_secs=60.0, max_call_secs=0.3)
    call = await calls.open(channel="webrtc")
    call.start_timers()
    await asyncio.wait_for(call.wait_ended(), timeout=30)
    assert call.end_reason == "max_duration"


async def test_sink_never_raises_and_counts_failures(engine: AsyncEngine) -> None:
    calls = registry(engine)
    channel = ListChannel()
    call = await calls.open(channel="webrtc", client=channel)
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE call_turns"))
        await conn.execute(text("DROP TABLE call_events"))
    now = datetime.now(UTC)
    await call.sink.turn(TurnRecord(seq=1, role="caller", text="hello", started_at=now, ended_at=now))
    await call.sink.latency(LatencyRecord(turn_seq=1, total_ms=100.0))
    await call.sink.event(CallEventRecord(kind="error", data={"stage": "asr"}))
    await call.sink.flush()
    assert call.sink.failures == 3
    # The live view still got the turn, and the call still ends.
    assert channel.events[0]["type"] == "transcript"
    await call.end("caller_hangup")
    assert call.ended


async def test_ticket_and_handoff_rows(engine: AsyncEngine) -> None:
    calls = registry(engine)
    call = await calls.open(channel="webrtc")
    sessions = session_factory(engine)
    reference = await TicketRecorder(sessions=sessions)(
        TicketRequest(call_id=call.call_id, subject="Router broken", description="No lights.")
    )
    assert reference.startswith("T-") and len(reference) == 8
    handoff_id = await HandoffOpener(sessions=sessions, call=call)(
        HandoffRequest(call_id=call.call_id, reason="asked for a person", summary="Router question.")
    )
    await call.end("caller_hangup")
    async with sessions() as session:
        run = (await session.execute(select(IntegrationRun))).scalar_one()
        assert (run.action, run.status, run.call_id) == ("create_ticket", "pending", call.call_id)
        assert run.request["subject"] == "Router broken"
        handoff = await session.get(Handoff, handoff_id)
        assert handoff is not None and handoff.status == "requested"
        stored = await session.get(Call, call.call_id)
        assert stored is not None and stored.outcome == "handed_off"


@pytest.mark.parametrize(("interrupted", "recording"), [(False, True), (True, False)])
async def test_consent_stored_once_the_notice_was_heard(
    engine: AsyncEngine, interrupted: bool, recording: bool, tmp_path: Path
) -> None:
    calls = registry(engine)
    call = await calls.open(channel="webrtc")
    call.sink.consent = RecordingConsent(notice="This call is recorded.", record_calls=True)
    now = datetime.now(UTC)
    greeting = "Hi, this is Ava. This call is recorded."
    await call.sink.turn(
        TurnRecord(seq=1, role="agent", text=greeting, started_at=now, ended_at=now, interrupted=interrupted)
    )
    await call.sink.turn(TurnRecord(seq=3, role="agent", text="Anything else?", started_at=now, ended_at=now))
    wav = tmp_path / f"{call.call_id}.wav"
    wav.write_bytes(b"RIFF....WAVE")
    await call.sink.recording(path=str(wav), fmt="wav", channels=2, sample_rate=16000, duration_ms=10)
    await call.end("caller_hangup")
    assert wav.exists() is recording, "a recording the caller did not agree to is deleted"
    assert call.sink.failures == 0
    async with session_factory(engine)() as session:
        consents = (await session.execute(select(Consent))).scalars().all()
        assert [(c.call_id, c.notice_text, c.recording) for c in consents] == [
            (call.call_id, "This call is recorded.", recording)
        ]
        stored = await session.get(Call, call.call_id)
        assert stored is not None and stored.consent_recording is recording


async def test_a_restart_closes_only_this_nodes_orphaned_calls(engine: AsyncEngine) -> None:
    from control_api.services import calls as call_service

    crashed = await registry(engine, node="node-a").open(channel="webrtc", client=ListChannel())
    await crashed.activate()
    other = await registry(engine, node="node-b").open(channel="webrtc", client=ListChannel())
    sessions = session_factory(engine)
    async with sessions() as session:
        stored = await session.get(Call, crashed.call_id)
        assert stored is not None and stored.meta["node"] == "node-a" and stored.status == "active"
        closed = await call_service.fail_orphaned_calls(session, node="node-a")
        assert closed == [crashed.call_id]
        assert await call_service.fail_orphaned_calls(session, node="node-a") == []
    async with sessions() as session:
        mine = await session.get(Call, crashed.call_id)
        theirs = await session.get(Call, other.call_id)
        assert mine is not None and theirs is not None
        assert (mine.status, mine.end_reason, mine.outcome) == ("failed", "process_restart", "failed")
        assert mine.ended_at is not None and mine.duration_ms is not None
        assert theirs.status == "ringing"


async def test_a_call_survives_another_writer_holding_sqlite_past_its_busy_timeout(
    engine: AsyncEngine, settings: Settings
) -> None:
    """A turn and the call's end written while another connection holds SQLite's write lock for longer than
    ``busy_timeout`` (5 s) are stored once the lock is released, not dropped as "database is locked"."""
    import sqlite3

    calls = registry(engine)
    call = await calls.open(channel="websocket", client=ListChannel())
    await call.activate()
    db_path = settings.database_url.split("///", 1)[1]
    holder = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, as a long writer in another process would hold it
    released = asyncio.get_running_loop().call_later(6.5, holder.execute, "COMMIT")
    try:
        now = datetime.now(UTC)
        await call.sink.turn(TurnRecord(seq=1, role="caller", text="is there an outage", started_at=now, ended_at=now))
        await call.end("caller_hangup")
    finally:
        released.cancel()
        if holder.in_transaction:
            holder.execute("COMMIT")
        holder.close()
    sessions = session_factory(engine)
    async with sessions() as session:
        stored = await session.get(Call, call.call_id)
        assert stored is not None and (stored.status, stored.end_reason) == ("ended", "caller_hangup")
        turns = (await session.execute(select(CallTurn).where(CallTurn.call_id == call.call_id))).scalars().all()
        assert [t.seq for t in turns] == [1]
    assert call.sink.failures == 0


async def test_only_write_conflicts_are_retried() -> None:
    from sqlalchemy.exc import OperationalError

    from control_api.db.retry import is_transient, retry_transient

    locked = OperationalError("INSERT", {}, Exception("database is locked"))
    assert is_transient(locked)
    assert not is_transient(OperationalError("INSERT", {}, Exception("no such table: calls")))
    assert not is_transient(ValueError("database is locked"))
    attempts: list[int] = []

    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise locked
        return "stored"

    assert await retry_transient(flaky) == "stored" and len(attempts) == 3

    async def broken() -> None:
        attempts.append(1)
        raise OperationalError("INSERT", {}, Exception("no such table: calls"))

    attempts.clear()
    with pytest.raises(OperationalError):
        await retry_transient(broken)
    assert len(attempts) == 1
