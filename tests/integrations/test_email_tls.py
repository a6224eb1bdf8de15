"""E-mail over TLS for real: aiosmtpd with a certificate from a private CA made in the test (``cryptography``).

STARTTLS on a 587-style server (TLS required before anything, AUTH offered only over TLS) is covered by
test_notify.py's fixture; here: implicit TLS on a 465-style server, the CA trusted only through the integration's
``ca_pem``, a server that offers no TLS when TLS is required, and logins never sent in the clear.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from control_api.integrations import events as ev
from tests.control_api.conftest import Accounts
from tests.integrations.conftest import wait_for
from tests.integrations.standins import free_port
from tests.integrations.test_notify import SMTP_USER, WAITING, Mailbox, _authenticate, _deliveries, _emit, _mail, pki
from tests.integrations.tls import LocalPki

pytestmark = pytest.mark.integration
__all__ = ["pki"]  # the fixture, shared with test_notify.py


def _runs(client: TestClient, accounts: Accounts, integration: str) -> list[dict[str, Any]]:
    r = client.get(f"/api/integrations/{integration}/runs", headers=accounts.headers("admin"))
    return list(r.json()["data"])


@pytest.fixture
def implicit_tls(pki: LocalPki) -> Iterator[tuple[Controller, Mailbox]]:
    """A 465-style server: TLS from the first byte.

    aiosmtpd 1.4.6 counts only STARTTLS as TLS for ``auth_require_tls``, so AUTH is offered here by turning that
    off: every byte of this server's connections is encrypted anyway.
    """
    box = Mailbox()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=_authenticate,
        ssl_context=pki.server_context(),
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield controller, box
    finally:
        controller.stop()


@pytest.fixture
def plain() -> Iterator[tuple[Controller, Mailbox]]:
    """A server with no TLS at all (and so no AUTH on offer)."""
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, box
    finally:
        controller.stop()


def test_implicit_tls_delivers_with_the_private_ca_and_logs_in_over_it(
    client: TestClient, accounts: Accounts, implicit_tls: tuple[Controller, Mailbox], pki: LocalPki
) -> None:
    controller, mailbox = implicit_tls
    integration = _mail(client, accounts, controller.port, ca_pem=pki.ca_pem, security="tls")
    _emit(client, ev.HANDOFF_WAITING, WAITING, "h-1")
    [(message, recipients, login)] = wait_for(lambda: mailbox.messages, what="the mail over implicit TLS")
    assert message["Subject"] == "[Voxdesk] A caller is waiting for a human agent" and login == SMTP_USER
    assert recipients == ["oncall@acme.example", "lead@acme.example"]
    [run] = _runs(client, accounts, integration)
    assert run["status"] == "succeeded" and run["response_status"] == 250


def test_without_the_ca_the_certificate_is_refused_with_a_clear_error(
    client: TestClient, accounts: Accounts, implicit_tls: tuple[Controller, Mailbox]
) -> None:
    controller, mailbox = implicit_tls
    integration = _mail(client, accounts, controller.port, security="tls")  # system CAs only
    _emit(client, ev.HANDOFF_WAITING, WAITING, "h-1")
    [dead] = wait_for(lambda: _deliveries(client, accounts, "dead"), what="the refused certificate")
    assert "certificate was not trusted" in dead["last_error"] and "ca_pem" in dead["last_error"]
    assert mailbox.messages == []
    [run] = _runs(client, accounts, integration)
    assert run["status"] == "failed" and "certificate was not trusted" in run["error"]


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_a_plain_server_when_tls_is_required_is_a_clear_error_in_the_run(
    client: TestClient, accounts: Accounts, plain: tuple[Controller, Mailbox], pki: LocalPki, security: str
) -> None:
    controller, mailbox = plain
    integration = _mail(client, accounts, controller.port, ca_pem=pki.ca_pem, security=security)
    _emit(client, ev.HANDOFF_WAITING, WAITING, "h-1")
    [dead] = wait_for(lambda: _deliveries(client, accounts, "dead"), what="the delivery refused for want of TLS")
    expected = "does not offer STARTTLS" if security == "starttls" else "TLS with the smtp server failed"
    assert expected in dead["last_error"], dead["last_error"]
    assert mailbox.messages == []  # nothing was sent in the clear, the password least of all
    [run] = _runs(client, accounts, integration)
    assert run["status"] == "failed" and expected in run["error"]
    assert client.get("/health/live").status_code == 200  # recorded, not a crash


def test_a_login_is_never_configured_without_tls_and_a_bad_ca_is_refused(
    client: TestClient, accounts: Accounts, pki: LocalPki
) -> None:
    base = {"host": "127.0.0.1", "port": 2525, "sender": "v@acme.example", "recipients": ["a@acme.example"]}
    admin = accounts.headers("admin")
    body = {"name": "m", "type": "email", "config": {**base, "security": "none"}, "secrets": {"username": "u"}}
    r = client.post("/api/integrations", json=body, headers=admin)
    assert r.status_code == 422 and "only sent over TLS" in r.json()["detail"]
    bad = {"name": "m", "type": "email", "config": {**base, "ca_pem": "-----BEGIN CERTIFICATE-----\nnope\n"}}
    r = client.post("/api/integrations", json=bad, headers=admin)
    assert r.status_code == 422 and "ca_pem" in r.json()["detail"]
    good = {"name": "m", "type": "email", "config": {**base, "ca_pem": pki.ca_pem}}
    assert client.post("/api/integrations", json=good, headers=admin).status_code == 201
