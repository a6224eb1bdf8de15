"""The analytics' call outcomes are written ahead of any report: by the post-call analysis job and by the
start-up catch-up, so the first report at 100 000 calls reads ``call_outcomes`` instead of transcripts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from control_api.db.engine import create_engine, session_factory
from control_api.db.migrate import upgrade
from control_api.db.models import Call, CallOutcome, CallTurn
from control_api.services import analysis, analytics
from control_api.services.analysis_jobs import AnalysisWorker

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    eng = create_engine(url)
    await upgrade(eng)
    yield eng
    await eng.dispose()


def _ended_call(n: int, *, answered: bool, ended: datetime) -> tuple[Call, list[CallTurn]]:
    call_id = f"00000000-0000-0000-0000-{n:012d}"
    call = Call(
        id=call_id,
        channel="webrtc",
        status="ended",
        outcome="resolved",
        started_at=ended - timedelta(minutes=2),
        ended_at=ended,
        duration_ms=120_000,
    )
    turns = [
        CallTurn(call_id=call_id, seq=0, role="caller", text="How much is the plan?", ended_at=ended),
        CallTurn(
            call_id=call_id,
            seq=1,
            role="agent",
            text="It costs 10." if answered else "Sorry, I couldn't find that.",
            citations=["c1"] if answered else [],
            ended_at=ended,
        ),
    ]
    return call, turns


async def test_catch_up_writes_every_missing_outcome_in_batches(engine: AsyncEngine) -> None:
    """Calls from before the hook existed get their outcome at start-up, newest first, a batch per transaction."""
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    async with sessions() as session:
        for n in range(1, 8):
            call, turns = _ended_call(n, answered=n % 2 == 0, ended=now - timedelta(hours=n))
            session.add(call)
            await session.flush()
            session.add_all(turns)
        # Ended seconds ago: left to the analysis job (its last turns may still be arriving).
        recent, turns = _ended_call(99, answered=True, ended=now)
        session.add(recent)
        await session.flush()
        session.add_all(turns)
        await session.commit()

    assert await analytics.catch_up_outcomes(sessions, batch=3) == 7
    assert await analytics.catch_up_outcomes(sessions, batch=3) == 0  # idempotent: nothing left
    async with sessions() as session:
        rows = {o.call_id: o for o in (await session.execute(select(CallOutcome))).scalars()}
    assert len(rows) == 7 and all(row.settled for row in rows.values())
    assert "00000000-0000-0000-0000-000000000099" not in rows
    # After the catch-up a report checks only recent calls, and still computes a recent one that has no outcome.
    async with sessions() as session:
        late, turns = _ended_call(50, answered=False, ended=now - timedelta(minutes=5))
        session.add(late)
        await session.flush()
        session.add_all(turns)
        await session.commit()
        report = await analytics.calls_report(
            session, analytics.default_window(None, now + timedelta(minutes=1), days=1), bucket="hour"
        )
        # Unanswered: calls 1, 3, 5, 7 (odd) and 50; resolved: 2, 4, 6 and 99 (ended just now, left to the report).
        assert report["by_outcome"] == {"unanswered": 5, "resolved": 4}
    assert rows["00000000-0000-0000-0000-000000000002"].outcome == "resolved"
    assert (
        rows["00000000-0000-0000-0000-000000000001"].outcome,
        rows["00000000-0000-0000-0000-000000000001"].unanswered,
    ) == ("unanswered", 1)


async def test_analysis_job_writes_the_outcome_as_final(engine: AsyncEngine) -> None:
    """The post-call analysis job (which waits for the last turns) writes the outcome, settled: no report redoes it."""
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    async with sessions() as session:
        call, turns = _ended_call(5, answered=False, ended=now)
        session.add(call)
        await session.flush()
        session.add_all(turns)
        await analysis.enqueue(session, call.id)
        await session.commit()
    worker = AnalysisWorker(sessions=sessions, knowledge=lambda: None, settle=timedelta(0))
    await worker.drain()
    async with sessions() as session:
        row = await session.get(CallOutcome, "00000000-0000-0000-0000-000000000005")
        assert row is not None and (row.outcome, row.questions, row.unanswered, row.settled) == (
            "unanswered",
            1,
            1,
            True,
        )
        # A report over the window finds nothing left to compute.
        window = Call.started_at >= now - timedelta(days=1)
        assert await analytics.refresh_outcomes(session, window) == 0
        assert await session.scalar(select(func.count()).select_from(CallOutcome)) == 1
