"""The transactional outbox: deliveries are added to the caller's session and commit with its event.

Nothing here commits. ``emit`` is called by the service that records the event (a call starting or
ending, a ticket requested), before that service's own commit, so the event and the work it owes to
integrations are stored together or not at all.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import Integration, OutboxDelivery, new_id
from control_api.integrations.registry import CONNECTORS

ENQUEUED = "voxdesk_outbox_enqueued"


async def subscribers(session: AsyncSession, event: str) -> list[Integration]:
    """The enabled integrations that want ``event``."""
    rows = (await session.execute(select(Integration).where(Integration.enabled.is_(True)))).scalars()
    return [
        row for row in rows if (c := CONNECTORS.get(row.kind)) is not None and c.subscribes(row.config or {}, event)
    ]


def enqueue(
    session: AsyncSession,
    integration: Integration,
    event: str,
    payload: dict[str, Any],
    *,
    call_id: str | None = None,
    key: str | None = None,
) -> OutboxDelivery:
    """Add one delivery of ``event`` to ``integration`` (not committed).

    Args:
        session: The session of the transaction that records the event.
        integration: The destination.
        event: The event name.
        payload: The event's data (JSON).
        call_id: The call it belongs to, if any.
        key: An idempotency key: a second delivery with the same key is refused by the database.

    """
    delivery_id = new_id()
    delivery = OutboxDelivery(
        id=delivery_id,
        integration_id=integration.id,
        event=event,
        call_id=call_id,
        idempotency_key=key or f"{event}:{delivery_id}",
        payload=payload,
        status="pending",
        attempts=0,
        ambiguous=False,
    )
    session.add(delivery)
    # Read by the dispatcher's after-commit hook: a commit that carried deliveries wakes it at once.
    session.info[ENQUEUED] = True
    return delivery


async def emit(
    session: AsyncSession, event: str, payload: dict[str, Any], *, call_id: str | None = None, key: str | None = None
) -> list[OutboxDelivery]:
    """Add a delivery of ``event`` for every enabled integration that wants it (not committed).

    ``key`` (e.g. the call id) makes the event idempotent per integration.
    """
    return [
        enqueue(
            session,
            integration,
            event,
            payload,
            call_id=call_id,
            key=f"{event}:{key}:{integration.id}" if key else None,
        )
        for integration in await subscribers(session, event)
    ]
