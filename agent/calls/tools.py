"""The database side of the agent's tools: ticket requests and handoffs of one call.

``create_ticket`` writes a ``ticket.create`` outbox delivery for every enabled ticketing integration
(Freshdesk), in one transaction; the dispatcher files it, retrying until the helpdesk takes it. With no
ticketing integration it records an ``integration_runs`` row (action ``create_ticket``, status ``pending``)
for a person to file. Either way the ticket is queued, not yet confirmed, when the tool returns.
``transfer_to_human`` opens a ``handoffs`` row and marks the call as handed off. The pipeline records the
tool calls and results as call events.
"""

from __future__ import annotations

import structlog

from agent.calls.session import CallSession
from agent.calls.sink import Sessions
from control_api.db.models import Handoff, IntegrationRun
from control_api.integrations import outbox
from control_api.services import calls as call_service
from control_api.services import integrations as integration_service
from pipelines.contracts import HandoffRequest, TicketRequest

log = structlog.get_logger(__name__)


class TicketRecorder:
    """``pipelines.contracts.TicketHandler``: stores the request as a pending ``create_ticket`` run.

    Args:
        sessions: Database session factory.

    """

    def __init__(self, *, sessions: Sessions) -> None:
        self._sessions = sessions

    async def __call__(self, request: TicketRequest) -> str:
        """Queue ``request``; returns a reference the agent reads out (``T-`` and 6 characters)."""
        async with self._sessions() as session:
            # The request with the call's summary and the caller's details (one builder: the integrations service).
            payload = await integration_service.ticket_payload(
                session,
                subject=request.subject,
                description=request.description,
                priority=request.priority,
                call_id=request.call_id,
            )
            deliveries = await outbox.emit(session, "ticket.create", payload, call_id=request.call_id)
            if deliveries:
                await session.commit()
                reference = "T-" + deliveries[0].id.replace("-", "")[:6].upper()
                log.info("ticket_queued", call_id=request.call_id, deliveries=len(deliveries))
                return reference
            run = IntegrationRun(
                call_id=request.call_id,
                action="create_ticket",
                status="pending",
                request={
                    "subject": request.subject,
                    "description": request.description,
                    "priority": request.priority,
                },
            )
            session.add(run)
            await session.commit()
            reference = "T-" + run.id.replace("-", "")[:6].upper()
        log.info("ticket_requested", call_id=request.call_id, integration_run_id=run.id)
        return reference


class HandoffOpener:
    """``pipelines.contracts.HandoffHandler``: opens a ``handoffs`` row (status ``requested``).

    Args:
        sessions: Database session factory.
        call: The call being handed off (its outcome becomes ``handed_off``).

    """

    def __init__(self, *, sessions: Sessions, call: CallSession) -> None:
        self._sessions = sessions
        self._call = call

    async def __call__(self, request: HandoffRequest) -> str:
        """Hand the call over live when it has a handoff desk (docs/handoff.md); otherwise only open the row.

        Returns the handoff's id; raises when the persona's policy turns the tool off (the brain apologises).
        """
        live = self._call.handoff
        if live is not None:
            handoff_id = await live.request(request.reason, source="tool", speak=False)
            if handoff_id is None:
                raise RuntimeError("handoffs are off for this call")
            return handoff_id
        async with self._sessions() as session:
            handoff = Handoff(
                call_id=request.call_id, status="requested", reason=request.reason, summary=request.summary
            )
            session.add(handoff)
            await session.commit()
            handoff_id = handoff.id
            await call_service.add_event(
                session, request.call_id, kind="handoff", data={"handoff_id": handoff_id, "status": "requested"}
            )
        self._call.outcome_hint = "handed_off"
        log.info("handoff_requested", call_id=request.call_id, handoff_id=handoff_id)
        return handoff_id
