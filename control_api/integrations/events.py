"""The names of the events integrations can receive (payloads are documented in docs/integrations.md).

Emitters call ``outbox.emit(session, EVENT, payload, call_id=..., key=...)`` inside the transaction that records
what happened, so the event and the deliveries it owes commit together or not at all.
"""

from __future__ import annotations

CALL_STARTED = "call.started"
CALL_ENDED = "call.ended"
CALL_ANALYSED = "call.analysed"
HANDOFF_REQUESTED = "handoff.requested"
HANDOFF_ACCEPTED = "handoff.accepted"
TICKET_CREATED = "ticket.created"
# Operator alerts (Slack, e-mail); webhooks may subscribe to them too.
HANDOFF_WAITING = "handoff.waiting"
INTEGRATION_FAILING = "integration.failing"
# Work items for one kind of integration, not notifications: a ticket to file.
TICKET_CREATE = "ticket.create"

# What a webhook receives when its ``events`` list is empty (all of these), and what it may pick from.
WEBHOOK_EVENTS = (CALL_STARTED, CALL_ENDED, CALL_ANALYSED, HANDOFF_REQUESTED, HANDOFF_ACCEPTED, TICKET_CREATED)
# What Slack and e-mail notify by default; an operator may add any webhook event.
ALERT_EVENTS = (HANDOFF_WAITING, INTEGRATION_FAILING)
# Every event an integration may subscribe to by name.
SUBSCRIBABLE = WEBHOOK_EVENTS + ALERT_EVENTS
