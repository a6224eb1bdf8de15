"""Slack and e-mail notifications: a Slack stand-in checking its contract, a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import threading
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from fastapi.testclient import TestClient

from control_api.integrations import events as ev
from control_api.integrations import outbox
from tests.control_api.conftest import Accounts, sign_in_everyone
from tests.integrations.conftest import make_client, wait_for
from tests.integrations.standins import SlackStandIn, free_port
from tests.integrations.tls import LocalPki, make_pki

pytestmark = pytest.mark.integration

SMTP_USER, SMTP_PASSWORD = "alerts@voxdesk.example", "smtp-pass-4a7c"


class Mailbox:
    """An aiosmtpd handler that keeps every message and the login each came with."""

    def __init__(self) -> None:
        self.messages: list[tuple[Message, list[str], str | None]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        with self.lock:
            self.messages.append((email.message_from_bytes(envelope.content), list(envelope.rcpt_tos), login))
        return "250 Message accepted for delivery"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (SMTP_USER, SMTP_PASSWORD)
    return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


@pytest.fixture
def pki(tmp_path: Path) -> LocalPki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def smtp(pki: LocalPki) -> Iterator[tuple[Controller, Mailbox]]:
    """A 587-style server: STARTTLS required before anything else, AUTH offered only over TLS."""
    box = Mailbox()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=_authenticate,
        tls_context=pki.server_context(),
        require_starttls=True,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield controller, box
    finally:
        controller.stop()


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    server = SlackStandIn()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _create(client: TestClient, accounts: Accounts, body: dict[str, Any]) -> str:
    r = client.post("/api/integrations", json=body, headers=accounts.headers("admin"))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _slack(client: TestClient, accounts: Accounts, url: str, events: list[str] | None = None) -> str:
    config: dict[str, Any] = {"events": events} if events else {}
    return _create(
        client, accounts, {"name": "ops-slack", "type": "slack", "config": config, "secrets": {"webhook_url": url}}
    )


def _mail(
    client: TestClient,
    accounts: Accounts,
    port: int,
    password: str = SMTP_PASSWORD,
    events: list[str] | None = None,
    *,
    ca_pem: str | None = None,
    security: str = "starttls",
) -> str:
    body = {
        "name": "ops-mail",
        "type": "email",
        "config": {
            "host": "127.0.0.1",
            "port": port,
            "security": security,
            **({"ca_pem": ca_pem} if ca_pem else {}),
            "sender": "voxdesk@acme.example",
            "recipients": ["oncall@acme.example", "lead@acme.example"],
            **({"events": events} if events else {}),
        },
        "secrets": {"username": SMTP_USER, "password": password},
    }
    return _create(client, accounts, body)


def _emit(client: TestClient, event: str, payload: dict[str, Any], key: str) -> None:
    sessions = client.app.state.voxdesk.sessions  # type: ignore[attr-defined]

    async def run() -> None:
        async with sessions() as session:
            await outbox.emit(session, event, payload, key=key)
            await session.commit()

    assert client.portal is not None
    client.portal.call(run)


def _deliveries(client: TestClient, accounts: Accounts, status: str) -> list[dict[str, Any]]:
    r = client.get("/api/integrations/deliveries", params={"status": status}, headers=accounts.headers("admin"))
    return list(r.json()["data"])


WAITING = {
    "handoff_id": "h-1",
    "call_id": "c-42",
    "waited_secs": 185,
    "threshold_secs": 120,
    "reason": "billing dispute",
    "queue": "billing",
    "requested_at": "2026-12-04T18:00:00+00:00",
}


def test_slack_gets_a_handoff_waiting_alert_per_its_contract(
    client: TestClient, accounts: Accounts, slack: SlackStandIn
) -> None:
    integration = _slack(client, accounts, slack.webhook_url)
    listed = client.get("/api/integrations", headers=accounts.headers("admin")).json()["data"][0]
    assert listed["config"]["events"] == list(ev.ALERT_EVENTS) and listed["secrets_set"] == ["webhook_url"]
    assert slack.PATH not in str(listed)  # the webhook URL is a secret: only its origin is shown
    _emit(client, ev.HANDOFF_WAITING, WAITING, "h-1")
    _emit(client, ev.CALL_STARTED, {"call_id": "c-43"}, "c-43")  # not subscribed
    [message] = wait_for(lambda: slack.messages, what="the Slack message")
    assert slack.violations == []
    assert message["text"].startswith("A caller is waiting for a human agent")
    assert "*Waiting (s):* 185" in message["blocks"][1]["text"]["text"]
    assert message["blocks"][2]["text"]["text"] == "<http://127.0.0.1:8000/console#/calls/c-42|Open in Voxdesk>"
    runs = client.get(f"/api/integrations/{integration}/runs", headers=accounts.headers("admin")).json()["data"]
    assert [(r["status"], r["response_status"]) for r in runs] == [("succeeded", 200)]
    assert "abcdefghijkl" not in str(runs)


def test_links_follow_the_public_url_in_force_at_each_delivery(
    client: TestClient, accounts: Accounts, slack: SlackStandIn
) -> None:
    """The console's URL is not captured when the integration is saved: a changed public URL (settings reloaded:
    ``state.settings`` replaced, as a restart with a new ``VOXDESK_SERVER__PUBLIC_URL`` does) reaches the next
    notification; a ``console_url`` set on the integration is an override that stays."""
    _slack(client, accounts, slack.webhook_url)
    listed = client.get("/api/integrations", headers=accounts.headers("admin")).json()["data"][0]
    assert "console_url" not in listed["config"]
    _emit(client, ev.HANDOFF_WAITING, WAITING, "h-1")
    wait_for(lambda: slack.messages, what="the first Slack message")
    state = client.app.state.voxdesk  # type: ignore[attr-defined]
    server = state.settings.server.model_copy(update={"public_url": "https://desk.acme.example/"})
    state.settings = state.settings.model_copy(update={"server": server})
    _emit(client, ev.HANDOFF_WAITING, {**WAITING, "handoff_id": "h-2", "call_id": "c-43"}, "h-2")
    first, second = wait_for(lambda: slack.messages if len(slack.messages) == 2 else None, what="the second")
    assert first["blocks"][2]["text"]["text"] == "<http://127.0.0.1:8000/console#/calls/c-42|Open in Voxdesk>"
    assert second["blocks"][2]["text"]["text"] == "<https://desk.acme.example/console#/calls/c-43|Open in Voxdesk>"
    # An explicit console_url on the integration wins over the server's.
    integration = listed["id"]
    r = client.put(
        f"/api/integrations/{integration}",
        json={"config": {**listed["config"], "console_url": "https://helpdesk-links.example"}},
        headers=accounts.headers("admin"),
    )
    assert r.status_code == 200, r.text
    _emit(client, ev.HANDOFF_WAITING, {**WAITING, "handoff_id": "h-3", "call_id": "c-44"}, "h-3")
    third = wait_for(lambda: slack.messages[2] if len(slack.messages) == 3 else None, what="the third")
    assert third["blocks"][2]["text"]["text"] == "<https://helpdesk-links.example/console#/calls/c-44|Open in Voxdesk>"
    assert slack.violations == []


def test_slack_rate_limit_is_retried_after_its_wait(
    client: TestClient, accounts: Accounts, slack: SlackStandIn
) -> None:
    slack.mode = "rate_limited_once"
    _slack(client, accounts, slack.webhook_url)
    _emit(client, ev.HANDOFF_WAITING, WAITING, "h-1")
    wait_for(lambda: slack.messages, what="the message after the 429")
    assert slack.rate_limited == 1 and len(slack.messages) == 1


def test_a_dead_slack_webhook_alerts_by_mail_once_per_outage(
    client: TestClient, accounts: Accounts, slack: SlackStandIn, smtp: tuple[Controller, Mailbox], pki: LocalPki
) -> None:
    controller, mailbox = smtp
    _slack(client, accounts, slack.url + "/services/T0001/B0001/revokedrevokedrevoked", ["handoff.waiting"])
    _mail(client, accounts, controller.port, ca_pem=pki.ca_pem, events=["integration.failing"])
    for n in range(3):
        _emit(client, ev.HANDOFF_WAITING, {**WAITING, "handoff_id": f"h-{n}"}, f"h-{n}")
    wait_for(lambda: len(_deliveries(client, accounts, "dead")) == 3, what="three dead Slack deliveries")
    dead = _deliveries(client, accounts, "dead")
    assert all("(no_service)" in d["last_error"] and d["attempts"] == 1 for d in dead)  # 404: not retried
    wait_for(lambda: mailbox.messages, what="the failing alert")
    wait_for(lambda: not _deliveries(client, accounts, "pending"), what="nothing left to send")
    [(message, recipients, login)] = mailbox.messages  # three dead deliveries, one outage, one alert
    assert message["Subject"] == "[Voxdesk] An integration is failing"
    assert recipients == ["oncall@acme.example", "lead@acme.example"] and login == SMTP_USER
    body = str(message.get_payload())
    assert "Integration: ops-slack" in body and "Reason: dead_letter" in body and "no_service" in body
    assert "http://127.0.0.1:8000/console#/integrations" in body


def test_mail_with_a_wrong_password_is_dead_lettered(
    client: TestClient, accounts: Accounts, smtp: tuple[Controller, Mailbox], pki: LocalPki
) -> None:
    controller, mailbox = smtp
    _mail(client, accounts, controller.port, ca_pem=pki.ca_pem, password="wrong")
    _emit(client, ev.HANDOFF_WAITING, WAITING, "h-1")
    [dead] = wait_for(lambda: _deliveries(client, accounts, "dead"), what="the refused mail")
    assert "refused the username or password (535)" in dead["last_error"] and mailbox.messages == []


def test_test_endpoints_send_a_message(
    client: TestClient, accounts: Accounts, slack: SlackStandIn, smtp: tuple[Controller, Mailbox], pki: LocalPki
) -> None:
    controller, mailbox = smtp
    for integration in (
        _slack(client, accounts, slack.webhook_url),
        _mail(client, accounts, controller.port, ca_pem=pki.ca_pem),
    ):
        r = client.post(f"/api/integrations/{integration}/test", headers=accounts.headers("admin"))
        assert r.json()["ok"] is True, r.text
    assert slack.messages[0]["text"].startswith("Voxdesk test notification") and slack.violations == []
    assert mailbox.messages[0][0]["Subject"] == "[Voxdesk] Voxdesk test notification"


def test_notification_destinations_pass_the_ssrf_rule(tmp_path: Any) -> None:
    with make_client(tmp_path, allowed_private_hosts="") as client:
        admin = sign_in_everyone(client).headers("admin")
        slack = {"name": "s", "type": "slack", "secrets": {"webhook_url": "http://169.254.169.254/services/x"}}
        mail = {
            "name": "m",
            "type": "email",
            "config": {"host": "localhost", "sender": "a@b.example", "recipients": ["c@d.example"]},
        }
        for body in (slack, mail):
            r = client.post("/api/integrations", json=body, headers=admin)
            assert r.status_code == 422 and r.json()["type"].endswith("/destination-refused"), r.text


def test_an_open_breaker_alerts_once_per_outage(
    client: TestClient, accounts: Accounts, slack: SlackStandIn, smtp: tuple[Controller, Mailbox], pki: LocalPki
) -> None:
    controller, mailbox = smtp
    integration = _slack(client, accounts, slack.webhook_url, ["handoff.waiting"])
    _mail(client, accounts, controller.port, ca_pem=pki.ca_pem, events=["integration.failing"])

    def failing_since() -> str | None:
        rows = client.get("/api/integrations", headers=accounts.headers("admin")).json()["data"]
        return next(r["failing_since"] for r in rows if r["id"] == integration)

    for outage in (1, 2):
        slack.stop()  # Slack unreachable: retried, until the breaker (3 failures in a row) opens
        _emit(client, ev.HANDOFF_WAITING, {**WAITING, "handoff_id": f"h-{outage}"}, f"h-{outage}")
        wait_for(lambda n=outage: len(mailbox.messages) == n, what=f"the alert of outage {outage}")  # type: ignore[misc]
        assert failing_since() is not None
        body = mailbox.messages[-1][0].get_payload(decode=True).decode()
        assert "Reason: breaker_open" in body and "could not be reached" in body
        slack.start()
        wait_for(lambda n=outage: len(slack.messages) == n, what="the message once Slack is back")  # type: ignore[misc]
        wait_for(lambda: failing_since() is None, what="the outage to end")
    assert len(mailbox.messages) == 2  # one alert per outage, not one per failed attempt
    assert slack.violations == []
