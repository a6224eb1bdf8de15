"""The database sink of one call: turns, latency, events and the recording, written off the audio path."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent.calls.channels import ClientChannel
from agent.calls.consent import ConsentDecision, RecordingConsent
from agent.metrics import SINK_FAILURES
from control_api.db.retry import retry_transient
from control_api.problems import ProblemError
from control_api.services import calls as call_service
from control_api.services import privacy
from pipelines.contracts import CallEventRecord, LatencyRecord, TurnRecord

log = structlog.get_logger(__name__)

Sessions = async_sessionmaker[AsyncSession]


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
        self.consent = RecordingConsent(notice=None, record_calls=False)
        # Told each call event as it is handed over (the handoff's "not found" trigger); must not raise or block.
        self.event_listeners: list[Callable[[CallEventRecord], None]] = []

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
        async def store() -> None:
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

        try:
            await retry_transient(store)
        except Exception as exc:  # noqa: BLE001 - the sink must not raise into the pipeline
            self._failed("turn", exc)
        if record.role == "agent":
            decision = self.consent.on_agent_turn(interrupted=record.interrupted)
            if decision is not None:
                await self._record_consent(decision)
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

    async def _record_consent(self, decision: ConsentDecision) -> None:
        async def store() -> None:
            async with self._sessions() as session:
                await privacy.record_consent(
                    session, notice_text=decision.notice_text, recording=decision.recording, call_id=self.call_id
                )

        try:
            await retry_transient(store)
        except Exception as exc:  # noqa: BLE001 - the sink must not raise into the pipeline
            self._failed("consent", exc)

    async def latency(self, record: LatencyRecord) -> None:
        """Persist one turn's latency with its stage split."""
        self.counters.latencies_ms.append(record.total_ms)
        self._submit(lambda: self._write_latency(record))

    async def _write_latency(self, record: LatencyRecord) -> None:
        async def store() -> None:
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

        try:
            await retry_transient(store)
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
        for listener in self.event_listeners:
            listener(record)
        self._submit(lambda: self._write_event(record))

    async def _write_event(self, record: CallEventRecord) -> None:
        async def store() -> None:
            async with self._sessions() as session:
                await call_service.add_event(
                    session, self.call_id, kind=record.kind, turn_seq=record.turn_seq, data=dict(record.data)
                )

        try:
            await retry_transient(store)
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

            async def store() -> None:
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

            await retry_transient(store)
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


def _size_and_digest(path: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()
