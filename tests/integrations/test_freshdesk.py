"""Freshdesk: the agent's create_ticket reaches a v2 stand-in exactly once, through outages and restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agent.calls.tools import TicketRecorder
from control_api.db.models import IntegrationRun
from control_api.services import calls as call_service
from pipelines.contracts import TicketRequest
from tests.control_api.conftest import Accounts, sign_in_everyone
from tests.integrations.conftest import FRESHDESK_KEY, make_client, wait_for
from tests.integrations.standins import FreshdeskStandIn

pytestmark = pytest.mark.integration


def _create(client: TestClient, accounts: Accounts, base_url: str, **config: Any) -> str:
    body = {
        "name": "helpdesk",
        "type": "freshdesk",
        "config": {"base_url": base_url, **config},
        "secrets": {"api_key": FRESHDESK_KEY},
    }
    r = client.post("/api/integrations", json=body, headers=accounts.headers("admin"))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _ticket(client: TestClient, *, email: str | None = None, phone: str | None = None) -> tuple[str, str]:
    """Open a call and ask for a ticket through the agent's tool; returns (call id, spoken reference)."""
    sessions = client.app.state.voxdesk.sessions  # type: ignore[attr-defined]

    async def run() -> tuple[str, str]:
        async with sessions() as session:
            call = await call_service.create_call(
                session, channel="webrtc", caller_email=email, caller_number=phone, caller_name="Asha"
            )
        reference = await TicketRecorder(sessions=sessions)(
            TicketRequest(call_id=call.id, subject="Router broken", description="No lights on the router.\nSince 9am.")
        )
        return call.id, reference

    assert client.portal is not None
    return client.portal.call(run)


def _delivered(client: TestClient, accounts: Accounts) -> list[dict[str, Any]]:
    r = client.get("/api/integrations/deliveries", params={"status": "delivered"}, headers=accounts.headers("admin"))
    return list(r.json()["data"])


def test_ticket_tool_files_one_ticket_on_the_known_contact(
    client: TestClient, accounts: Accounts, freshdesk: FreshdeskStandIn
) -> None:
    _create(client, accounts, freshdesk.url)
    call_id, reference = _ticket(client, email="known@caller.example")
    assert reference.startswith("T-") and len(reference) == 8
    wait_for(lambda: _delivered(client, accounts), what="the ticket delivery")
    assert freshdesk.violations == []
    [ticket] = freshdesk.tickets
    assert ticket["requester_id"] == 7001 and "email" not in ticket
    assert ticket["subject"] == "Router broken" and "No lights" in ticket["description"]
    assert (ticket["status"], ticket["priority"], ticket["source"]) == (2, 2, 3)
    [delivery] = _delivered(client, accounts)
    assert delivery["external_id"] == str(ticket["id"]) and delivery["call_id"] == call_id


def test_unknown_caller_by_phone_gets_a_named_requester(
    client: TestClient, accounts: Accounts, freshdesk: FreshdeskStandIn
) -> None:
    _create(client, accounts, freshdesk.url)
    _ticket(client, phone="+15550001111")
    wait_for(lambda: _delivered(client, accounts), what="the ticket delivery")
    [ticket] = freshdesk.tickets
    assert ticket["phone"] == "+15550001111" and ticket["name"] == "Asha"
    assert freshdesk.violations == []


def test_down_then_back_makes_exactly_one_ticket(
    client: TestClient, accounts: Accounts, freshdesk: FreshdeskStandIn
) -> None:
    integration = _create(client, accounts, freshdesk.url)
    freshdesk.stop()
    _ticket(client, email="new@caller.example")

    def failures() -> int:
        runs = client.get(f"/api/integrations/{integration}/runs", headers=accounts.headers("admin")).json()["data"]
        return sum(1 for r in runs if r["status"] == "failed")

    wait_for(lambda: failures() >= 2, what="failed attempts while Freshdesk is down")
    freshdesk.start()
    wait_for(lambda: _delivered(client, accounts), what="the ticket after Freshdesk returned")
    assert len(freshdesk.tickets) == 1 and freshdesk.tickets[0]["email"] == "new@caller.example"


def test_ambiguous_failure_is_looked_up_before_recreating(
    client: TestClient, accounts: Accounts, freshdesk: FreshdeskStandIn
) -> None:
    _create(client, accounts, freshdesk.url)
    freshdesk.fail_after_create = 1  # Freshdesk stores the ticket, then answers 500
    _ticket(client, email="known@caller.example")
    [delivery] = wait_for(lambda: _delivered(client, accounts), what="the delivery")
    assert len(freshdesk.tickets) == 1
    assert delivery["external_id"] == str(freshdesk.tickets[0]["id"]) and delivery["attempts"] == 2
    assert ("GET", "/api/v2/search/tickets") in freshdesk.requests
    assert [m for m, p in freshdesk.requests if p == "/api/v2/tickets"] == ["POST"]


def test_pending_ticket_survives_a_restart(tmp_path: Path, freshdesk: FreshdeskStandIn) -> None:
    freshdesk.stop()
    with make_client(tmp_path) as client:
        accounts = sign_in_everyone(client)
        _create(client, accounts, freshdesk.url)
        _ticket(client, email="known@caller.example")
        wait_for(
            lambda: (
                client.get("/api/integrations/deliveries", headers=accounts.headers("admin")).json()["data"][0][
                    "attempts"
                ]
                >= 1
            ),
            what="a failed attempt",
        )
    freshdesk.start()
    with make_client(tmp_path) as client:
        accounts = sign_in_everyone_again(client)
        wait_for(lambda: _delivered(client, accounts), what="the delivery after the restart")
        assert len(freshdesk.tickets) == 1


def sign_in_everyone_again(client: TestClient) -> Accounts:
    from tests.control_api.conftest import PASSWORD, ROLES, email_of

    accounts = Accounts(client)
    for role in ROLES:
        login = accounts.login(email_of(role), PASSWORD)
        assert login.status_code == 200, login.text
        accounts.tokens[role] = login.json()
    return accounts


def test_test_endpoint_checks_the_api_key(client: TestClient, accounts: Accounts, freshdesk: FreshdeskStandIn) -> None:
    integration = _create(client, accounts, freshdesk.url)
    r = client.post(f"/api/integrations/{integration}/test", headers=accounts.headers("admin"))
    assert r.json() == {"ok": True, "status": 200, "latency_ms": r.json()["latency_ms"], "error": None}
    client.put(
        f"/api/integrations/{integration}", json={"secrets": {"api_key": "wrong"}}, headers=accounts.headers("admin")
    )
    r = client.post(f"/api/integrations/{integration}/test", headers=accounts.headers("admin"))
    assert r.json()["ok"] is False and r.json()["status"] == 401


def test_without_a_ticketing_integration_the_request_is_recorded(client: TestClient) -> None:
    _ticket(client, email="known@caller.example")

    async def runs() -> list[IntegrationRun]:
        async with client.app.state.voxdesk.sessions() as session:  # type: ignore[attr-defined]
            return list((await session.execute(select(IntegrationRun))).scalars())

    assert client.portal is not None
    [run] = client.portal.call(runs)
    assert (run.action, run.status) == ("create_ticket", "pending")


def test_create_ticket_route_queues_through_the_outbox(
    client: TestClient, accounts: Accounts, freshdesk: FreshdeskStandIn
) -> None:
    body = {"subject": "Callback please", "description": "Wants a call back.", "phone": "+911234567890"}
    supervisor = accounts.headers("supervisor")
    r = client.post("/api/integrations/freshdesk/create-ticket", json=body, headers=supervisor)
    assert r.status_code == 409 and r.json()["type"].endswith("/no-integration")
    _create(client, accounts, freshdesk.url)
    r = client.post(
        "/api/integrations/freshdesk/create-ticket", json={**body, "priority": "urgent"}, headers=supervisor
    )
    assert r.status_code == 202, r.text
    wait_for(lambda: _delivered(client, accounts), what="the ticket delivery")
    [ticket] = freshdesk.tickets
    assert ticket["requester_id"] == 7001 and ticket["priority"] == 4
    assert (
        client.post(
            "/api/integrations/freshdesk/create-ticket", json=body, headers=accounts.headers("agent")
        ).status_code
        == 403
    )


def test_description_holds_the_call_summary_caller_and_link(
    client: TestClient, accounts: Accounts, freshdesk: FreshdeskStandIn
) -> None:
    integration = _create(client, accounts, freshdesk.url)
    config = client.get("/api/integrations", headers=accounts.headers("admin")).json()["data"][0]["config"]
    assert "console_url" not in config  # not stored: the link uses the public URL in force when it is sent
    assert integration
    sessions = client.app.state.voxdesk.sessions  # type: ignore[attr-defined]

    async def run() -> str:
        async with sessions() as session:
            call = await call_service.create_call(
                session, channel="webrtc", caller_email="new@caller.example", caller_name="Asha"
            )
            await call_service.append_turn(
                session, call.id, seq=1, role="caller", text="How do I reset my router?", score_sentiment=False
            )
            # Formatting is off for this statement: the turn's identity and text on one line, as in the others.
            await call_service.append_turn(
                session, call.id, seq=2, role="agent", text="Hold the reset button.", citations=["c1"],
                score_sentiment=False,
            )  # fmt: skip
            await call_service.append_turn(
                session, call.id, seq=3, role="caller", text="Is there an outage in Pune?", score_sentiment=False
            )
        await TicketRecorder(sessions=sessions)(
            TicketRequest(call_id=call.id, subject="Outage question", description="Caller asked for a follow-up.")
        )
        return call.id

    assert client.portal is not None
    call_id = client.portal.call(run)
    wait_for(lambda: _delivered(client, accounts), what="the ticket delivery")
    [ticket] = freshdesk.tickets
    description = ticket["description"]
    assert description.startswith("Caller asked for a follow-up.")
    assert "<b>Call summary:</b> The caller asked 2 questions." in description
    assert "Answered: &quot;How do I reset my router?&quot;" in description
    assert "Not answered: &quot;Is there an outage in Pune?&quot;" in description
    assert "<b>Caller:</b> Asha · new@caller.example" in description
    assert f'href="http://127.0.0.1:8000/console#/calls/{call_id}"' in description
    assert freshdesk.violations == []
