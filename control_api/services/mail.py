"""Outgoing mail (invitations, password resets) over SMTP, or into an outbox folder when no host is set."""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import structlog

from control_api.smtp import Security, send_message

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class MailConfig:
    """Where mail goes.

    Attributes:
        host: SMTP host; None writes each message to ``outbox_dir`` instead.
        port: SMTP port.
        username: SMTP login (optional).
        password: SMTP password (optional).
        security: ``starttls``, ``tls`` (implicit, port 465) or ``none``; a login is only sent over TLS.
        ca_pem: PEM certificates of the CA to trust instead of the system's (a relay with a private CA).
        sender: From address.
        outbox_dir: Folder for ``.eml`` files when no host is configured.
        timeout: Seconds before an SMTP conversation is abandoned.

    """

    host: str | None
    port: int
    sender: str
    outbox_dir: Path
    username: str | None = None
    password: str | None = None
    security: Security = "none"
    ca_pem: str | None = None
    timeout: float = 10.0


class MailError(Exception):
    """The message could not be delivered to the SMTP server."""


def build_message(config: MailConfig, *, to: str, subject: str, body: str) -> EmailMessage:
    """A plain-text message from ``config.sender`` to ``to``."""
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="voxdesk.local")
    message.set_content(body)
    return message


def _send_smtp(config: MailConfig, message: EmailMessage) -> None:
    assert config.host is not None
    send_message(
        message,
        host=config.host,
        port=config.port,
        security=config.security,
        timeout=config.timeout,
        ca_pem=config.ca_pem,
        username=config.username,
        password=config.password,
    )


def _write_outbox(config: MailConfig, message: EmailMessage) -> Path:
    config.outbox_dir.mkdir(parents=True, exist_ok=True)
    name = str(message["Message-ID"]).strip("<>").replace("@", "_").replace("/", "_")
    path = config.outbox_dir / f"{name}.eml"
    path.write_bytes(bytes(message))
    return path


async def send(config: MailConfig, *, to: str, subject: str, body: str) -> None:
    """Send one message; raises ``MailError`` when the SMTP server refuses or cannot be reached."""
    message = build_message(config, to=to, subject=subject, body=body)
    if config.host is None:
        path = await asyncio.to_thread(_write_outbox, config, message)
        # The file name is a message id: no address or token in the log line.
        log.info("mail_written_to_outbox", file=str(path), subject=subject)
        return
    try:
        await asyncio.to_thread(_send_smtp, config, message)
    except (OSError, smtplib.SMTPException) as err:
        log.warning("mail_not_sent", error_type=type(err).__name__, subject=subject)
        raise MailError(type(err).__name__) from err
    log.info("mail_sent", subject=subject)
