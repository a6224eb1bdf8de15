"""Dashboard and analytics aggregations, computed in SQL and identical on SQLite and PostgreSQL.

Outcomes come from one rule, :func:`classify`: a call is contained (``resolved``) only when every question the
caller asked was answered from the knowledge base (``services.summary.exchanges``, the one rule for "answered")
and no handoff or callback was needed. Each ended call's outcome is written once to ``call_outcomes`` (and
re-read while the call's last turns may still be arriving), so reports never re-read transcripts.

Percentiles use the nearest-rank definition (the p-th percentile is the smallest value with at least p of the
values at or below it), read from a histogram that one grouped scan builds in the database at a fixed
resolution (1 ms for latencies, 1 s for handle times, 0.001 for recogniser confidence). Time buckets are
formatted as UTC strings (``2026-11-26T14:00:00`` / ``2026-11-26``) by a per-dialect expression.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog
from prometheus_client import Counter as MetricCounter
from sqlalchemy import ColumnElement, Float, Integer, and_, case, cast, func, literal, or_, select, union_all
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.selectable import ScalarSelect

from control_api.db.models import (
    Call,
    CallbackRequest,
    CallEvent,
    CallOutcome,
    CallTurn,
    Handoff,
    KnowledgeChunk,
    KnowledgeDocument,
    RagQuery,
)
from control_api.services import callbacks
from control_api.services.summary import Exchange, exchanges, request_seqs
from knowledge.titles import display_title

log = structlog.get_logger(__name__)
OUTCOMES_WRITTEN = MetricCounter(
    "voxdesk_call_outcomes_written_total",
    "Call outcomes (the containment rule) written to call_outcomes, by writer: analysis, catch_up or report.",
    ["source"],
)

LIVE_STATUSES = ("ringing", "active", "on_hold")
ENDED_STATUSES = ("ended", "failed")
HANDED_OFF = "handed_off"
RESOLVED = "resolved"  # contained: every question answered from the base, no handoff, no callback
UNANSWERED = "unanswered"
CALLBACK = "callback"
# Stored outcomes that say the conversation never really happened or broke: kept as they are.
KEPT_AS_STORED = ("failed", "abandoned", "not_connected")
# A call's last turns are stored just after its end; an outcome computed sooner than this is read again.
SETTLE = timedelta(seconds=60)
OUTCOME_BATCH = 500
CATCH_UP_BATCH = 2000
# Calls that started this recently may still wait for their post-call analysis (which writes their outcome); a
# call lasts at most ``voice.max_call_secs`` (an hour by default), so two days leave a wide margin.
RECENT_CALLS = timedelta(days=2)
# The databases (URL without password) on which this process finished the start-up catch-up.
_CAUGHT_UP: set[str] = set()
STAGES = ("total", "vad", "asr", "retrieval", "llm", "tts")
SENTIMENT_LABELS = ("positive", "neutral", "negative")
REPEAT_WINDOW = timedelta(days=7)
LATENCY_RESOLUTION = 1.0  # ms
DURATION_RESOLUTION = 1000.0  # ms
CONFIDENCE_RESOLUTION = 0.001
Bucket = Literal["hour", "day"]
# A caller's question in the knowledge base's query log: it names its call. Questions typed in the console's
# "Test a question" box (``POST /api/rag/query``) name none: tests, never counted in the call figures.
CALL_QUESTION = RagQuery.call_id.is_not(None)


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


@dataclass(frozen=True, slots=True)
class _Turn:
    """The fields of a transcript turn that ``summary.exchanges`` reads."""

    seq: int
    role: str
    text: str
    citations: Sequence[str] = field(default_factory=tuple)


def classify(*, stored: str | None, asked: Sequence[Exchange], handed_off: bool, callback: bool) -> str:
    """The outcome of an ended call: the one containment rule of the analytics.

    Args:
        stored: The outcome the voice side stored when the call ended.
        asked: The call's exchanges (``services.summary.exchanges`` of its transcript).
        handed_off: Whether a handoff row exists for the call (asked for, whatever came of it).
        callback: Whether a callback request exists for the call.

    Returns:
        ``callback`` or ``handed_off`` when a person was needed; a stored ``failed``/``abandoned``/
        ``not_connected`` as it is; ``unanswered`` when any
        question went without an answer from the base; otherwise ``resolved`` (contained). Post-call analysis
        reports the same rule in its own vocabulary (``services.analysis.outcome_of``).

    """
    if callback:
        return CALLBACK
    if handed_off or stored == HANDED_OFF:
        return HANDED_OFF
    if stored in KEPT_AS_STORED:
        return stored
    if not asked:
        # The voice side stores ``abandoned`` for a call where the caller never spoke.
        return stored or "abandoned"
    if any(not exchange.answered for exchange in asked):
        return UNANSWERED
    return RESOLVED


@dataclass(slots=True)
class Classified:
    """One call's outcome with the questions behind it."""

    outcome: str
    asked: list[Exchange]


async def classify_calls(session: AsyncSession, calls: Sequence[tuple[str, str | None]]) -> dict[str, Classified]:
    """Outcomes of ``(call_id, stored_outcome)`` calls, from their transcripts, handoffs and callbacks."""
    ids = [call_id for call_id, _ in calls]
    if not ids:
        return {}
    turns: dict[str, list[_Turn]] = defaultdict(list)
    rows = await session.execute(
        select(CallTurn.call_id, CallTurn.seq, CallTurn.role, CallTurn.text, CallTurn.citations)
        .where(CallTurn.call_id.in_(ids))
        .order_by(CallTurn.call_id, CallTurn.seq)
    )
    for call_id, seq, role, text, citations in rows.all():
        turns[str(call_id)].append(_Turn(int(seq), str(role), str(text or ""), tuple(citations or ())))
    requests = await request_turns(session, ids)
    handed = set((await session.execute(select(Handoff.call_id).where(Handoff.call_id.in_(ids)))).scalars())
    called_back = set(
        (await session.execute(select(CallbackRequest.call_id).where(CallbackRequest.call_id.in_(ids)))).scalars()
    )
    out: dict[str, Classified] = {}
    for call_id, stored in calls:
        asked = exchanges(turns.get(call_id, []), requests=requests.get(call_id, set()))
        outcome = classify(stored=stored, asked=asked, handed_off=call_id in handed, callback=call_id in called_back)
        out[call_id] = Classified(outcome, asked)
    return out


def _last_caller_turn(
    call_id: ColumnElement[str] | InstrumentedAttribute[str], *, before: InstrumentedAttribute[datetime] | None = None
) -> ScalarSelect[int | None]:
    """The seq of the call's last caller turn stored (by ``before``, when given): the turn that asked for a person."""
    query = select(func.max(CallTurn.seq)).where(CallTurn.call_id == call_id, CallTurn.role == "caller")
    if before is not None:
        query = query.where(CallTurn.ended_at <= before)
    return query.scalar_subquery()


async def request_turns(
    session: AsyncSession, call_ids: Sequence[str], *, asking: str | None = None
) -> dict[str, set[int]]:
    """Per call, the caller turns that were requests, not questions.

    A turn a transfer or ticket tool ran on (its ``tool_call`` event names it), and the turn whose words asked for
    a person (a handoff with source ``phrase``: the caller's last turn stored before the handoff was requested;
    the brain never saw it). ``asking``: a call whose phrase handoff is being requested now, before its row
    exists (the briefing is built first); its last caller turn stored so far counts the same way.
    """
    events: dict[str, list[tuple[str, int | None, dict[str, object] | None]]] = defaultdict(list)
    rows = await session.execute(
        select(CallEvent.call_id, CallEvent.kind, CallEvent.turn_seq, CallEvent.data).where(
            CallEvent.call_id.in_(call_ids), CallEvent.kind == "tool_call"
        )
    )
    for call_id, kind, seq, data in rows.all():
        events[str(call_id)].append((str(kind), seq, data))
    found = {call_id: request_seqs(found) for call_id, found in events.items()}
    asked = await session.execute(
        select(Handoff.call_id, _last_caller_turn(Handoff.call_id, before=Handoff.requested_at)).where(
            Handoff.call_id.in_(call_ids), Handoff.source == "phrase"
        )
    )
    pending = [] if asking is None else [(asking, await session.scalar(select(_last_caller_turn(literal(asking)))))]
    for call_id, seq in [*asked.all(), *pending]:
        if seq is not None:
            found.setdefault(str(call_id), set()).add(int(seq))
    return found


async def refresh_outcomes(
    session: AsyncSession,
    where: ColumnElement[bool],
    *,
    now: datetime | None = None,
    settle: timedelta = SETTLE,
    source: str = "report",
) -> int:
    """Write ``call_outcomes`` for the ended calls matching ``where`` that lack one or got it too early.

    Args:
        session: The database session (committed when a row was written).
        where: Which calls to look at.
        now: The current time (tests).
        settle: A call's outcome counts as final once it ended this long ago (its last turns are stored just
            after its end); the post-call analysis job, which itself waits for them, passes zero.
        source: Who wrote the rows, for the ``voxdesk_call_outcomes_written_total`` metric.

    Returns how many rows were written. Safe to run concurrently (insert-or-update on the call id).
    """
    current = _utc(now or datetime.now(UTC))
    # A row computed less than ``settle`` after the call's end is computed again on the next report (a handful
    # of calls at most: those that ended in the last minute and whose analysis has not run yet).
    stale = or_(CallOutcome.call_id.is_(None), CallOutcome.settled.is_(False))
    stmt = (
        select(Call.id, Call.outcome, Call.ended_at, Call.status)
        .outerjoin(CallOutcome, CallOutcome.call_id == Call.id)
        .where(where, Call.status.in_(ENDED_STATUSES), stale)
        .order_by(Call.id)
    )
    rows = [(str(i), o, e, s) for i, o, e, s in (await session.execute(stmt)).all()]
    written = await _write_outcomes(session, rows, current=current, settle=settle)
    if written:
        OUTCOMES_WRITTEN.labels(source).inc(written)
        await session.commit()
    return written


async def _write_outcomes(
    session: AsyncSession,
    rows: Sequence[tuple[str, str | None, datetime | None, str]],
    *,
    current: datetime,
    settle: timedelta,
) -> int:
    """Classify ``(call_id, stored outcome, ended_at, status)`` calls and upsert their ``call_outcomes`` rows."""
    insert = pg_insert if _dialect(session) == "postgresql" else sqlite_insert
    pending = [(call_id, stored_outcome(o, status)) for call_id, o, _, status in rows]
    settled = {call_id for call_id, _, ended, _ in rows if ended is None or _utc(ended) + settle <= current}
    written = 0
    for start in range(0, len(pending), OUTCOME_BATCH):
        batch = pending[start : start + OUTCOME_BATCH]
        found = await classify_calls(session, batch)
        values = [
            {
                "call_id": call_id,
                "outcome": result.outcome,
                "questions": len(result.asked),
                "unanswered": sum(1 for e in result.asked if not e.answered),
                "settled": call_id in settled,
                "computed_at": current,
            }
            for call_id, result in found.items()
        ]
        upsert = insert(CallOutcome).values(values)
        upsert = upsert.on_conflict_do_update(
            index_elements=[CallOutcome.call_id],
            set_={k: upsert.excluded[k] for k in ("outcome", "questions", "unanswered", "settled", "computed_at")},
        )
        await session.execute(upsert)
        written += len(values)
    return written


async def catch_up_outcomes(
    sessions: async_sessionmaker[AsyncSession], *, batch: int = CATCH_UP_BATCH, now: datetime | None = None
) -> int:
    """Write the outcome of every ended call that has none (or an early one), newest calls first.

    The start-up catch-up for calls that ended before this process ran the post-call hook (an upgrade from a
    release without ``call_outcomes``, a crash between a call's end and its analysis). One batch per
    transaction, so a stop loses at most one batch of work and reports read a growing, correct prefix.
    Returns how many rows were written.
    """
    total = 0
    while True:
        async with sessions() as session:
            current = _utc(now or datetime.now(UTC))
            stale = or_(CallOutcome.call_id.is_(None), CallOutcome.settled.is_(False))
            rows = (
                await session.execute(
                    select(Call.id, Call.outcome, Call.ended_at, Call.status)
                    .outerjoin(CallOutcome, CallOutcome.call_id == Call.id)
                    .where(Call.status.in_(ENDED_STATUSES), stale, Call.ended_at < current - SETTLE)
                    .order_by(Call.started_at.desc(), Call.id)
                    .limit(batch)
                )
            ).all()
            if not rows:
                _CAUGHT_UP.add(_database_key(session))
                return total
            written = await _write_outcomes(
                session, [(str(i), o, e, s) for i, o, e, s in rows], current=current, settle=SETTLE
            )
            await session.commit()
        OUTCOMES_WRITTEN.labels("catch_up").inc(written)
        total += written
        await asyncio.sleep(0)  # let requests in between batches


def _database_key(session: AsyncSession) -> str:
    """The session's database URL without its password (which databases this process caught up on)."""
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    return engine.url.render_as_string(hide_password=True)


def _unsettled_scope(session: AsyncSession, where: ColumnElement[bool]) -> ColumnElement[bool]:
    """Which calls of a report's ``where`` may still lack a final outcome.

    Once this process finished the start-up catch-up on this database, every older call has its outcome (and
    every newer one gets it from its post-call analysis), so a report only looks at calls of the last
    ``RECENT_CALLS`` (those whose analysis may still be queued): an index range instead of a join over the
    whole window. Before that, or in a process that never ran it, the whole window is checked.
    """
    if _database_key(session) not in _CAUGHT_UP:
        return where
    return and_(where, Call.started_at >= datetime.now(UTC) - RECENT_CALLS)


def start_outcome_catch_up(
    sessions: async_sessionmaker[AsyncSession],
) -> Callable[[], Awaitable[None]]:
    """Run :func:`catch_up_outcomes` once in a background task (the app's start-up); returns its stop."""

    async def run() -> None:
        started = time.perf_counter()
        try:
            written = await catch_up_outcomes(sessions)
        except asyncio.CancelledError:
            raise
        except Exception:  # the reports still compute a missing outcome themselves: log, do not crash the app
            log.exception("call_outcomes_catch_up_failed")
            return
        if written:
            log.info("call_outcomes_caught_up", calls=written, seconds=round(time.perf_counter() - started, 1))

    task = asyncio.create_task(run(), name="call-outcomes-catch-up")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop


def stored_outcome(outcome: str | None, status: str) -> str | None:
    """The stored outcome, with a call record that ended ``failed`` but names no outcome read as ``failed``."""
    return outcome or ("failed" if status == "failed" else None)


def outcome_expr() -> ColumnElement[str]:
    """A call's outcome in a query joined to ``call_outcomes``: the rule's, else (live calls) the stored one."""
    return func.coalesce(CallOutcome.outcome, Call.outcome)


async def dashboard(session: AsyncSession, *, now: datetime | None = None) -> dict[str, Any]:
    """Live calls and today's (UTC) volume, containment, handoffs, handle time, voice latency and sentiment."""
    current = _utc(now or datetime.now(UTC))
    today = current.replace(hour=0, minute=0, second=0, microsecond=0)
    in_today = and_(Call.started_at >= today, Call.started_at < current + timedelta(seconds=1))
    await refresh_outcomes(session, in_today, now=current)
    ended = Call.status.in_(ENDED_STATUSES)
    outcome = outcome_expr()
    row = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((ended, 1), else_=0)), 0),
                func.coalesce(func.sum(case((and_(ended, outcome.in_((HANDED_OFF, CALLBACK))), 1), else_=0)), 0),
                func.avg(case((ended, Call.duration_ms))),
                func.coalesce(func.sum(case((and_(ended, outcome == RESOLVED), 1), else_=0)), 0),
                func.coalesce(func.sum(case((and_(ended, outcome == UNANSWERED), 1), else_=0)), 0),
                *[
                    func.coalesce(func.sum(case((Call.sentiment_label == lab, 1), else_=0)), 0)
                    for lab in SENTIMENT_LABELS
                ],
            )
            .select_from(Call)
            .outerjoin(CallOutcome, CallOutcome.call_id == Call.id)
            .where(in_today)
        )
    ).one()
    total, n_ended, n_handoff, aht = int(row[0]), int(row[1]), int(row[2]), row[3]
    n_contained, n_unanswered = int(row[4]), int(row[5])
    mix = {lab: int(row[6 + i]) for i, lab in enumerate(SENTIMENT_LABELS)}
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
    # Callers still to call back, whatever day they called (the queue a supervisor must keep short).
    waiting, oldest_s = await callbacks.waiting(session, now=current)
    return {
        "as_of": current,
        "since": today,
        "live_calls": live,
        "calls_today": total,
        "ended_today": n_ended,
        "contained_today": n_contained,
        "unanswered_today": n_unanswered,
        "containment_rate": _rate(n_contained, n_ended),
        "handoff_rate": _rate(n_handoff, n_ended),
        "average_handle_time_ms": _num(aht),
        "latency_p50_ms": latency["total"]["p50"],
        "latency_p95_ms": latency["total"]["p95"],
        "latency_turns": latency["total"]["count"],
        "sentiment_mix": mix,
        "callbacks_waiting": waiting,
        "oldest_callback_wait_s": oldest_s,
    }


async def calls_report(session: AsyncSession, window: Window, *, bucket: Bucket) -> dict[str, Any]:
    """Volume by time bucket, channel, direction and outcome; handle-time statistics and histogram.

    Two scans of the window: one GROUP BY over every dimension at once (a few thousand rows at most, folded
    here), one histogram of handle times for the percentiles.
    """
    dialect = _dialect(session)
    where = and_(Call.started_at >= window.since, Call.started_at < window.until)
    await refresh_outcomes(session, _unsettled_scope(session, where))
    label = bucket_expr(dialect, Call.started_at, bucket).label("bucket")
    outcome = outcome_expr().label("outcome")
    band = case(
        (Call.duration_ms.is_(None), None),
        (Call.duration_ms < 60_000, "<1m"),
        (Call.duration_ms < 180_000, "1-3m"),
        (Call.duration_ms < 600_000, "3-10m"),
        else_=">10m",
    ).label("band")
    stmt = (
        select(label, Call.channel, Call.direction, outcome, band, func.count())
        .select_from(Call)
        .outerjoin(CallOutcome, CallOutcome.call_id == Call.id)
        .where(where)
        .group_by(label, Call.channel, Call.direction, outcome, band)
    )
    volume: dict[str, dict[str, Any]] = {}
    by_hour = [0] * 24
    by_channel: Counter[str] = Counter()
    by_direction: Counter[str] = Counter()
    by_outcome: Counter[str] = Counter()
    histogram: Counter[str] = Counter()
    for key, channel, direction, call_outcome, duration_band, n in (await session.execute(stmt)).all():
        count = int(n)
        slot = volume.setdefault(
            str(key), {"bucket": str(key), "calls": 0, "handed_off": 0, "resolved": 0, "outcomes": Counter()}
        )
        slot["calls"] += count
        if call_outcome in (HANDED_OFF, CALLBACK):
            slot["handed_off"] += count
        elif call_outcome == RESOLVED:
            slot["resolved"] += count
        slot["outcomes"][call_outcome or "live"] += count
        by_channel[channel or "unknown"] += count
        by_direction[direction or "unknown"] += count
        by_outcome[call_outcome or "live"] += count
        if duration_band is not None:
            histogram[str(duration_band)] += count
    # The hour-of-day profile in its own small GROUP BY (24 groups; folding it into the one above multiplies
    # that query's groups by 24).
    hour = hour_of_day_expr(dialect, Call.started_at).label("hour")
    for hour_of_day, n in (await session.execute(select(hour, func.count()).where(where).group_by(hour))).all():
        if hour_of_day is not None:
            by_hour[int(hour_of_day) % 24] += int(n)
    durations = await _percentiles(session, [("duration", Call.duration_ms, DURATION_RESOLUTION)], [where], Call)
    return {
        "since": window.since,
        "until": window.until,
        "bucket": bucket,
        "total": sum(by_outcome.values()),
        "volume": [{**volume[k], "outcomes": dict(volume[k]["outcomes"])} for k in sorted(volume)],
        "by_hour_of_day": by_hour,
        "by_channel": dict(sorted(by_channel.items())),
        "by_direction": dict(sorted(by_direction.items())),
        "by_outcome": dict(sorted(by_outcome.items())),
        "duration_ms": durations["duration"],
        "duration_histogram": {k: histogram.get(k, 0) for k in ("<1m", "1-3m", "3-10m", ">10m")},
    }


def hour_of_day_expr(dialect: str, column: Any) -> ColumnElement[int]:
    """The UTC hour (0-23) of a timestamp column."""
    if dialect == "postgresql":
        return cast(func.extract("hour", func.timezone("UTC", column)), Integer)
    return cast(func.strftime("%H", column), Integer)


async def trends_report(session: AsyncSession, window: Window, *, bucket: Bucket, top: int = 10) -> dict[str, Any]:
    """Voice latency per stage over time, unanswered questions over time, handoff reasons and top topics.

    Latency is the mean per stage per bucket (percentiles per stage are in the performance report); unanswered
    questions are those of ended calls (the one rule, ``call_outcomes``) plus callers' knowledge queries that
    found nothing; topics are the knowledge sections that answered most callers' queries (typed tests left out).
    """
    dialect = _dialect(session)
    call_where = and_(Call.started_at >= window.since, Call.started_at < window.until)
    await refresh_outcomes(session, _unsettled_scope(session, call_where))
    event_label = bucket_expr(dialect, CallEvent.at, bucket).label("bucket")
    latency = [
        {
            "bucket": str(b),
            "turns": int(n),
            **{stage: _num(value, 1) for stage, value in zip(STAGES, means, strict=True)},
        }
        for b, n, *means in (
            await session.execute(
                select(
                    event_label,
                    func.count(),
                    *[func.avg(getattr(CallEvent, "total_ms" if st == "total" else f"{st}_ms")) for st in STAGES],
                )
                .where(CallEvent.kind == "latency", CallEvent.at >= window.since, CallEvent.at < window.until)
                .group_by(event_label)
                .order_by(event_label)
            )
        ).all()
    ]
    call_label = bucket_expr(dialect, Call.started_at, bucket).label("bucket")
    unanswered: dict[str, dict[str, Any]] = {}
    for b, questions, missed, calls_missing in (
        await session.execute(
            select(
                call_label,
                func.coalesce(func.sum(CallOutcome.questions), 0),
                func.coalesce(func.sum(CallOutcome.unanswered), 0),
                func.coalesce(func.sum(case((CallOutcome.unanswered > 0, 1), else_=0)), 0),
            )
            .join(CallOutcome, CallOutcome.call_id == Call.id)
            .where(call_where)
            .group_by(call_label)
        )
    ).all():
        unanswered[str(b)] = {
            "bucket": str(b),
            "questions": int(questions),
            "unanswered": int(missed),
            "calls_with_unanswered": int(calls_missing),
            "queries_not_found": 0,
        }
    rag_label = bucket_expr(dialect, RagQuery.created_at, bucket).label("bucket")
    for b, n in (
        await session.execute(
            select(rag_label, func.count())
            .where(
                RagQuery.found.is_(False),
                CALL_QUESTION,
                RagQuery.created_at >= window.since,
                RagQuery.created_at < window.until,
            )
            .group_by(rag_label)
        )
    ).all():
        slot = unanswered.setdefault(
            str(b),
            {"bucket": str(b), "questions": 0, "unanswered": 0, "calls_with_unanswered": 0, "queries_not_found": 0},
        )
        slot["queries_not_found"] = int(n)
    reasons = [
        {"source": source or "unknown", "count": int(n)}
        for source, n in (
            await session.execute(
                select(Handoff.source, func.count())
                .where(Handoff.requested_at >= window.since, Handoff.requested_at < window.until)
                .group_by(Handoff.source)
                .order_by(func.count().desc(), Handoff.source)
            )
        ).all()
    ]
    # A document is named as a person reads it (knowledge.titles.display_title, as the documents list and the
    # citations name it), not by its stored title, which is the file name where the file gives none.
    topic = func.coalesce(KnowledgeChunk.heading, KnowledgeDocument.title, KnowledgeDocument.filename)
    topics = [
        {"topic": str(heading or document), "document": str(document), "count": int(n)}
        for heading, title, filename, n in (
            await session.execute(
                select(KnowledgeChunk.heading, KnowledgeDocument.title, KnowledgeDocument.filename, func.count())
                .select_from(RagQuery)
                .join(KnowledgeChunk, KnowledgeChunk.id == RagQuery.top_chunk_id)
                .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
                .where(
                    RagQuery.found.is_(True),
                    CALL_QUESTION,
                    RagQuery.created_at >= window.since,
                    RagQuery.created_at < window.until,
                )
                .group_by(KnowledgeChunk.heading, KnowledgeDocument.title, KnowledgeDocument.filename)
                .order_by(func.count().desc(), topic)
                .limit(top)
            )
        ).all()
        for document in [display_title(title, filename) or filename]
    ]
    return {
        "since": window.since,
        "until": window.until,
        "bucket": bucket,
        "latency": latency,
        "unanswered": [unanswered[k] for k in sorted(unanswered)],
        "handoff_reasons": reasons,
        "top_topics": topics,
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
    await refresh_outcomes(session, _unsettled_scope(session, where))
    lowest = (
        await session.execute(
            select(Call.id, Call.started_at, Call.sentiment, Call.sentiment_label, outcome_expr())
            .outerjoin(CallOutcome, CallOutcome.call_id == Call.id)
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
    rag_total, rag_found, rag_tests = (
        await session.execute(
            select(
                func.coalesce(func.sum(case((CALL_QUESTION, 1), else_=0)), 0),
                func.coalesce(func.sum(case((and_(CALL_QUESTION, RagQuery.found.is_(True)), 1), else_=0)), 0),
                func.coalesce(func.sum(case((CALL_QUESTION, 0), else_=1)), 0),
            ).where(RagQuery.created_at >= window.since, RagQuery.created_at < window.until)
        )
    ).one()
    # First-contact resolution: resolved calls whose caller did not call again within 7 days
    # (the caller's next call, found with one sorted pass: lead() over the caller's calls).
    next_call = func.lead(Call.started_at).over(partition_by=Call.caller_number, order_by=(Call.started_at, Call.id))
    await refresh_outcomes(session, _unsettled_scope(session, and_(call_where, Call.caller_number.is_not(None))))
    callers = (
        select(outcome_expr().label("outcome"), Call.started_at, next_call.label("next_at"))
        .select_from(Call)
        .outerjoin(CallOutcome, CallOutcome.call_id == Call.id)
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
        "test_queries": int(rag_tests),
        "first_contact_resolution": _rate(int(first_contact), int(resolved_identified)),
        "resolved_calls_with_caller_id": int(resolved_identified),
    }


async def call_outcome(session: AsyncSession, call: Call) -> dict[str, Any]:
    """One call's outcome by the rule (``None`` while live) and how many of its questions went unanswered."""
    live = call.status not in ENDED_STATUSES
    found = (await classify_calls(session, [(call.id, stored_outcome(call.outcome, call.status))]))[call.id]
    return {
        "call_id": call.id,
        "outcome": None if live else found.outcome,
        "questions": len(found.asked),
        "unanswered": sum(1 for e in found.asked if not e.answered),
    }
