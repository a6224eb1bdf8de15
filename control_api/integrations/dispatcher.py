"""The outbox dispatcher: claims due deliveries, sends them, records every attempt as a run.

- Claiming: due rows (``pending`` whose time has come, or ``in_flight`` whose lease ran out because their
  process died mid-send) are selected ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several dispatchers
  share one outbox, and each is taken with a conditional ``UPDATE`` (one winner on SQLite too).
- Sending: one request per attempt with a timeout, inside a circuit breaker per integration (purgatory).
- After a failure: a retry at a jittered exponential delay (tenacity's ``wait_exponential_jitter``), or
  ``dead`` after the last attempt or a failure that retrying cannot fix. Dead deliveries are retried
  from the API (``POST /api/integrations/deliveries/{id}/retry``).
- A restart resumes: everything is in the table; nothing is kept only in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from sqlalchemy import and_, case, event, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from tenacity import RetryCallState, Retrying, wait_exponential_jitter

from control_api.db.models import Integration, IntegrationRun, OutboxDelivery, utcnow
from control_api.integrations import events as ev
from control_api.integrations import outbox
from control_api.integrations.base import Job, Receipt
from control_api.integrations.errors import IntegrationError
from control_api.integrations.http import GuardedHttp
from control_api.integrations.notify import with_console_url
from control_api.integrations.registry import connector
from control_api.integrations.secrets import SecretBox

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When failed deliveries are tried again.

    Attributes:
        max_attempts: Attempts before a delivery is dead-lettered.
        initial_secs: First delay (doubles each attempt, plus up to ``initial_secs`` of jitter).
        max_secs: Longest delay.

    """

    max_attempts: int = 10
    initial_secs: float = 2.0
    max_secs: float = 600.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        wait = wait_exponential_jitter(multiplier=self.initial_secs, max=self.max_secs, jitter=self.initial_secs)
        state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        return float(wait(state))


def ticket_created_payload(delivery: OutboxDelivery, integration: Integration) -> dict[str, Any]:
    """The ``ticket.created`` event of a delivered ticket (no caller details: the helpdesk holds them)."""
    payload = delivery.payload or {}
    return {
        "ticket_id": delivery.external_id,
        "integration_id": integration.id,
        "integration_type": integration.kind,
        "integration_name": integration.name,
        "delivery_id": delivery.id,
        "call_id": delivery.call_id,
        "subject": payload.get("subject"),
        "priority": payload.get("priority"),
    }


def _due(now: datetime) -> object:
    return or_(
        and_(OutboxDelivery.status == "pending", OutboxDelivery.next_attempt_at <= now),
        and_(OutboxDelivery.status == "in_flight", OutboxDelivery.locked_until < now),
    )


class Dispatcher:
    """Delivers the outbox.

    Args:
        sessions: Database session factory.
        box: Decrypts integrations' secrets.
        http: The SSRF-guarded HTTP client (closed by ``stop``).
        retry: Retry schedule.
        breaker_failures: Failures in a row that open an integration's breaker.
        breaker_reset_secs: How long an open breaker refuses sends before one trial.
        poll_interval_secs: How often the outbox is polled when idle.
        lease_secs: How long a claimed delivery belongs to this dispatcher before another may take it.
        batch: Deliveries claimed (and sent concurrently) at once.
        console_url: Returns Voxdesk's public base URL now (links to calls), asked at every delivery so that a
            changed ``server.public_url`` reaches the next one.

    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        http: GuardedHttp,
        retry: RetryPolicy,
        breaker_failures: int = 5,
        breaker_reset_secs: float = 30.0,
        poll_interval_secs: float = 1.0,
        lease_secs: float = 60.0,
        batch: int = 16,
        console_url: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._box = box
        self._http = http
        self._retry = retry
        self._breakers = AsyncCircuitBreakerFactory(default_threshold=breaker_failures, default_ttl=breaker_reset_secs)
        self._poll = poll_interval_secs
        self._lease = timedelta(seconds=lease_secs)
        self._batch = batch
        self._console_url = console_url
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop_ref: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the delivery loop (idempotent); commits that add deliveries in this process wake it."""
        if self._task is None:
            self._loop_ref = asyncio.get_running_loop()
            event.listen(Session, "after_commit", self._after_commit)
            self._task = asyncio.create_task(self._loop(), name="integrations-dispatcher")

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(outbox.ENQUEUED, False) and self._loop_ref is not None:
            self._loop_ref.call_soon_threadsafe(self._wake.set)

    async def stop(self) -> None:
        """Stop the loop and close the HTTP client; claimed deliveries are resumed by the next start."""
        if event.contains(Session, "after_commit", self._after_commit):
            event.remove(Session, "after_commit", self._after_commit)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._http.aclose()

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                handled = await self.run_once()
            except OperationalError as exc:  # the database is briefly unavailable or busy: poll again later
                log.warning("outbox_poll_failed", error_type=type(exc).__name__)
                handled = 0
            if handled == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
                self._wake.clear()

    async def claim(self) -> list[str]:
        """Take up to ``batch`` due deliveries for this dispatcher; returns their ids."""
        now = utcnow()
        async with self._sessions() as session:
            stmt = (
                select(OutboxDelivery.id)
                .where(_due(now))  # type: ignore[arg-type]  # or_() of comparisons is a boolean clause
                .order_by(OutboxDelivery.next_attempt_at)
                .limit(self._batch)
                .with_for_update(skip_locked=True)
            )
            candidates = list((await session.execute(stmt)).scalars())
            claimed: list[str] = []
            for delivery_id in candidates:
                result = await session.execute(
                    update(OutboxDelivery)
                    .where(OutboxDelivery.id == delivery_id, _due(now))  # type: ignore[arg-type]  # as above
                    .values(
                        status="in_flight",
                        locked_until=now + self._lease,
                        # A lease that ran out means its process died mid-send: the request may have arrived.
                        ambiguous=case((OutboxDelivery.status == "in_flight", True), else_=OutboxDelivery.ambiguous),
                    )
                    .execution_options(synchronize_session=False)
                )
                if getattr(result, "rowcount", 0) == 1:
                    claimed.append(delivery_id)
            await session.commit()
        return claimed

    async def run_once(self) -> int:
        """Claim and send one batch of due deliveries; returns how many were handled."""
        claimed = await self.claim()
        if claimed:
            async with asyncio.TaskGroup() as group:
                for delivery_id in claimed:
                    group.create_task(self._deliver_guarded(delivery_id))
        return len(claimed)

    async def _deliver_guarded(self, delivery_id: str) -> None:
        try:
            await self._deliver(delivery_id)
        except Exception as exc:  # one broken delivery must not stop the others; its lease expires and it is retried
            log.exception("integration_delivery_crashed", delivery_id=delivery_id, error_type=type(exc).__name__)

    async def _deliver(self, delivery_id: str) -> None:
        async with self._sessions() as session:
            delivery = await session.get(OutboxDelivery, delivery_id)
            if delivery is None:
                return
            integration = await session.get(Integration, delivery.integration_id)
            if integration is None or not integration.enabled:
                delivery.status, delivery.locked_until = "dead", None
                delivery.last_error = "The integration is disabled or was deleted."
                await session.commit()
                return
            attempt = delivery.attempts + 1
            receipt: Receipt | None = None
            error: IntegrationError | None = None
            breaker = None
            try:
                job = Job(
                    delivery_id=delivery.id,
                    event=delivery.event,
                    payload=dict(delivery.payload or {}),
                    config=with_console_url(integration.kind, dict(integration.config or {}), self._console_url()),
                    secrets=self._box.open(integration.secret),
                    prior_attempts=delivery.attempts,
                    ambiguous_before=delivery.ambiguous,
                    created_at=delivery.created_at,
                )
                kind = connector(integration.kind)
                breaker = await self._breakers.get_breaker(integration.id)
                async with breaker:
                    receipt = await kind.deliver(self._http, job)
            except OpenedState as opened:
                # Nothing was sent: not an attempt. Try again when the breaker lets one request through.
                wait = max(0.0, opened.opened_at + float(self._breakers.default_ttl) - utcnow().timestamp())
                cause = delivery.last_error  # the failure that opened the breaker, for the alert
                delivery.status, delivery.locked_until = "pending", None
                delivery.next_attempt_at = utcnow() + timedelta(seconds=wait)
                delivery.last_error = "Circuit open: the integration failed repeatedly; waiting before trying again."
                await self._failing(session, integration, delivery, reason="breaker_open", error=cause)
                await session.commit()
                return
            except IntegrationError as exc:
                error = exc
            # This failure opened the breaker: the outage is alerted now, not when a later send is refused.
            just_opened = error is not None and breaker is not None and breaker.context.state == "opened"
            await self._settle(session, delivery, integration, attempt, receipt, error, breaker_opened=just_opened)

    async def _failing(
        self,
        session: AsyncSession,
        integration: Integration,
        delivery: OutboxDelivery,
        *,
        reason: str,
        error: str | None,
    ) -> None:
        """Mark ``integration`` failing and alert the other integrations, once per outage (not committed).

        The conditional update lets one transaction win when several deliveries fail at once (on PostgreSQL the
        others wait for its commit and then match no row).
        """
        now = utcnow()
        result = await session.execute(
            update(Integration)
            .where(Integration.id == integration.id, Integration.failing_since.is_(None))
            .values(failing_since=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            return
        integration.failing_since = now
        payload = {
            "integration_id": integration.id,
            "integration_name": integration.name,
            "integration_type": integration.kind,
            "reason": reason,
            "error": error,
            "delivery_id": delivery.id,
            "event": delivery.event,
            "since": now.isoformat(),
        }
        # A failing integration is not told of its own failure (it would only fail again). Once per outage is
        # the conditional update's doing: each alert gets a fresh key.
        for target in await outbox.subscribers(session, ev.INTEGRATION_FAILING):
            if target.id != integration.id:
                outbox.enqueue(session, target, ev.INTEGRATION_FAILING, payload)
        log.warning("integration_failing", integration_id=integration.id, reason=reason)

    async def _settle(
        self,
        session: AsyncSession,
        delivery: OutboxDelivery,
        integration: Integration,
        attempt: int,
        receipt: Receipt | None,
        error: IntegrationError | None,
        *,
        breaker_opened: bool = False,
    ) -> None:
        now = utcnow()
        delivery.attempts = attempt
        delivery.locked_until = None
        run = IntegrationRun(
            integration_id=integration.id,
            call_id=delivery.call_id,
            delivery_id=delivery.id,
            action=delivery.event,
            attempts=attempt,
            finished_at=now,
        )
        if receipt is not None:
            if integration.failing_since is not None:  # the outage is over: the next one alerts again
                integration.failing_since = None
                log.info("integration_recovered", integration_id=integration.id)
            delivery.status, delivery.delivered_at, delivery.last_error = "delivered", now, None
            delivery.external_id = receipt.external_id
            run.status, run.request, run.response = "succeeded", receipt.summary, {"status": receipt.status}
            run.external_id, run.response_status = receipt.external_id, receipt.status
            run.latency_ms = receipt.latency_ms
            if delivery.event == ev.TICKET_CREATE:
                # Subscribers learn of the ticket in the transaction that records its delivery (exactly once:
                # the key is the delivery's).
                await outbox.emit(
                    session,
                    ev.TICKET_CREATED,
                    ticket_created_payload(delivery, integration),
                    call_id=delivery.call_id,
                    key=delivery.id,
                )
            log.info(
                "integration_delivered",
                integration_id=integration.id,
                delivery_id=delivery.id,
                event_name=delivery.event,
                attempt=attempt,
            )
        else:
            assert error is not None
            delivery.last_error = error.message
            delivery.ambiguous = delivery.ambiguous or error.ambiguous
            run.status, run.error, run.response_status = "failed", error.message, error.status
            run.request = {"event": delivery.event}
            run.response = {"status": error.status} if error.status is not None else {}
            if error.retryable and attempt < self._retry.max_attempts:
                delay = max(self._retry.delay(attempt), error.retry_after_secs or 0.0)
                delivery.status, delivery.next_attempt_at = "pending", now + timedelta(seconds=delay)
            else:
                delivery.status = "dead"
                await self._failing(session, integration, delivery, reason="dead_letter", error=error.message)
            if breaker_opened and delivery.status != "dead":
                await self._failing(session, integration, delivery, reason="breaker_open", error=error.message)
            log.warning(
                "integration_delivery_failed",
                integration_id=integration.id,
                delivery_id=delivery.id,
                event_name=delivery.event,
                attempt=attempt,
                status=error.status,
                retryable=error.retryable,
                outcome=delivery.status,
            )
        session.add(run)
        await session.commit()
