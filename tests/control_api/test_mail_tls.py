"""Account mail (invitations, password resets) over TLS for real: aiosmtpd with a private CA made in the test.

The same connection rule as the e-mail integration (``control_api.smtp``): implicit TLS, STARTTLS required and
offered only over TLS, the CA trusted only through the configured file, and no login over a plain connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import ValidationError

from config.settings import SMTPSettings
from control_api.services.mail import MailConfig, MailError, send
from control_api.smtp import Security
from tests.integrations.standins import free_port
from tests.integrations.test_notify import SMTP_PASSWORD as PASSWORD
from tests.integrations.test_notify import SMTP_USER as USER
from tests.integrations.test_notify import Mailbox, _authenticate
from tests.integrations.tls import LocalPki, make_pki

pytestmark = pytest.mark.integration


@pytest.fixture
def pki(tmp_path: Path) -> LocalPki:
    return make_pki(tmp_path / "pki")


def _server(pki: LocalPki, security: Security) -> tuple[Controller, Mailbox]:
    box = Mailbox()
    kwargs: dict[str, Any] = {"authenticator": _authenticate}
    if security == "tls":
        kwargs.update(ssl_context=pki.server_context(), auth_require_tls=False)  # every byte is encrypted anyway
    elif security == "starttls":
        kwargs.update(tls_context=pki.server_context(), require_starttls=True, auth_require_tls=True)
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller, box


@pytest.fixture(params=["tls", "starttls"])
def relay(request: pytest.FixtureRequest, pki: LocalPki) -> Iterator[tuple[Controller, Mailbox, Security]]:
    controller, box = _server(pki, request.param)
    try:
        yield controller, box, request.param
    finally:
        controller.stop()


def _config(tmp_path: Path, port: int, security: Security, ca_pem: str | None, **kw: Any) -> MailConfig:
    return MailConfig(
        host="127.0.0.1",
        port=port,
        sender="voxdesk@acme.example",
        outbox_dir=tmp_path / "outbox",
        security=security,
        ca_pem=ca_pem,
        timeout=5.0,
        **kw,
    )


def test_mail_is_delivered_over_tls_with_the_private_ca_and_the_login(
    tmp_path: Path, pki: LocalPki, relay: tuple[Controller, Mailbox, Security]
) -> None:
    controller, box, security = relay
    config = _config(tmp_path, controller.port, security, pki.ca_pem, username=USER, password=PASSWORD)
    asyncio.run(send(config, to="invitee@acme.example", subject="Your invitation", body="Set a password."))
    [(message, recipients, login)] = box.messages
    assert message["Subject"] == "Your invitation" and recipients == ["invitee@acme.example"]
    assert login == USER
    assert not (tmp_path / "outbox").exists()  # delivered, not written aside


def test_a_relay_whose_ca_is_not_trusted_is_refused(
    tmp_path: Path, relay: tuple[Controller, Mailbox, Security]
) -> None:
    controller, box, security = relay
    config = _config(tmp_path, controller.port, security, None)  # the system's CAs do not know the test CA
    with pytest.raises(MailError):
        asyncio.run(send(config, to="invitee@acme.example", subject="Hello", body="x"))
    assert box.messages == []


def test_starttls_is_required_when_asked_for(tmp_path: Path, pki: LocalPki) -> None:
    controller, box = _server(pki, "none")  # offers no STARTTLS
    try:
        config = _config(tmp_path, controller.port, "starttls", pki.ca_pem)
        with pytest.raises(MailError):
            asyncio.run(send(config, to="invitee@acme.example", subject="Hello", body="x"))
        assert box.messages == []
    finally:
        controller.stop()


def test_settings_refuse_a_login_over_a_plain_connection_and_read_the_older_flag(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="only sent over TLS"):
        SMTPSettings(host="relay.acme.example", username=USER)
    assert SMTPSettings.model_validate({"starttls": "true"}).security == "starttls"
    assert SMTPSettings.model_validate({"starttls": False}).security == "none"
    with pytest.raises(ValidationError, match="not a file"):
        SMTPSettings(ca_file=tmp_path / "missing.pem")
    ca = tmp_path / "ca.pem"
    ca.write_text(make_pki(tmp_path / "p").ca_pem, encoding="utf-8")
    settings = SMTPSettings(host="relay.acme.example", security="tls", ca_file=ca, username=USER)
    assert settings.ca_file == ca and settings.security == "tls"
