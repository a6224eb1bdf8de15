"""Analytics aggregations: the same exact figures from SQLite and from a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from control_api.db.engine import create_engine, session_factory
from control_api.db.migrate import upgrade
from control_api.db.models import Call, CallbackRequest, CallEvent, CallTurn, RagQuery
from control_api.services import analytics

pytestmark = pytest.mark.integration
NOW = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
TODAY = NOW.replace(hour=0, minute=0)


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    eng = create_engine(url)
    await upgrade(eng)
    yield eng
    await eng.dispose()


def _call(n: int, **kw: object) -> Call:
    return Call(id=f"00000000-0000-0000-0000-{n:012d}", channel="webrtc", **kw)


async def _seed(session: AsyncSession) -> None:
    # Today: 4 ended calls (2 resolved, 1 handed off, 1 abandoned), 1 live; yesterday: 2 calls.
    rows = [
        _call(
            1,
            started_at=TODAY + timedelta(hours=9),
            status="ended",
            outcome="resolved",
            duration_ms=30_000,
            sentiment=0.6,
            sentiment_label="positive",
            caller_number="+911111111111",
        ),
        _call(
            2,
            started_at=TODAY + timedelta(hours=9, minutes=30),
            status="ended",
            outcome="handed_off",
            duration_ms=120_000,
            sentiment=-0.5,
            sentiment_label="negative",
        ),
        _call(
            3,
            started_at=TODAY + timedelta(hours=10),
            status="ended",
            outcome="resolved",
            duration_ms=300_000,
            sentiment=0.0,
            sentiment_label="neutral",
            caller_number="+912222222222",
        ),
        _call(4, started_at=TODAY + timedelta(hours=11), status="failed", outcome="abandoned", duration_ms=700_000),
        _call(5, started_at=TODAY + timedelta(hours=15), status="active"),
        _call(
            6,
            started_at=TODAY - timedelta(hours=20),
            status="ended",
            outcome="resolved",
            duration_ms=50_000,
            caller_number="+911111111111",
            sentiment=-0.9,
            sentiment_label="negative",
        ),
        _call(
            7,
            started_at=TODAY - timedelta(hours=19),
            status="ended",
            outcome="resolved",
            duration_ms=60_000,
            caller_number="+913333333333",
        ),
    ]
    rows[-1].channel = "sip"
    session.add_all(rows)
    await session.flush()
    # Latency events today: totals 100..1000 step 100 on call 1 (p50=500, p95=1000); asr = total/2.
    for i in range(1, 11):
        session.add(
            CallEvent(
                call_id=rows[0].id,
                kind="latency",
                turn_seq=i,
                at=TODAY + timedelta(hours=9, seconds=i),
                total_ms=100.0 * i,
                asr_ms=50.0 * i,
                tts_ms=None,
            )
        )
    session.add(CallEvent(call_id=rows[1].id, kind="barge_in", at=TODAY + timedelta(hours=9, minutes=31)))
    session.add_all(
        [
            CallTurn(
                call_id=rows[0].id,
                seq=1,
                role="caller",
                text="hi",
                asr_confidence=0.9,
                sentiment=0.6,
                ended_at=TODAY + timedelta(hours=9),
            ),
            CallTurn(
                call_id=rows[0].id,
                seq=2,
                role="agent",
                text="hello",
                interrupted=True,
                citations=["chunk-1"],  # answered from the knowledge base
                ended_at=TODAY + timedelta(hours=9),
            ),
            CallTurn(call_id=rows[0].id, seq=3, role="agent", text="bye", ended_at=TODAY + timedelta(hours=9)),
            CallTurn(
                call_id=rows[1].id,
                seq=1,
                role="caller",
                text="bad",
                asr_confidence=0.5,
                sentiment=-0.5,
                ended_at=TODAY + timedelta(hours=9, minutes=30),
            ),
        ]
    )
    session.add_all(
        [
            RagQuery(question="q1", found=True, created_at=TODAY + timedelta(hours=9), call_id=rows[0].id),
            RagQuery(question="q2", found=True, created_at=TODAY + timedelta(hours=9), call_id=rows[0].id),
            RagQuery(question="q3", found=False, created_at=TODAY + timedelta(hours=9), call_id=rows[1].id),
            # Typed in the console's "Test a question" box (no call): tests, not the callers' figures.
            RagQuery(question="test 1", found=False, created_at=TODAY + timedelta(hours=9)),
            RagQuery(question="test 2", found=False, created_at=TODAY + timedelta(hours=9)),
        ]
    )
    await session.commit()


async def test_aggregations_are_exact_on_both_databases(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session:
        await _seed(session)
        dash = await analytics.dashboard(session, now=NOW)
        assert dash["live_calls"] == 1
        assert dash["calls_today"] == 5
        assert dash["ended_today"] == 4
        assert dash["handoff_rate"] == 0.25
        # Contained: calls 1 (its question answered from the base) and 3 (no question); not the handoff (2) nor
        # the abandoned call (4).
        assert dash["containment_rate"] == 0.5
        assert (dash["contained_today"], dash["unanswered_today"]) == (2, 0)
        assert dash["average_handle_time_ms"] == pytest.approx((30_000 + 120_000 + 300_000 + 700_000) / 4)
        assert (dash["latency_p50_ms"], dash["latency_p95_ms"], dash["latency_turns"]) == (500.0, 1000.0, 10)
        assert dash["sentiment_mix"] == {"positive": 1, "neutral": 1, "negative": 1, "unscored": 2}
        assert (dash["callbacks_waiting"], dash["oldest_callback_wait_s"]) == (0, None)
        # Callers still to call back, from any day; a done request no longer waits.
        session.add_all(
            [
                CallbackRequest(reason="timed_out", status="open", created_at=NOW - timedelta(days=2)),
                CallbackRequest(reason="no_agents", status="open", created_at=NOW - timedelta(minutes=5)),
                CallbackRequest(reason="declined", status="done", created_at=NOW - timedelta(days=9)),
            ]
        )
        await session.commit()
        dash = await analytics.dashboard(session, now=NOW)
        assert (dash["callbacks_waiting"], dash["oldest_callback_wait_s"]) == (2, 2 * 86400.0)

        window = analytics.Window(TODAY - timedelta(days=1), NOW)
        calls = await analytics.calls_report(session, window, bucket="day")
        assert calls["total"] == 7
        assert calls["volume"] == [
            {
                "bucket": (TODAY - timedelta(days=1)).strftime("%Y-%m-%d"),
                "calls": 2,
                "handed_off": 0,
                "resolved": 2,
                "outcomes": {"resolved": 2},
            },
            {
                "bucket": TODAY.strftime("%Y-%m-%d"),
                "calls": 5,
                "handed_off": 1,
                "resolved": 2,
                "outcomes": {"resolved": 2, "handed_off": 1, "abandoned": 1, "live": 1},
            },
        ]
        assert calls["by_hour_of_day"][9] == 2 and calls["by_hour_of_day"][4] == 1 and sum(calls["by_hour_of_day"]) == 7
        hourly = await analytics.calls_report(session, window, bucket="hour")
        assert hourly["volume"][0]["bucket"] == (TODAY - timedelta(hours=20)).strftime("%Y-%m-%dT%H:00:00")
        assert sum(v["calls"] for v in hourly["volume"]) == 7
        assert calls["by_channel"] == {"sip": 1, "webrtc": 6}
        assert calls["by_outcome"] == {"abandoned": 1, "handed_off": 1, "live": 1, "resolved": 4}
        assert calls["duration_ms"]["count"] == 6
        assert calls["duration_ms"]["p50"] == 60_000.0  # sorted: 30k 50k 60k 120k 300k 700k
        assert calls["duration_ms"]["p95"] == 700_000.0
        assert calls["duration_histogram"] == {"<1m": 2, "1-3m": 2, "3-10m": 1, ">10m": 1}

        senti = await analytics.sentiment_report(session, window, bucket="day", worst=2)
        assert senti["mix"] == {"positive": 1, "neutral": 1, "negative": 2}
        assert [c["call_id"][-1] for c in senti["most_negative_calls"]] == ["6", "2"]
        assert senti["scored_turns"] == 2
        assert senti["turn_mean"] == pytest.approx(0.05)
        assert senti["mean"] == pytest.approx((0.6 - 0.5 + 0.0 - 0.9) / 4, abs=1e-3)

        perf = await analytics.performance_report(session, window)
        assert perf["latency_ms"]["total"] == {"count": 10, "mean": 550.0, "p50": 500.0, "p95": 1000.0}
        assert perf["latency_ms"]["asr"]["p50"] == 250.0
        assert perf["latency_ms"]["tts"] == {"count": 0, "mean": None, "p50": None, "p95": None}
        assert perf["barge_ins"] == 1
        assert perf["agent_turns"] == 2
        assert perf["interrupted_turn_rate"] == 0.5
        assert perf["asr_confidence"] == {"turns": 2, "mean": 0.7, "p50": 0.5}
        assert perf["answer_coverage"] == pytest.approx(0.6667, abs=1e-4)
        assert (perf["knowledge_queries"], perf["test_queries"]) == (3, 2)
        # Resolved with a caller id: calls 1, 3, 6, 7; call 6's caller called again (call 1) within 7 days.
        assert perf["resolved_calls_with_caller_id"] == 4
        assert perf["first_contact_resolution"] == 0.75


async def test_containment_counts_only_answered_calls_without_a_handoff(engine: AsyncEngine) -> None:
    """The one rule: every question answered from the base and no handoff or callback, else not contained."""
    from control_api.db.models import CallbackRequest, CallOutcome, Handoff, KnowledgeChunk, KnowledgeDocument

    ended = NOW - timedelta(hours=1)
    async with session_factory(engine)() as session:
        rows = {
            "answered": _call(11, started_at=ended, ended_at=ended, status="ended", outcome="resolved"),
            "unanswered": _call(12, started_at=ended, ended_at=ended, status="ended", outcome="resolved"),
            "handoff": _call(13, started_at=ended, ended_at=ended, status="ended", outcome="resolved"),
            "callback": _call(14, started_at=ended, ended_at=ended, status="ended", outcome="resolved"),
            # Ended seconds ago: its outcome is provisional until the last turn has surely been stored.
            "just_ended": _call(
                15, started_at=NOW - timedelta(minutes=2), ended_at=NOW, status="ended", outcome="resolved"
            ),
        }
        session.add_all(rows.values())
        session.add(KnowledgeDocument(id="d1", filename="plans.md", title="Plans", sha256="x" * 64, storage_path="p"))
        await session.flush()
        session.add(KnowledgeChunk(id="c1", document_id="d1", seq=0, text="Plans cost 10.", heading="Prices"))
        # A file that gives no title (CSV) is stored under its file name; analytics names it as a person reads it.
        session.add(
            KnowledgeDocument(
                id="d2", filename="billing_faq.csv", title="billing_faq.csv", sha256="y" * 64, storage_path="q"
            )
        )
        await session.flush()
        session.add(KnowledgeChunk(id="c2", document_id="d2", seq=0, text="Bills are monthly.", heading=None))
        await session.flush()
        for name, call in rows.items():
            session.add(CallTurn(call_id=call.id, seq=0, role="caller", text="How much is the plan?", ended_at=ended))
            cited = [] if name == "unanswered" else ["c1"]
            reply = "Sorry, I couldn't find that." if not cited else "It costs 10."
            session.add(CallTurn(call_id=call.id, seq=1, role="agent", text=reply, citations=cited, ended_at=ended))
        # The handoff call's caller then asked for a person in words (the phrase trigger): a request, not a question.
        session.add(
            CallTurn(call_id=rows["handoff"].id, seq=2, role="caller", text="Can I talk to a person?", ended_at=ended)
        )
        handoff = Handoff(call_id=rows["handoff"].id, source="phrase", requested_at=ended)
        session.add(handoff)
        cb_handoff = Handoff(call_id=rows["callback"].id, source="not_found", requested_at=ended)
        session.add(cb_handoff)
        await session.flush()
        session.add(CallbackRequest(call_id=rows["callback"].id, handoff_id=cb_handoff.id, reason="no_agents"))
        answered_id, unanswered_id = rows["answered"].id, rows["unanswered"].id
        session.add(
            RagQuery(question="How much?", found=True, top_chunk_id="c1", created_at=ended, call_id=answered_id)
        )
        for question in ("When is my bill?", "How do I pay my bill?"):
            session.add(
                RagQuery(question=question, found=True, top_chunk_id="c2", created_at=ended, call_id=answered_id)
            )
        session.add(RagQuery(question="Do you sell boats?", found=False, created_at=ended, call_id=unanswered_id))
        # Typed tests (no call): in neither the topics nor the searches that found nothing.
        session.add(RagQuery(question="Prices?", found=True, top_chunk_id="c1", created_at=ended))
        session.add(RagQuery(question="Boats?", found=False, created_at=ended))
        session.add(RagQuery(question="Cars?", found=False, created_at=ended))
        # The most negative calls list shows the checked outcome too (stored: resolved; a callback was needed).
        rows["callback"].sentiment, rows["callback"].sentiment_label = -0.8, "negative"
        await session.commit()

        dash = await analytics.dashboard(session, now=NOW)
        assert (dash["ended_today"], dash["contained_today"], dash["unanswered_today"]) == (5, 2, 1)
        assert dash["containment_rate"] == 0.4
        assert dash["handoff_rate"] == 0.4  # a callback counts: a person was needed

        # The provisional row is recomputed once a late turn arrives and the call has settled.
        just_ended = "00000000-0000-0000-0000-000000000015"
        stored = {o.call_id: o for o in (await session.execute(select(CallOutcome))).scalars()}
        assert stored[just_ended].settled is False
        assert stored["00000000-0000-0000-0000-000000000011"].settled is True
        session.add(CallTurn(call_id=just_ended, seq=2, role="caller", text="And boats?", ended_at=NOW))
        await session.commit()
        later = NOW + timedelta(minutes=5)
        await analytics.refresh_outcomes(session, Call.id == just_ended, now=later)
        session.expire_all()
        row = await session.get(CallOutcome, just_ended)
        assert row is not None and (row.outcome, row.questions, row.unanswered, row.settled) == (
            "unanswered",
            2,
            1,
            True,
        )

        window = analytics.Window(NOW - timedelta(days=1), NOW + timedelta(seconds=1))
        report = await analytics.calls_report(session, window, bucket="day")
        assert report["by_outcome"] == {"callback": 1, "handed_off": 1, "resolved": 1, "unanswered": 2}

        unanswered_call = await session.get(Call, "00000000-0000-0000-0000-000000000012")
        assert unanswered_call is not None
        one = await analytics.call_outcome(session, unanswered_call)
        assert one == {"call_id": unanswered_call.id, "outcome": "unanswered", "questions": 1, "unanswered": 1}

        senti = await analytics.sentiment_report(session, window, bucket="day")
        assert [(c["call_id"], c["outcome"]) for c in senti["most_negative_calls"]] == [
            ("00000000-0000-0000-0000-000000000014", "callback")
        ]

        trends = await analytics.trends_report(session, window, bucket="day")
        assert trends["handoff_reasons"] == [{"source": "not_found", "count": 1}, {"source": "phrase", "count": 1}]
        assert trends["top_topics"] == [
            {"topic": "Billing FAQ", "document": "Billing FAQ", "count": 2},
            {"topic": "Prices", "document": "Plans", "count": 1},
        ]
        day = trends["unanswered"][-1]
        assert (day["questions"], day["unanswered"], day["calls_with_unanswered"], day["queries_not_found"]) == (
            6,
            2,
            2,
            1,
        )


def test_classify_reads_a_failed_record_without_an_outcome_as_failed() -> None:
    from control_api.services.summary import Exchange

    answered = [Exchange("How much?", True, "10.", ("c1",))]
    assert analytics.classify(
        stored=analytics.stored_outcome(None, "failed"), asked=[], handed_off=False, callback=False
    ) == ("failed")
    assert analytics.classify(stored="resolved", asked=answered, handed_off=False, callback=False) == "resolved"
    assert analytics.classify(stored="resolved", asked=answered, handed_off=True, callback=False) == "handed_off"
    assert analytics.classify(stored="handed_off", asked=answered, handed_off=True, callback=True) == "callback"
