"""Events integrations receive: ticket.created follows a filed ticket exactly once, with the helpdesk's id."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent.calls.tools import TicketRecorder
from control_api.integrations import events as ev
from control_api.integrations.webhook import EVENTS
from control_api.services import calls as call_service
from pipelines.contracts import TicketRequest
from tests.control_api.conftest import Accounts
from tests.integrations.conftest import FRESHDESK_KEY, WEBHOOK_SECRET, wait_for
from tests.integrations.standins import FreshdeskStandIn, WebhookReceiver

pytestmark = pytest.mark.integration


def _create(client: TestClient, accounts: Accounts, body: dict[str, Any]) -> str:
    r = client.post("/api/integrations", json=body, headers=accounts.headers("admin"))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_webhook_events_are_the_documented_ones() -> None:
    assert set(EVENTS) == {
        "call.started",
        "call.ended",
        "call.analysed",
        "handoff.requested",
        "handoff.accepted",
        "ticket.created",
    }
    assert set(ev.ALERT_EVENTS) == {"handoff.waiting", "integration.failing"}


def test_ticket_created_follows_the_filed_ticket_once(
    client: TestClient, accounts: Accounts, freshdesk: FreshdeskStandIn, receiver: WebhookReceiver
) -> None:
    helpdesk = _create(
        client,
        accounts,
        {
            "name": "helpdesk",
            "type": "freshdesk",
            "config": {"base_url": freshdesk.url},
            "secrets": {"api_key": FRESHDESK_KEY},
        },
    )
    _create(
        client,
        accounts,
        {
            "name": "crm",
            "type": "webhook",
            "config": {"url": receiver.url + "/hooks/voxdesk", "events": ["ticket.created"]},
            "secrets": {"signing_secret": WEBHOOK_SECRET},
        },
    )
    sessions = client.app.state.voxdesk.sessions  # type: ignore[attr-defined]

    async def ticket() -> str:
        async with sessions() as session:
            call = await call_service.create_call(session, channel="webrtc", caller_email="known@caller.example")
        await TicketRecorder(sessions=sessions)(
            TicketRequest(call_id=call.id, subject="Router broken", description="No lights.", priority="high")
        )
        return call.id

    assert client.portal is not None
    call_id = client.portal.call(ticket)
    [event] = wait_for(lambda: receiver.events("ticket.created"), what="ticket.created")
    [filed] = freshdesk.tickets
    data = event["data"]
    assert data["ticket_id"] == str(filed["id"]) and data["call_id"] == call_id
    assert (data["integration_id"], data["integration_type"]) == (helpdesk, "freshdesk")
    assert data["subject"] == "Router broken"
    assert "email" not in data and receiver.rejected == 0
    # call.started was not asked for; ticket.created came once.
    assert [e["type"] for e in receiver.events()] == ["ticket.created"]


def test_webhook_events_refuse_unknown_names(client: TestClient, accounts: Accounts, receiver: WebhookReceiver) -> None:
    body = {
        "name": "crm",
        "type": "webhook",
        "config": {"url": receiver.url + "/hooks/voxdesk", "events": ["ticket.exploded"]},
        "secrets": {"signing_secret": WEBHOOK_SECRET},
    }
    r = client.post("/api/integrations", json=body, headers=accounts.headers("admin"))
    assert r.status_code == 422 and "handoff.waiting" in r.json()["detail"]
