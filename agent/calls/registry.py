"""The calls one process carries, with a cap on how many at once."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from agent.calls.channels import ClientChannel, NullChannel
from agent.calls.session import CallSession
from agent.calls.sink import Sessions
from agent.metrics import CALLS_REJECTED
from control_api.db.retry import retry_transient
from control_api.metrics import CALLS_ACTIVE, CALLS_STARTED
from control_api.problems import ProblemError
from control_api.services import calls as call_service

log = structlog.get_logger(__name__)


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


def _is_sqlite(sessions: Sessions) -> bool:
    bind = sessions.kw.get("bind")
    return bind is not None and bind.dialect.name == "sqlite"


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

    def connecting(self, rate_key: str) -> int:
        """How many of this process's calls admitted under ``rate_key`` have no media yet."""
        return sum(1 for call in self._calls.values() if call.rate_key == rate_key and not call.media_connected)

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
        caller_number: str | None = None,
    ) -> CallSession:
        """Take a line and store the call record (status ``ringing``); 503 problem when full."""
        self.check_capacity(channel)
        self._reserved += 1
        try:

            async def store() -> str:
                async with self._sessions() as session:
                    call = await call_service.create_call(
                        session,
                        channel=channel,
                        persona_id=persona_id,
                        created_by=created_by,
                        caller_name=caller_name,
                        caller_number=caller_number,
                        meta={**(meta or {}), "node": self.node},
                    )
                    return call.id

            call_id = await retry_transient(store)
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
