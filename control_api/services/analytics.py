"""Dashboard and analytics aggregations, computed in SQL and identical on SQLite and PostgreSQL.

Percentiles use the nearest-rank definition (the p-th percentile is the smallest value with at least p of the
values at or below it), read from a histogram that one grouped scan builds in the database at a fixed
resolution (1 ms for latencies, 1 s for handle times, 0.001 for recogniser confidence). Time buckets are
formatted as UTC strings (``2026-11-26T14:00:00`` / ``2026-11-26``) by a per-dialect expression.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Float, Integer, and_, case, cast, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import Call, CallEvent, CallTurn, RagQuery

LIVE_STATUSES = ("ringing", "active", "on_hold")
ENDED_STATUSES = ("ended", "failed")
HANDED_OFF = "handed_off"
RESOLVED = "resolved"
STAGES = ("total", "vad", "asr", "retrieval", "llm", "tts")
SENTIMENT_LABELS = ("positive", "neutral", "negative")
REPEAT_WINDOW = timedelta(days=7)
LATENCY_RESOLUTION = 1.0  # ms
DURATION_RESOLUTION = 1000.0  # ms
CONFIDENCE_RESOLUTION = 0.001
Bucket = Literal["hour", "day"]


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open time range ``[since, until)`` in UTC."""

    since: datetime
    until: datetime


def default_window(since: datetime | None, until: datetime | None, *, days: int = 30) -> Window:
    """``[since, until)``, defaulting to the last ``days`` days up to now."""
    end = until or datetime.now(UTC)
    start = since or end - timedelta(days=days)
    return Window(_utc(start), _utc(end))


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def bucket_expr(dialect: str, column: Any, bucket: Bucket) -> ColumnElement[str]:
    """A UTC time bucket label of ``column`` as text, the same on SQLite and PostgreSQL."""
    if dialect == "postgresql":
        pattern = 'YYYY-MM-DD"T"HH24:00:00' if bucket == "hour" else "YYYY-MM-DD"
        return func.to_char(func.date_trunc(bucket, func.timezone("UTC", column)), pattern)
    return func.strftime("%Y-%m-%dT%H:00:00" if bucket == "hour" else "%Y-%m-%d", column)


def epoch_expr(dialect: str, column: Any) -> ColumnElement[float]:
    """Seconds since 1970 of a timestamp column, as a float."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", column), Float)
    return (func.julianday(column) - 2440587.5) * 86400.0


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _num(value: Any, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def _quantised(dialect: str, column: Any, scale: float) -> ColumnElement[int]:
    """``floor(column * scale)`` for non-negative values, the same on SQLite and PostgreSQL."""
    if dialect == "postgresql":
        return cast(func.floor(column * scale), Integer)
    return cast(column * scale, Integer)


def _nearest_rank(histogram: list[tuple[int, int]], total: int, p: float) -> int:
    rank = max(1, math.ceil(p * total))
    seen = 0
    for bucket, count in histogram:
        seen += count
        if seen >= rank:
            return bucket
    return histogram[-1][0]


async def _percentiles(
    session: AsyncSession,
    series: Sequence[tuple[str, Any, float]],
    where: Sequence[ColumnElement[bool]],
    source: Any,
) -> dict[str, dict[str, Any]]:
    """Count, mean, p50 and p95 of each ``(name, column, resolution)`` of ``source`` rows matching ``where``.

    One grouped scan builds a histogram per series at ``resolution`` (1 ms for latencies); the nearest-rank
    percentiles are read from it, so they are exact to the resolution whatever the number of rows, and the
    database never sorts the raw values. Nulls are ignored.
    """
    dialect = _dialect(session)
    # One pass over the matching rows into a CTE (both databases materialise a CTE used more than once),
    # then one small GROUP BY per series over it.
    rows = (
        select(*[cast(column, Float).label(name) for name, column, _ in series])
        .select_from(source)
        .where(*where)
        .cte("vals")
    )
    parts = []
    for name, _, resolution in series:
        value = rows.c[name]
        bucket = _quantised(dialect, value, 1 / resolution)
        parts.append(
            select(literal(name).label("series"), bucket.label("bucket"), func.count(), func.sum(value))
            .where(value.is_not(None))
            .group_by(bucket)
        )
    stmt = parts[0] if len(parts) == 1 else union_all(*parts)
    histograms: dict[str, list[tuple[int, int]]] = {name: [] for name, _, _ in series}
    sums: dict[str, float] = dict.fromkeys(histograms, 0.0)
    for name, bucket, count, total in (await session.execute(stmt)).all():
        histograms[str(name)].append((int(bucket), int(count)))
        sums[str(name)] += float(total)
    out: dict[str, dict[str, Any]] = {}
    for name, _, resolution in series:
        histogram = sorted(histograms[name])
        n = sum(c for _, c in histogram)
        if not n:
            out[name] = {"count": 0, "mean": None, "p50": None, "p95": None}
            continue
        out[name] = {
            "count": n,
            "mean": _num(sums[name] / n),
            "p50": _num(_nearest_rank(histogram, n, 0.50) * resolution),
            "p95": _num(_nearest_rank(histogram, n, 0.95) * resolution),
        }
    return out


async def dashboard(session: AsyncSession, *, now: datetime | None = None) -> dict[str, Any]:
    """Live calls and today's (UTC) volume, containment, handoffs, handle time, voice latency and sentiment."""
    current = _utc(now or datetime.now(UTC))
    today = current.replace(hour=0, minute=0, second=0, microsecond=0)
    in_today = and_(Call.started_at >= today, Call.started_at < current + timedelta(seconds=1))
    ended = Call.status.in_(ENDED_STATUSES)
    row = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((ended, 1), else_=0)), 0),
                func.coalesce(func.sum(case((and_(ended, Call.outcome == HANDED_OFF), 1), else_=0)), 0),
                func.avg(case((ended, Call.duration_ms))),
                *[
                    func.coalesce(func.sum(case((Call.sentiment_label == lab, 1), else_=0)), 0)
                    for lab in SENTIMENT_LABELS
                ],
            ).where(in_today)
        )
    ).one()
    total, n_ended, n_handoff, aht = int(row[0]), int(row[1]), int(row[2]), row[3]
    mix = {lab: int(row[4 + i]) for i, lab in enumerate(SENTIMENT_LABELS)}
    mix["unscored"] = total - sum(mix.values())
    live = int(
        (
            await session.execute(select(func.count()).select_from(Call).where(Call.status.in_(LIVE_STATUSES)))
        ).scalar_one()
    )
    latency = await _percentiles(
        session,
        [("total", CallEvent.total_ms, LATENCY_RESOLUTION)],
        [CallEvent.kind == "latency", CallEvent.at >= today, CallEvent.at < current + timedelta(seconds=1)],
        CallEvent,
    )
    return {
        "as_of": current,
        "since": today,
        "live_calls": live,
        "calls_today": total,
        "ended_today": n_ended,
        "containment_rate": _rate(n_ended - n_handoff, n_ended),
        "handoff_rate": _rate(n_handoff, n_ended),
        "average_handle_time_ms": _num(aht),
        "latency_p50_ms": latency["total"]["p50"],
        "latency_p95_ms": latency["total"]["p95"],
        "latency_turns": latency["total"]["count"],
        "sentiment_mix": mix,
    }


async def calls_report(session: AsyncSession, window: Window, *, bucket: Bucket) -> dict[str, Any]:
    """Volume by time bucket, channel, direction and outcome; handle-time statistics and histogram.

    Two scans of the window: one GROUP BY over every dimension at once (a few thousand rows at most, folded
    here), one histogram of handle times for the percentiles.
    """
    dialect = _dialect(session)
    where = and_(Call.started_at >= window.since, Call.started_at < window.until)
    label = bucket_expr(dialect, Call.started_at, bucket).label("bucket")
    band = case(
        (Call.duration_ms.is_(None), None),
        (Call.duration_ms < 60_000, "<1m"),
        (Call.duration_ms < 180_000, "1-3m"),
        (Call.duration_ms < 600_000, "3-10m"),
        else_=">10m",
    ).label("band")
    stmt = (
        select(label, Call.channel, Call.direction, Call.outcome, band, func.count())
        .where(where)
        .group_by(label, Call.channel, Call.direction, Call.outcome, band)
    )
    volume: dict[str, dict[str, Any]] = {}
    by_channel: Counter[str] = Counter()
    by_direction: Counter[str] = Counter()
    by_outcome: Counter[str] = Counter()
    histogram: Counter[str] = Counter()
    for key, channel, direction, outcome, duration_band, n in (await session.execute(stmt)).all():
        count = int(n)
        slot = volume.setdefault(str(key), {"bucket": str(key), "calls": 0, "handed_off": 0, "resolved": 0})
        slot["calls"] += count
        if outcome == HANDED_OFF:
            slot["handed_off"] += count
        elif outcome == RESOLVED:
            slot["resolved"] += count
        by_channel[channel or "unknown"] += count
        by_direction[direction or "unknown"] += count
        by_outcome[outcome or "none"] += count
        if duration_band is not None:
            histogram[str(duration_band)] += count
    durations = await _percentiles(session, [("duration", Call.duration_ms, DURATION_RESOLUTION)], [where], Call)
    return {
        "since": window.since,
        "until": window.until,
        "bucket": bucket,
        "total": sum(by_outcome.values()),
        "volume": [volume[k] for k in sorted(volume)],
        "by_channel": dict(sorted(by_channel.items())),
        "by_direction": dict(sorted(by_direction.items())),
        "by_outcome": dict(sorted(by_outcome.items())),
        "duration_ms": durations["duration"],
        "duration_histogram": {k: histogram.get(k, 0) for k in ("<1m", "1-3m", "3-10m", ">10m")},
    }


async def sentiment_report(session: AsyncSession, window: Window, *, bucket: Bucket, worst: int = 20) -> dict[str, Any]:
    """Caller sentiment (VADER, per caller turn, averaged per call): trend, mix and the most negative calls."""
    dialect = _dialect(session)
    where = and_(Call.started_at >= window.since, Call.started_at < window.until)
    label = bucket_expr(dialect, Call.started_at, bucket).label("bucket")
    trend = [
        {
            "bucket": b,
            "scored_calls": int(n),
            "mean": _num(mean, 4),
            **{lab: int(row_counts[i]) for i, lab in enumerate(SENTIMENT_LABELS)},
        }
        for b, n, mean, *row_counts in (
            await session.execute(
                select(
                    label,
                    func.count(Call.sentiment),
                    func.avg(Call.sentiment),
                    *[
                        func.coalesce(func.sum(case((Call.sentiment_label == lab, 1), else_=0)), 0)
                        for lab in SENTIMENT_LABELS
                    ],
                )
                .where(where, Call.sentiment.is_not(None))
                .group_by(label)
                .order_by(label)
            )
        ).all()
    ]
    mix = {lab: sum(t[lab] for t in trend) for lab in SENTIMENT_LABELS}
    lowest = (
        await session.execute(
            select(Call.id, Call.started_at, Call.sentiment, Call.sentiment_label, Call.outcome)
            .where(where, Call.sentiment.is_not(None))
            .order_by(Call.sentiment, Call.id)
            .limit(worst)
        )
    ).all()
    turn_stats = (
        await session.execute(
            select(func.count(CallTurn.sentiment), func.avg(CallTurn.sentiment)).where(
                CallTurn.role == "caller",
                CallTurn.ended_at >= window.since,
                CallTurn.ended_at < window.until,
                CallTurn.sentiment.is_not(None),
            )
        )
    ).one()
    return {
        "since": window.since,
        "until": window.until,
        "bucket": bucket,
        "mix": mix,
        "mean": _num(
            sum((t["mean"] or 0) * t["scored_calls"] for t in trend) / max(1, sum(t["scored_calls"] for t in trend)), 4
        )
        if trend
        else None,
        "scored_turns": int(turn_stats[0]),
        "turn_mean": _num(turn_stats[1], 4),
        "trend": trend,
        "most_negative_calls": [
            {"call_id": i, "started_at": s, "sentiment": _num(v, 4), "label": lab, "outcome": o}
            for i, s, v, lab, o in lowest
        ],
    }


async def performance_report(session: AsyncSession, window: Window) -> dict[str, Any]:
    """Latency per stage (p50/p95), barge-ins, ASR confidence, answer coverage and first-contact resolution."""
    dialect = _dialect(session)
    call_where = and_(Call.started_at >= window.since, Call.started_at < window.until)
    event_where = [CallEvent.kind == "latency", CallEvent.at >= window.since, CallEvent.at < window.until]
    stages = await _percentiles(
        session,
        [
            ("total", CallEvent.total_ms, LATENCY_RESOLUTION),
            ("vad", CallEvent.vad_ms, LATENCY_RESOLUTION),
            ("asr", CallEvent.asr_ms, LATENCY_RESOLUTION),
            ("retrieval", CallEvent.retrieval_ms, LATENCY_RESOLUTION),
            ("llm", CallEvent.llm_ms, LATENCY_RESOLUTION),
            ("tts", CallEvent.tts_ms, LATENCY_RESOLUTION),
        ],
        event_where,
        CallEvent,
    )
    calls_in_window = int(
        (await session.execute(select(func.count()).select_from(Call).where(call_where))).scalar_one()
    )
    barge_ins = int(
        (
            await session.execute(
                select(func.count())
                .select_from(CallEvent)
                .where(CallEvent.kind == "barge_in", CallEvent.at >= window.since, CallEvent.at < window.until)
            )
        ).scalar_one()
    )
    agent_turns, interrupted = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(case((CallTurn.interrupted.is_(True), 1), else_=0)), 0)).where(
                CallTurn.role == "agent", CallTurn.ended_at >= window.since, CallTurn.ended_at < window.until
            )
        )
    ).one()
    asr = await _percentiles(
        session,
        [("confidence", CallTurn.asr_confidence, CONFIDENCE_RESOLUTION)],
        [CallTurn.role == "caller", CallTurn.ended_at >= window.since, CallTurn.ended_at < window.until],
        CallTurn,
    )
    rag_total, rag_found = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(case((RagQuery.found.is_(True), 1), else_=0)), 0)).where(
                RagQuery.created_at >= window.since, RagQuery.created_at < window.until
            )
        )
    ).one()
    # First-contact resolution: resolved calls whose caller did not call again within 7 days
    # (the caller's next call, found with one sorted pass: lead() over the caller's calls).
    next_call = func.lead(Call.started_at).over(partition_by=Call.caller_number, order_by=(Call.started_at, Call.id))
    callers = (
        select(Call.outcome, Call.started_at, next_call.label("next_at"))
        .where(Call.caller_number.is_not(None), Call.started_at >= window.since)
        .subquery("callers")
    )
    repeat = and_(
        callers.c.next_at.is_not(None),
        epoch_expr(dialect, callers.c.next_at) - epoch_expr(dialect, callers.c.started_at)
        < REPEAT_WINDOW.total_seconds(),
    )
    resolved_identified, first_contact = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(case((repeat, 0), else_=1)), 0)).where(
                callers.c.outcome == RESOLVED, callers.c.started_at < window.until
            )
        )
    ).one()
    return {
        "since": window.since,
        "until": window.until,
        "latency_ms": {stage: stages[stage] for stage in STAGES},
        "calls": calls_in_window,
        "barge_ins": barge_ins,
        "barge_ins_per_call": _rate(barge_ins, calls_in_window),
        "agent_turns": int(agent_turns),
        "interrupted_turn_rate": _rate(int(interrupted), int(agent_turns)),
        "asr_confidence": {
            "turns": asr["confidence"]["count"],
            "mean": _num(asr["confidence"]["mean"], 3),
            "p50": asr["confidence"]["p50"],
        },
        "knowledge_queries": int(rag_total),
        "answer_coverage": _rate(int(rag_found), int(rag_total)),
        "first_contact_resolution": _rate(int(first_contact), int(resolved_identified)),
        "resolved_calls_with_caller_id": int(resolved_identified),
    }
