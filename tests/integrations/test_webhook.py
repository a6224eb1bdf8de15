"""Webhooks: call events written with the call, signed per Standard Webhooks, retried until delivered once."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from control_api.services import calls as call_service
from tests.control_api.conftest import Accounts
from tests.integrations.conftest import WEBHOOK_SECRET, wait_for
from tests.integrations.standins import WebhookReceiver

pytestmark = pytest.mark.integration


def _create_hook(client: TestClient, accounts: Accounts, url: str, events: list[str] | None = None) -> str:
    body: dict[str, Any] = {
        "name": "crm",
        "type": "webhook",
        "config": {"url": url, "events": events or []},
        "secrets": {"signing_secret": WEBHOOK_SECRET},
    }
    r = client.post("/api/integrations", json=body, headers=accounts.headers("admin"))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _end_call(client: TestClient, call_id: str) -> None:
    async def end() -> None:
        async with client.app.state.voxdesk.sessions() as session:  # type: ignore[attr-defined]
            await call_service.end_call(session, call_id, reason="caller_hangup")

    assert client.portal is not None
    client.portal.call(end)


def _runs(client: TestClient, accounts: Accounts, integration_id: str) -> list[dict[str, Any]]:
    r = client.get(f"/api/integrations/{integration_id}/runs", headers=accounts.headers("supervisor"))
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def test_call_started_and_ended_are_signed_and_delivered(
    client: TestClient, accounts: Accounts, receiver: WebhookReceiver
) -> None:
    hook = _create_hook(client, accounts, receiver.url + "/hooks/voxdesk?token=abc")
    r = client.post("/api/calls", json={"channel": "webrtc"}, headers=accounts.headers("admin"))
    assert r.status_code == 201, r.text
    call_id = r.json()["id"]
    _end_call(client, call_id)
    wait_for(lambda: len(receiver.events()) == 2, what="both call events")
    started, ended = receiver.events("call.started"), receiver.events("call.ended")
    assert [e["data"]["call_id"] for e in started + ended] == [call_id, call_id]
    assert ended[0]["data"]["status"] == "ended" and ended[0]["data"]["duration_ms"] is not None
    assert receiver.rejected == 0
    runs = wait_for(lambda: len(_runs(client, accounts, hook)) == 2 and _runs(client, accounts, hook), what="runs")
    assert {r["status"] for r in runs} == {"succeeded"}
    assert all(r["response_status"] == 204 and r["latency_ms"] is not None for r in runs)
    # The run's request summary drops the URL's query (it may carry a token) and never holds the secret.
    assert all("token=abc" not in str(r["request"]) and WEBHOOK_SECRET[6:] not in str(r) for r in runs)


def test_receiver_down_is_retried_then_delivered_once(
    client: TestClient, accounts: Accounts, receiver: WebhookReceiver
) -> None:
    hook = _create_hook(client, accounts, receiver.url + "/hooks/voxdesk", events=["call.started"])
    receiver.stop()
    r = client.post("/api/calls", json={"channel": "websocket"}, headers=accounts.headers("admin"))
    call_id = r.json()["id"]
    wait_for(lambda: len([x for x in _runs(client, accounts, hook) if x["status"] == "failed"]) >= 2, what="failures")
    receiver.start()
    wait_for(lambda: receiver.events("call.started"), what="the delivery after the receiver returned")
    wait_for(lambda: any(x["status"] == "succeeded" for x in _runs(client, accounts, hook)), what="success run")
    events = receiver.events()
    assert len(events) == 1 and events[0]["data"]["call_id"] == call_id
    deliveries = client.get("/api/integrations/deliveries", headers=accounts.headers("supervisor")).json()["data"]
    assert len(deliveries) == 1 and deliveries[0]["status"] == "delivered" and deliveries[0]["attempts"] >= 3
    # Every retry carried the same webhook-id, so a receiver can de-duplicate.
    assert events[0]["id"].startswith("msg_")


def test_dead_letter_and_retry(client: TestClient, accounts: Accounts, receiver: WebhookReceiver) -> None:
    hook = _create_hook(client, accounts, receiver.url + "/hooks/voxdesk", events=["call.started"])
    receiver.redirect_to = "http://169.254.169.254/latest/meta-data/"
    client.post("/api/calls", json={"channel": "webrtc"}, headers=accounts.headers("admin"))

    def dead() -> list[dict[str, Any]]:
        r = client.get("/api/integrations/deliveries", params={"status": "dead"}, headers=accounts.headers("admin"))
        return list(r.json()["data"])

    [delivery] = wait_for(dead, what="a dead letter")
    assert "redirect" in delivery["last_error"] and delivery["attempts"] == 1
    assert receiver.events() == []
    receiver.redirect_to = None
    r = client.post(f"/api/integrations/deliveries/{delivery['id']}/retry", headers=accounts.headers("supervisor"))
    assert r.status_code == 200 and r.json()["status"] == "pending"
    wait_for(lambda: receiver.events("call.started"), what="the retried delivery")
    again = client.post(f"/api/integrations/deliveries/{delivery['id']}/retry", headers=accounts.headers("admin"))
    assert again.status_code == 409
    audit = client.get(
        "/api/audit", params={"action": "integrations.delivery_retry"}, headers=accounts.headers("admin")
    )
    assert len(audit.json()["items"]) == 1
    assert len(_runs(client, accounts, hook)) == 2


def test_disabled_integrations_get_no_events(client: TestClient, accounts: Accounts, receiver: WebhookReceiver) -> None:
    hook = _create_hook(client, accounts, receiver.url + "/hooks/voxdesk")
    client.put(f"/api/integrations/{hook}", json={"enabled": False}, headers=accounts.headers("admin"))
    client.post("/api/calls", json={"channel": "webrtc"}, headers=accounts.headers("admin"))
    deliveries = client.get("/api/integrations/deliveries", headers=accounts.headers("admin")).json()
    assert deliveries["count"] == 0


def test_test_endpoint_sends_a_signed_event(client: TestClient, accounts: Accounts, receiver: WebhookReceiver) -> None:
    hook = _create_hook(client, accounts, receiver.url + "/hooks/voxdesk")
    r = client.post(f"/api/integrations/{hook}/test", headers=accounts.headers("admin"))
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["status"] == 204
    assert receiver.events("integration.test")
    receiver.stop()
    r = client.post(f"/api/integrations/{hook}/test", headers=accounts.headers("admin"))
    assert r.json()["ok"] is False and "could not be reached" in r.json()["error"]
