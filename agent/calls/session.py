"""One call: its record, its sink, its timers and its single end.

A call exists in the database from its first packet (``CallRegistry.open``), moves to ``active`` when
the caller's media connects, and ends exactly once, with a reason and an outcome, on hangup, on
disconnect, on a tool's ``end_call``, on the silence timeout or on the maximum call length.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from agent.calls.channels import ClientChannel
from agent.calls.sink import DbCallSink, Sessions
from control_api.db.retry import retry_transient
from control_api.metrics import CALLS_ACTIVE, CALLS_ENDED
from control_api.services import calls as call_service

log = structlog.get_logger(__name__)

Stopper = Callable[[str], Awaitable[None]]


class HandoffEntry(Protocol):
    """The call's warm handoff (``agent.calls.handoff.CallHandoff``): the one way any trigger hands over."""

    async def request(self, reason: str, *, source: str = "api", speak: bool = True) -> str | None:
        """Hand the call to a person; the handoff id, or ``None`` when handoffs are off for it."""
        ...

    def returned(self) -> bool:
        """Whether the AI has the call back because nobody took it (a callback request is recorded)."""
        ...


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
        self._speaking: set[str] = set()  # who is speaking now ("agent", "caller"): silence does not run meanwhile
        self._before_end: list[Callable[[], Awaitable[None]]] = []
        self._stoppers: list[Stopper] = []
        self._ended = asyncio.Event()
        self._ending = False
        self._watchdog: asyncio.Task[None] | None = None
        self.outcome_hint: str | None = None
        self.end_reason: str | None = None
        self.persona_id: str | None = None
        # Whose voice limit admitted the call (``ip:...``, ``user:...``); the registry caps calls still connecting.
        self.rate_key: str | None = None
        self.media_connected = False
        # The call's warm handoff (set by the call setup when the process runs a handoff desk).
        self.handoff: HandoffEntry | None = None

    @property
    def ended(self) -> bool:
        """Whether the call has ended (or is ending)."""
        return self._ending

    def touch(self) -> None:
        """Note speech from either side (resets the silence timer)."""
        self._last_activity = time.monotonic()

    def speaking(self, role: str, speaking: bool) -> None:
        """Note that ``role`` started or stopped speaking.

        The silence timer is held while anyone speaks (an answer longer than the timeout is not cut off) and
        starts afresh when they stop.
        """
        if speaking:
            self._speaking.add(role)
        else:
            self._speaking.discard(role)
        self.touch()

    def before_end(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Register a step that runs when the call ends, before its end is stored.

        The agent turn in progress is stored this way, so a reader that sees the end sees the whole transcript.
        """
        self._before_end.append(hook)

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
            if self._speaking:
                self._last_activity = now
            elif now - self._last_activity >= self._silence_timeout:
                await self.end("silence_timeout", outcome="abandoned")
                return

    async def activate(self) -> None:
        """The caller's media is connected: the call is ``active``."""
        self.media_connected = True
        self.touch()

        async def store() -> None:
            async with self._sessions() as session:
                await call_service.set_status(session, self.call_id, "active")
                await call_service.add_event(session, self.call_id, kind="status", data={"status": "active"})

        try:
            await retry_transient(store)
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
        for hook in self._before_end:
            try:
                await hook()
            except Exception as exc:  # noqa: BLE001 - keep ending the call whatever a step does
                log.warning("call_end_step_failed", call_id=self.call_id, error_type=type(exc).__name__)
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

        async def store() -> None:
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

        try:
            await retry_transient(store)
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
