"""Call sessions: the lifecycle of one call, its database sink and the per-process call registry.

A call exists in the database from its first packet (``CallRegistry.open``), moves to ``active`` when
the caller's media connects, and ends exactly once, with a reason and an outcome, on hangup, on
disconnect, on a tool's ``end_call``, on the silence timeout or on the maximum call length.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent.metrics import CALLS_REJECTED, SINK_FAILURES
from control_api.metrics import CALLS_ACTIVE, CALLS_ENDED, CALLS_STARTED, VOICE_LATENCY
from control_api.problems import ProblemError
from control_api.services import calls as call_service
from control_api.services import privacy
from pipelines.contracts import CallEventRecord, LatencyRecord, TurnRecord

log = structlog.get_logger(__name__)

Sessions = async_sessionmaker[AsyncSession]
Stopper = Callable[[str], Awaitable[None]]


class ClientChannel(Protocol):
    """Where live call events go to the caller's client (data channel, WebSocket text frames)."""

    async def send(self, event: dict[str, Any]) -> None:
        """Send one JSON-able event; must not raise."""
        ...


class NullChannel:
    """A channel that drops every event (calls without a live client view)."""

    async def send(self, event: dict[str, Any]) -> None:
        """Drop ``event``."""
        del event


class CapacityError(ProblemError):
    """The process already carries its maximum number of calls."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            503,
            f"All {limit} call lines are busy; try again shortly.",
            type_="calls-at-capacity",
            headers={"Retry-After": "5"},
            extra={"max_concurrent_calls": limit},
        )


@dataclass
class _Counters:
    caller_turns: int = 0
    agent_turns: int = 0
    latencies_ms: list[float] = field(default_factory=list)


class DbCallSink:
    """The ``pipelines.contracts.CallSink`` of one call, over the control plane's call services.

    Records go to the call's own writer task, which commits them one by one in the order they came and then
    forwards each to the live client; the methods return at once, so no database write sits on the audio's
    path. :meth:`flush` waits until everything handed over is committed (the call's end does, before and after
    its pipeline stops). A crash loses at most the records of the last few milliseconds. The sink never
    raises: a failed write is logged with the call id (never the text) and counted in
    ``voxdesk_call_sink_failures_total``.

    On SQLite every call's writer takes ``write_lock`` (one per process) around a write: writers queue in
    turn instead of meeting SQLite's busy handler, whose sleeps grow to 100 ms each under contention.

    Args:
        call_id: The call the records belong to.
        sessions: Database session factory.
        channel: Live client view of the call.
        on_activity: Called whenever a turn ends (resets the silence timer).
        write_lock: Held around each write (SQLite: one lock per process); ``None``: no lock.

    """

    def __init__(
        self,
        *,
        call_id: str,
        sessions: Sessions,
        channel: ClientChannel,
        on_activity: Callable[[], None] | None = None,
        write_lock: asyncio.Lock | None = None,
    ) -> None:
        self.call_id = call_id
        self._sessions = sessions
        self._write_lock = write_lock
        self._jobs: deque[Callable[[], Awaitable[None]]] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._channel = channel
        self._on_activity = on_activity
        self.counters = _Counters()
        self.failures = 0
        # What the greeting told the caller about recording; stored as their consent once it has been spoken.
        self.consent_notice: str | None = None
        self.record_calls = False
        self._consent_recorded = False

    def _submit(self, job: Callable[[], Awaitable[None]]) -> None:
        self._jobs.append(job)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name=f"sink-{self.call_id}")

    async def _write_all(self) -> None:
        while self._jobs:
            job = self._jobs.popleft()
            if self._write_lock is None:
                await job()
            else:
                async with self._write_lock:
                    await job()

    async def flush(self) -> None:
        """Wait until every record handed to the sink so far is committed (and sent to the client)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    def _failed(self, kind: str, exc: BaseException) -> None:
        self.failures += 1
        SINK_FAILURES.labels(kind=kind).inc()
        log.error("call_sink_write_failed", call_id=self.call_id, kind=kind, error_type=type(exc).__name__)

    async def turn(self, record: TurnRecord) -> None:
        """Persist one finished turn, then show it to the caller."""
        if self._on_activity is not None:
            self._on_activity()
        if record.role == "caller":
            self.counters.caller_turns += 1
        else:
            self.counters.agent_turns += 1
        self._submit(lambda: self._write_turn(record))

    async def _write_turn(self, record: TurnRecord) -> None:
        try:
            async with self._sessions() as session:
                await call_service.append_turn(
                    session,
                    self.call_id,
                    seq=record.seq,
                    role=record.role,
                    text=record.text,
                    started_at=record.started_at,
                    ended_at=record.ended_at,
                    interrupted=record.interrupted,
                    asr_confidence=record.asr_confidence,
                    citations=record.citations,
                )
        except Exception as exc:  # noqa: BLE001 - the sink must not raise into the pipeline
            self._failed("turn", exc)
        if record.role == "agent" and self.consent_notice is not None and not self._consent_recorded:
            await self._record_consent(heard=not record.interrupted)
        await self._channel.send(
            {
                "type": "transcript",
                "role": record.role,
                "text": record.text,
                "final": True,
                "seq": record.seq,
                "interrupted": record.interrupted,
            }
        )

    async def _record_consent(self, *, heard: bool) -> None:
        # The first agent turn is the greeting with the notice: recording is agreed only if it was heard whole.
        self._consent_recorded = True
        assert self.consent_notice is not None
        try:
            async with self._sessions() as session:
                await privacy.record_consent(
                    session,
                    notice_text=self.consent_notice,
                    recording=self.record_calls and heard,
                    call_id=self.call_id,
                )
        except Exception as exc:  # noqa: BLE001 - the sink must not raise into the pipeline
            self._failed("consent", exc)

    async def latency(self, record: LatencyRecord) -> None:
        """Persist one turn's latency with its stage split."""
        self.counters.latencies_ms.append(record.total_ms)
        VOICE_LATENCY.observe(record.total_ms / 1000.0)
        self._submit(lambda: self._write_latency(record))

    async def _write_latency(self, record: LatencyRecord) -> None:
        try:
            async with self._sessions() as session:
                await call_service.add_event(
                    session,
                    self.call_id,
                    kind="latency",
                    turn_seq=record.turn_seq,
                    total_ms=record.total_ms,
                    vad_ms=record.vad_ms,
                    asr_ms=record.asr_ms,
                    retrieval_ms=record.retrieval_ms,
                    llm_ms=record.llm_ms,
                    tts_ms=record.tts_ms,
                )
        except Exception as exc:  # noqa: BLE001 - the sink must not raise into the pipeline
            self._failed("latency", exc)
        await self._channel.send(
            {
                "type": "latency",
                "turn_seq": record.turn_seq,
                "total_ms": round(record.total_ms, 1),
                "vad_ms": record.vad_ms,
                "asr_ms": record.asr_ms,
                "retrieval_ms": record.retrieval_ms,
                "llm_ms": record.llm_ms,
                "tts_ms": record.tts_ms,
            }
        )

    async def event(self, record: CallEventRecord) -> None:
        """Persist one call event (barge-in, tool call, handoff, error, status)."""
        self._submit(lambda: self._write_event(record))

    async def _write_event(self, record: CallEventRecord) -> None:
        try:
            async with self._sessions() as session:
                await call_service.add_event(
                    session, self.call_id, kind=record.kind, turn_seq=record.turn_seq, data=dict(record.data)
                )
        except Exception as exc:  # noqa: BLE001 - the sink must not raise into the pipeline
            self._failed("event", exc)
        if record.kind in ("barge_in", "tool_call", "tool_result", "handoff"):
            await self._channel.send({"type": "event", "kind": record.kind, "turn_seq": record.turn_seq})

    async def recording(self, *, path: str, fmt: str, channels: int, sample_rate: int, duration_ms: int) -> None:
        """Register the finished recording file."""
        self._submit(
            lambda: self._write_recording(
                path=path, fmt=fmt, channels=channels, sample_rate=sample_rate, duration_ms=duration_ms
            )
        )

    async def _write_recording(self, *, path: str, fmt: str, channels: int, sample_rate: int, duration_ms: int) -> None:
        try:
            size: int | None = None
            digest: str | None = None
            with contextlib.suppress(OSError):
                size, digest = await asyncio.to_thread(_size_and_digest, path)
            async with self._sessions() as session:
                await call_service.add_recording(
                    session,
                    self.call_id,
                    path=path,
                    format=fmt,
                    channels=channels,
                    sample_rate=sample_rate,
                    duration_ms=duration_ms,
                    size_bytes=size,
                    sha256=digest,
                )
        except ProblemError as exc:
            if exc.status != 409:
                self._failed("recording", exc)
                return
            # The caller did not hear the recording notice in full: the file is not kept.
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(os.remove, path)
            log.info("recording_discarded", call_id=self.call_id, reason="no_consent")
        except Exception as exc:  # noqa: BLE001 - the sink must not raise into the pipeline
            self._failed("recording", exc)


def _is_sqlite(sessions: Sessions) -> bool:
    bind = sessions.kw.get("bind")
    return bind is not None and bind.dialect.name == "sqlite"


def _size_and_digest(path: str) -> tuple[int, str]:
    import hashlib

    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


class CallSession:
    """One call: its record, its sink, its timers and its single end.

    Args:
        call_id: The stored call's id.
        channel_name: ``webrtc``, ``websocket``, ...
        sessions: Database session factory.
        client: Live client view of the call.
        silence_timeout_secs: End the call after this long without speech from either side.
        max_call_secs: End the call after this long, whatever happens.
        on_closed: Called once the call has ended (the registry frees its line).

    """

    def __init__(
        self,
        *,
        call_id: str,
        channel_name: str,
        sessions: Sessions,
        client: ClientChannel,
        silence_timeout_secs: float,
        max_call_secs: float,
        on_closed: Callable[[CallSession], None],
        write_lock: asyncio.Lock | None = None,
    ) -> None:
        self.call_id = call_id
        self.channel_name = channel_name
        self.client = client
        self._sessions = sessions
        self._silence_timeout = silence_timeout_secs
        self._max_call = max_call_secs
        self._on_closed = on_closed
        self.sink = DbCallSink(
            call_id=call_id, sessions=sessions, channel=client, on_activity=self.touch, write_lock=write_lock
        )
        self.started = time.monotonic()
        self._last_activity = self.started
        self._stoppers: list[Stopper] = []
        self._ended = asyncio.Event()
        self._ending = False
        self._watchdog: asyncio.Task[None] | None = None
        self.outcome_hint: str | None = None
        self.end_reason: str | None = None
        self.persona_id: str | None = None

    @property
    def ended(self) -> bool:
        """Whether the call has ended (or is ending)."""
        return self._ending

    def touch(self) -> None:
        """Note speech from either side (resets the silence timer)."""
        self._last_activity = time.monotonic()

    def on_stop(self, stopper: Stopper) -> None:
        """Register how to stop this call's media and pipeline when it ends."""
        self._stoppers.append(stopper)

    def start_timers(self) -> None:
        """Start the silence and maximum-length watchdog."""
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch(), name=f"call-watchdog-{self.call_id}")

    async def _watch(self) -> None:
        period = min(1.0, self._silence_timeout / 5)
        while not self._ending:
            await asyncio.sleep(period)
            now = time.monotonic()
            if now - self.started >= self._max_call:
                await self.end("max_duration")
                return
            if now - self._last_activity >= self._silence_timeout:
                await self.end("silence_timeout", outcome="abandoned")
                return

    async def activate(self) -> None:
        """The caller's media is connected: the call is ``active``."""
        self.touch()
        try:
            async with self._sessions() as session:
                await call_service.set_status(session, self.call_id, "active")
                await call_service.add_event(session, self.call_id, kind="status", data={"status": "active"})
        except Exception as exc:  # noqa: BLE001 - a status write must not break the call
            log.error("call_status_write_failed", call_id=self.call_id, error_type=type(exc).__name__)

    async def end(self, reason: str, *, outcome: str | None = None, failed: bool = False) -> None:
        """End the call once: stop its media and pipeline, store reason, outcome and latency summary."""
        if self._ending:
            return
        self._ending = True
        self.end_reason = reason
        current = asyncio.current_task()
        if self._watchdog is not None and self._watchdog is not current:
            self._watchdog.cancel()
        await self.sink.flush()  # the turns so far are stored before the call's end is
        counters = self.sink.counters
        if failed:
            final_outcome = "failed"
        elif outcome is not None:
            final_outcome = outcome
        elif self.outcome_hint is not None:
            final_outcome = self.outcome_hint
        elif counters.caller_turns == 0:
            final_outcome = "abandoned"
        else:
            final_outcome = "resolved"
        try:
            async with self._sessions() as session:
                await call_service.end_call(
                    session,
                    self.call_id,
                    reason=reason,
                    outcome=final_outcome,
                    failed=failed,
                    latency_p50_ms=_percentile(counters.latencies_ms, 0.5),
                    latency_p95_ms=_percentile(counters.latencies_ms, 0.95),
                )
        except Exception as exc:  # noqa: BLE001 - the line must be freed even if the DB is down
            log.error("call_end_write_failed", call_id=self.call_id, error_type=type(exc).__name__)
        # Stored first, then told to the client, then the media stops: a client that saw `end` sees the row.
        await self.client.send({"type": "end", "reason": reason})
        for stopper in self._stoppers:
            try:
                await stopper(reason)
            except Exception as exc:  # noqa: BLE001 - keep ending the call whatever a transport does
                log.warning("call_stop_step_failed", call_id=self.call_id, error_type=type(exc).__name__)
        await self.sink.flush()  # what the pipeline stored as it stopped (last turn, recording)
        CALLS_ENDED.labels(channel=self.channel_name, outcome=final_outcome).inc()
        CALLS_ACTIVE.labels(channel=self.channel_name).dec()
        log.info("call_ended", call_id=self.call_id, reason=reason, outcome=final_outcome)
        self._on_closed(self)
        self._ended.set()

    async def wait_ended(self) -> None:
        """Wait until the call has ended."""
        await self._ended.wait()


class CallRegistry:
    """The calls this process carries, with a cap on how many at once.

    Args:
        sessions: Database session factory.
        max_calls: Concurrent-call cap (``settings.voice.max_concurrent_calls``).
        silence_timeout_secs: Silence that ends a call.
        max_call_secs: Hard limit on a call's length.
        node: This process's identity, stamped on every call it opens (``metadata.node``) so a restart can close
            the calls it left open.

    """

    def __init__(
        self,
        *,
        sessions: Sessions,
        max_calls: int,
        silence_timeout_secs: float,
        max_call_secs: float,
        node: str = "local",
    ) -> None:
        self._sessions = sessions
        self.node = node
        self.max_calls = max_calls
        self._silence_timeout = silence_timeout_secs
        self._max_call = max_call_secs
        self._calls: dict[str, CallSession] = {}
        self._reserved = 0
        # SQLite has one writer at a time: the calls' sinks take turns through this lock (see DbCallSink).
        self._write_lock = asyncio.Lock() if _is_sqlite(sessions) else None

    def __len__(self) -> int:
        return len(self._calls)

    def get(self, call_id: str) -> CallSession | None:
        """The live call with ``call_id``, if this process carries it."""
        return self._calls.get(call_id)

    def calls(self) -> list[CallSession]:
        """The live calls."""
        return list(self._calls.values())

    def check_capacity(self, channel: str) -> None:
        """Raise 503 problem JSON when no line is free (without taking one)."""
        if len(self._calls) + self._reserved >= self.max_calls:
            CALLS_REJECTED.labels(channel=channel, reason="capacity").inc()
            raise CapacityError(self.max_calls)

    async def open(
        self,
        *,
        channel: str,
        client: ClientChannel | None = None,
        persona_id: str | None = None,
        created_by: str | None = None,
        caller_name: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> CallSession:
        """Take a line and store the call record (status ``ringing``); 503 problem when full."""
        self.check_capacity(channel)
        self._reserved += 1
        try:
            async with self._sessions() as session:
                call = await call_service.create_call(
                    session,
                    channel=channel,
                    persona_id=persona_id,
                    created_by=created_by,
                    caller_name=caller_name,
                    meta={**(meta or {}), "node": self.node},
                )
                call_id = call.id
        finally:
            self._reserved -= 1
        call_session = CallSession(
            call_id=call_id,
            channel_name=channel,
            sessions=self._sessions,
            client=client or NullChannel(),
            silence_timeout_secs=self._silence_timeout,
            max_call_secs=self._max_call,
            on_closed=self._closed,
            write_lock=self._write_lock,
        )
        call_session.persona_id = persona_id
        self._calls[call_id] = call_session
        CALLS_STARTED.labels(channel=channel).inc()
        CALLS_ACTIVE.labels(channel=channel).inc()
        log.info("call_opened", call_id=call_id, channel=channel)
        return call_session

    def _closed(self, call: CallSession) -> None:
        self._calls.pop(call.call_id, None)

    async def close_all(self, reason: str = "server_shutdown") -> None:
        """End every live call (process shutdown)."""
        for call in list(self._calls.values()):
            await call.end(reason)
