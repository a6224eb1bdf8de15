"""The analysis job survives a crash, its rules (outcome, fields, clustering), and the calls list's field filter.

Real SQLite and PostgreSQL; no knowledge base (the analysis without one skips retrieval and gap intake, which
the end-to-end tests cover with the real one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_api import user_patterns
from control_api.db.engine import create_engine, session_factory
from control_api.db.migrate import upgrade
from control_api.db.models import (
    AnalysisField,
    Call,
    CallAnalysis,
    CallbackRequest,
    Handoff,
    Integration,
    OutboxDelivery,
)
from control_api.problems import ProblemError
from control_api.rbac import Role
from control_api.services import analysis, analysis_jobs, analytics, learning
from control_api.services import calls as calls_service
from control_api.services.summary import Exchange
from control_api.services.users import create_user
from tests.conftest import fresh_postgres_database

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
async def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A migrated database of each kind."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'analysis.db'}")
        await upgrade(engine)
        yield session_factory(engine)
        await engine.dispose()
        return
    with fresh_postgres_database("voxdesk_analysis") as url:
        engine = create_engine(url)
        await upgrade(engine)
        yield session_factory(engine)
        await engine.dispose()


async def _call(sessions: async_sessionmaker[AsyncSession], lines: list[tuple[str, str, list[str]]]) -> str:
    async with sessions() as session:
        call = await calls_service.create_call(session, channel="websocket", status="active")
        for seq, (role, text, citations) in enumerate(lines):
            await calls_service.append_turn(session, call.id, seq=seq, role=role, text=text, citations=citations)
        await calls_service.end_call(session, call.id, reason="caller_hangup")
        return call.id


async def test_a_crash_mid_analysis_is_resumed_on_restart(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        session.add(AnalysisField(persona_name="default", name="order number", kind="number"))
        session.add(AnalysisField(persona_name="default", name="wants to cancel", kind="boolean"))
        session.add(AnalysisField(persona_name="default", name="plan", kind="choice", choices=["Basic", "Plus"]))
        # A webhook that wants call.analysed (no dispatcher runs here: deliveries stay in the outbox).
        session.add(
            Integration(
                kind="webhook", name="hook", config={"url": "https://hooks.example/x", "events": ["call.analysed"]}
            )
        )
        await session.commit()
    call_id = await _call(
        sessions,
        [
            ("caller", "I want to cancel order number 48213 on the Plus plan, I am annoyed.", []),
            ("agent", "You can cancel within 14 days.", ["chunk-1"]),
        ],
    )
    other = await _call(sessions, [("caller", "What are your opening hours?", [])])
    async with sessions() as session:
        queued = (await session.scalars(select(CallAnalysis.status).order_by(CallAnalysis.call_id))).all()
    assert queued == ["queued", "queued"]  # queued in the transaction that ended each call

    # A worker claims one and dies before finishing (nothing more happens in this process).
    claim = await analysis_jobs.claim_next(sessions, settle=timedelta(0))
    assert claim is not None and claim[1] == 1
    async with sessions() as session:
        assert (await session.get(CallAnalysis, claim[0])).status == "running"  # type: ignore[union-attr]

    # The next process's worker puts it back and runs both.
    worker = analysis_jobs.AnalysisWorker(sessions=sessions, knowledge=lambda: None, settle=timedelta(0))
    assert await analysis_jobs.requeue_interrupted(sessions) == 1
    await worker.drain()
    async with sessions() as session:
        done = await session.get(CallAnalysis, call_id)
        unanswered = await session.get(CallAnalysis, other)
        assert done is not None and unanswered is not None
        assert done.status == "done" and done.outcome == "resolved_by_ai" and done.runs == 1
        assert done.fields == {"order number": 48213, "wants to cancel": True, "plan": "Plus"}
        assert done.sentiment["label"] == "negative" and done.sentiment["turns"][0]["seq"] == 0
        assert (done.summary or "").startswith("The caller asked 1 question.")
        assert unanswered.outcome == "abandoned" and unanswered.unanswered == ["What are your opening hours?"]

        # The calls list filters on the analysis's fields (JSON read differently by each database).
        admin = await create_user(session, email="a@example.com", password="correct-horse-battery", role=Role.ADMIN)
        found = await calls_service.list_calls(
            session, admin, calls_service.CallFilter(fields=(("wants to cancel", "true"), ("order number", "48213")))
        )
        assert [c.id for c in found] == [call_id]
        found = await calls_service.list_calls(session, admin, calls_service.CallFilter(fields=(("plan", "basic"),)))
        assert found == []
        # call.analysed went to the outbox in the analysis's transaction, once per call, without the transcript.
        sent = (await session.scalars(select(OutboxDelivery).where(OutboxDelivery.event == "call.analysed"))).all()
        assert sorted(d.call_id or "" for d in sent) == sorted([call_id, other])
        payload = next(d.payload for d in sent if d.call_id == call_id)
        assert payload["outcome"] == "resolved_by_ai" and payload["fields"]["order number"] == 48213
        assert payload["call_outcome"] == "resolved"
        # A question left unanswered: the analysis's word is "abandoned"; the console's word tells it apart.
        left = next(d.payload for d in sent if d.call_id == other)
        assert (left["outcome"], left["call_outcome"], left["unanswered"]) == ("abandoned", "unanswered", 1)
        assert "turns" not in payload and "exchanges" not in payload

    # Re-runnable: the same call again, one run more; a handoff recorded since changes the outcome.
    async with sessions() as session:
        session.add(Handoff(call_id=call_id, status="completed"))
        await session.commit()
        await analysis.request(session, call_id, settle=timedelta(0))
    await worker.drain()
    async with sessions() as session:
        again = await session.get(CallAnalysis, call_id, populate_existing=True)
        assert again is not None and again.runs == 2 and again.outcome == "handed_off"
        events = await session.scalars(select(OutboxDelivery.payload).where(OutboxDelivery.call_id == call_id))
        assert sorted(p["outcome"] for p in events) == ["handed_off", "resolved_by_ai"]  # one event per run


async def test_a_failing_analysis_is_retried_then_failed(sessions: async_sessionmaker[AsyncSession]) -> None:
    call_id = await _call(sessions, [("caller", "Hello?", [])])
    async with sessions() as session:
        call = await session.get(Call, call_id)
        assert call is not None
        session.add(CallbackRequest(call_id=call_id, reason="no_agents"))
        await session.commit()

    async def broken() -> None:
        raise RuntimeError("the knowledge base broke")

    class Broken:
        """A knowledge service whose embedder fails."""

        embedder = None

        async def retrieve(self, question: str, *, log: bool = True) -> None:
            await broken()

    worker = analysis_jobs.AnalysisWorker(
        sessions=sessions,
        knowledge=lambda: Broken(),
        settle=timedelta(0),
        max_attempts=1,  # type: ignore[arg-type, return-value]
    )
    await worker.drain()
    async with sessions() as session:
        row = await session.get(CallAnalysis, call_id)
        assert row is not None and row.status == "failed" and "knowledge base broke" in (row.error or "")
    healthy = analysis_jobs.AnalysisWorker(sessions=sessions, knowledge=lambda: None, settle=timedelta(0))
    async with sessions() as session:
        await analysis.request(session, call_id, settle=timedelta(0))
    await healthy.drain()
    async with sessions() as session:
        row = await session.get(CallAnalysis, call_id, populate_existing=True)
        assert row is not None and row.status == "done" and row.outcome == "callback_requested"


def test_outcome_rule() -> None:
    call = Call(channel="websocket", status="ended", outcome="resolved")
    yes, no = Exchange("q", True, "a", ("c",)), Exchange("q", False, None, ())
    assert analysis.outcome_of(call=call, asked=[yes], handed_off=False, callback=False) == "resolved_by_ai"
    assert analysis.outcome_of(call=call, asked=[yes, no], handed_off=False, callback=False) == "abandoned"
    # The voice side stores ``abandoned`` when the caller never spoke; the rule keeps it.
    silent = Call(channel="websocket", status="ended", outcome="abandoned")
    assert analysis.outcome_of(call=silent, asked=[], handed_off=False, callback=False) == "abandoned"
    assert analysis.outcome_of(call=call, asked=[no], handed_off=True, callback=False) == "handed_off"
    assert analysis.outcome_of(call=call, asked=[no], handed_off=True, callback=True) == "callback_requested"
    broken = Call(channel="websocket", status="failed", outcome="failed")
    assert analysis.outcome_of(call=broken, asked=[yes], handed_off=False, callback=False) == "failed"


def test_a_pattern_that_backtracks_without_end_is_stopped_and_the_next_one_used() -> None:
    """``(a+)+$`` on 40 a's and a "!" backtracks 2**40 times with ``re`` (the run would never end); the time limit
    skips it for this call and the field's next pattern gives the value."""
    field = AnalysisField(
        persona_name="default", name="code", kind="text", patterns=[r"(a+)+$", r"code (\w+)"], choices=[]
    )
    text = "a" * 40 + "! my code abc"
    assert analysis.extract_field(field, text, []) == "abc"
    # Saving checks with the same engine: a pattern that does not compile is a clear error.
    with pytest.raises(ValueError, match="not a regular expression"):
        user_patterns.check("(unclosed")
    with pytest.raises(ValueError, match="at most 300"):
        user_patterns.check("a" * 301)


def test_field_extraction_by_kind() -> None:
    def field(kind: str, name: str, **kw: object) -> AnalysisField:
        return AnalysisField(
            persona_name="default", name=name, kind=kind, patterns=kw.get("patterns", []), choices=kw.get("choices", [])
        )

    text = "Hi, my account is KB-7781 and I think the router is broken. Can you send an engineer?"
    assert analysis.extract_field(field("text", "account", patterns=[r"\b([A-Z]{2}-\d{4})\b"]), text, []) == "KB-7781"
    assert analysis.extract_field(field("number", "order number"), text, []) is None
    assert analysis.extract_field(field("boolean", "engineer visit"), text, []) is False
    assert analysis.extract_field(field("boolean", "engineer"), text, []) is True
    assert (
        analysis.extract_field(field("choice", "topic"), text, ["Billing", "Router setup", "Moving home"])
        == "Router setup"
    )
    assert (
        analysis.extract_field(field("text", "router"), text, [])
        == "Hi, my account is KB-7781 and I think the router is broken."
    )
    with pytest.raises(ProblemError):
        analysis.field_filter("no separator")


def test_leader_clustering_keeps_meanings_apart() -> None:
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((5, 384)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = rng.integers(0, 5, size=400)
    vectors = centres[truth] + rng.standard_normal((400, 384)).astype(np.float32) * (0.5 / np.sqrt(384))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels, found, counts = learning.cluster(vectors, 0.5, block=64)
    assert len(found) == 5 and counts.sum() == 400
    for label in range(5):
        assert len(set(truth[labels == label].tolist())) == 1
    # Existing clusters are kept and joined; nothing new is led.
    again, kept, _ = learning.cluster(vectors[:10], 0.5, centroids=found)
    assert len(kept) == 5 and (again == labels[:10]).all()


async def test_asking_for_a_person_is_a_request_not_an_unanswered_question(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The caller turn the agent ran the transfer tool on is neither a question, unanswered, nor a gap."""
    call_id = await _call(
        sessions,
        [
            ("caller", "When are you open?", []),
            ("agent", "We are open nine to five.", ["chunk-1"]),
            ("caller", "I want to speak to a person please.", []),
            ("agent", "Nobody is free right now; we will call you back.", []),
        ],
    )
    async with sessions() as session:
        # What the voice side records when the brain runs its tools on caller turn 2 (``pipelines.tools``).
        await calls_service.add_event(
            session, call_id, kind="tool_call", turn_seq=2, data={"tool": "transfer_to_human"}
        )
        await calls_service.add_event(session, call_id, kind="tool_call", turn_seq=0, data={"tool": "search"})
        session.add(Handoff(call_id=call_id, status="requested", source="tool"))
        session.add(CallbackRequest(call_id=call_id, reason="no_agents"))
        await session.commit()
    gaps: list[tuple[str, str, float | None]] = []

    async def record(session: AsyncSession, call: Call, items: Sequence[tuple[str, str, float | None]]) -> None:
        gaps.extend(items)

    async with sessions() as session:
        row = await analysis.analyse(session, call_id, retrieve=None, record_gaps=record, low_confidence=0.0)
        assert row.unanswered == [] and [e["question"] for e in row.exchanges] == ["When are you open?"]
        assert row.outcome == "callback_requested"
        assert all("person" not in question for question, _, _ in gaps), gaps
        assert (await analytics.call_outcome(session, await calls_service.get_call(session, call_id))) == {
            "call_id": call_id,
            "outcome": "callback",
            "questions": 1,
            "unanswered": 0,
        }


async def test_a_request_for_a_person_in_words_is_not_a_question(sessions: async_sessionmaker[AsyncSession]) -> None:
    """The handoff's phrase trigger took the turn before the brain saw it: no tool event names the turn; the
    handoff (source ``phrase``) requested after it does."""
    call_id = await _call(
        sessions,
        [
            ("caller", "When are you open?", []),
            ("agent", "We are open nine to five.", ["chunk-1"]),
            ("caller", "I want to speak to a person please.", []),
        ],
    )
    async with sessions() as session:
        session.add(Handoff(call_id=call_id, status="no_agents", source="phrase"))
        await session.commit()
    async with sessions() as session:
        await calls_service.append_turn(session, call_id, seq=3, role="agent", text="Nobody is available right now.")
        await session.commit()
        assert (await analytics.request_turns(session, [call_id])) == {call_id: {2}}
        row = await analysis.analyse(session, call_id, retrieve=None, record_gaps=None, low_confidence=0.0)
        assert row.unanswered == [] and [e["question"] for e in row.exchanges] == ["When are you open?"]


async def test_the_briefing_of_a_phrase_handoff_does_not_list_the_request_as_a_question(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The briefing is built before the handoff's row exists: the request is told apart all the same."""
    from control_api.services import handoffs

    call_id = await _call(
        sessions,
        [
            ("caller", "Do you sell gift cards?", []),
            ("agent", "I couldn't find that.", []),
            ("caller", "I want to speak to a person please.", []),
        ],
    )
    async with sessions() as session:
        briefing = await handoffs.build_briefing(session, call_id, reason="caller asked", source="phrase")
        assert briefing["unanswered"] == ["Do you sell gift cards?"]
        # The same turns under another trigger (DTMF 0, the API): the words were not what asked.
        other = await handoffs.build_briefing(session, call_id, reason="caller pressed 0", source="dtmf")
        assert other["unanswered"] == ["Do you sell gift cards?", "I want to speak to a person please."]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_outcomes_counted_before_requests_were_told_apart_are_read_again(kind: str, tmp_path: Path) -> None:
    """Migration 0010: a stored outcome of a call with a transfer tool is recomputed; the others are kept."""
    from control_api.db.models import CallOutcome

    async def check(url: str) -> None:
        engine = create_engine(url)
        try:
            await upgrade(engine, "0009")
            sessions = session_factory(engine)
            lines = [("caller", "I want to speak to a person please.", []), ("agent", "Nobody is free.", [])]
            asked, other = await _call(sessions, lines), await _call(sessions, lines)
            async with sessions() as session:
                await calls_service.add_event(
                    session, asked, kind="tool_call", turn_seq=0, data={"tool": "transfer_to_human"}
                )
                await calls_service.add_event(session, other, kind="tool_call", turn_seq=0, data={"tool": "search"})
                for call_id in (asked, other):
                    # What the rule stored before: the request counted as an unanswered question.
                    session.add(
                        CallOutcome(call_id=call_id, outcome="unanswered", questions=1, unanswered=1, settled=True)
                    )
                await session.commit()
            await upgrade(engine)
            async with sessions() as session:
                rows = await session.execute(select(CallOutcome.call_id, CallOutcome.settled))
                settled = {call_id: done for call_id, done in rows}
                assert settled == {asked: False, other: True}
                await analytics.refresh_outcomes(session, Call.id.in_([asked, other]), settle=timedelta(0))
                row = await session.get(CallOutcome, asked, populate_existing=True)
                assert row is not None and (row.questions, row.unanswered, row.settled) == (0, 0, True)
        finally:
            await engine.dispose()

    if kind == "sqlite":
        await check(f"sqlite+aiosqlite:///{tmp_path / 'before.db'}")
    else:
        with fresh_postgres_database("voxdesk_outcomes") as url:
            await check(url)
