"""E-mail notifications over SMTP (the standard library's ``smtplib``, run in a worker thread).

The SMTP host passes the SSRF rule like every other destination: it is resolved and checked when the
integration is saved and again at each send, and the connection goes to the checked address (the host name
is kept for TLS certificate checks). ``security``: ``starttls`` (default, port 587), ``tls`` (implicit TLS,
port 465) or ``none`` (a local relay only, and then without a login: credentials only ever cross TLS).
Certificates are always verified, against the system's CAs or, when ``ca_pem`` is set, against that CA only
(an on-premise relay with a private CA); the host name is always checked.
Each message's ``Message-ID`` comes from its outbox delivery, the same on every retry (receivers can
de-duplicate).
Config: ``host``, ``port``, ``security``, ``sender``, ``recipients``, ``events`` (default: the alert events),
``ca_pem`` (PEM certificates of the CA to trust instead of the system's), ``console_url``. Secrets
(optional): ``username``, ``password``.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formataddr
from typing import Any

from control_api.integrations.base import Job, Receipt
from control_api.integrations.errors import ConfigError, DeliveryError
from control_api.integrations.http import GuardedHttp
from control_api.integrations.notify import check_console_url, check_events, notice
from control_api.smtp import SECURITY, TlsRequiredError, send_message, tls_context

_DEFAULT_PORT = {"starttls": 587, "tls": 465, "none": 25}
WHAT = "The SMTP server"
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
MAX_CA_PEM = 20_000


def _ca_pem(value: object) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > MAX_CA_PEM or "-----BEGIN CERTIFICATE-----" not in value:
        raise ConfigError(f"config.ca_pem must be PEM certificates (at most {MAX_CA_PEM} characters).")
    try:
        tls_context(value)
    except (ssl.SSLError, ValueError):
        raise ConfigError("config.ca_pem holds no certificate that can be loaded.") from None
    return value.strip() + "\n"


def _address(value: object, field: str) -> str:
    if not isinstance(value, str) or "@" not in value or any(c in value for c in "\r\n,;<>") or len(value) > 320:
        raise ConfigError(f"config.{field} must be one e-mail address.")
    return value.strip()


def _send(config: dict[str, Any], secrets: dict[str, str], address: str, message: EmailMessage, timeout: float) -> None:
    send_message(
        message,
        host=str(config["host"]),
        port=int(config["port"]),
        security=config["security"],
        timeout=timeout,
        ca_pem=config.get("ca_pem"),
        username=secrets.get("username") or None,
        password=secrets.get("password"),
        address=address,  # the connection goes to the address the SSRF rule checked; TLS checks the host name
    )


def _failure(exc: BaseException) -> DeliveryError:
    if isinstance(exc, TlsRequiredError):
        return DeliveryError(str(exc))
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DeliveryError(
            f"{WHAT}'s certificate was not trusted ({exc.verify_message}); set config.ca_pem to its CA if it is "
            "a private one."
        )
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return DeliveryError(f"{WHAT} refused the username or password ({exc.smtp_code}).", status=exc.smtp_code)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return DeliveryError(f"{WHAT} refused every recipient.")
    if isinstance(exc, smtplib.SMTPResponseException):
        # 4xx replies are transient by RFC 5321; 5xx are permanent.
        transient = 400 <= exc.smtp_code < 500
        verb = "deferred" if transient else "refused"
        return DeliveryError(f"{WHAT} {verb} the message ({exc.smtp_code}).", retryable=transient, status=exc.smtp_code)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryError(f"{WHAT} does not support what the config asks (STARTTLS or AUTH).")
    if isinstance(exc, ssl.SSLError):
        return DeliveryError(
            f"TLS with {WHAT.lower()} failed ({exc.reason or type(exc).__name__}); check security "
            "(implicit 'tls' needs a TLS port such as 465) and the certificate."
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return DeliveryError(f"{WHAT} closed the connection.", retryable=True, ambiguous=True)
    return DeliveryError(f"{WHAT} could not be reached ({type(exc).__name__}).", retryable=True)


class EmailConnector:
    """The ``email`` kind."""

    kind: str = "email"
    secret_fields: tuple[str, ...] = ("username", "password")

    def check(self, config: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
        """Validate the SMTP server, addresses, events and ``console_url``."""
        known = {"host", "port", "security", "sender", "recipients", "events", "ca_pem", "console_url"}
        unknown = set(config) - known
        if unknown:
            raise ConfigError(f"Unknown e-mail config fields: {', '.join(sorted(unknown))}.")
        host = config.get("host")
        if not isinstance(host, str) or not _HOST.fullmatch(host.strip()):
            raise ConfigError("config.host is the SMTP server's host name.")
        security = config.get("security", "starttls")
        if security not in SECURITY:
            raise ConfigError(f"config.security must be one of: {', '.join(SECURITY)}.")
        port = config.get("port", _DEFAULT_PORT[security])
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise ConfigError("config.port must be a port number.")
        recipients = config.get("recipients")
        if not isinstance(recipients, list) or not recipients or len(recipients) > 50:
            raise ConfigError("config.recipients must be a list of 1 to 50 e-mail addresses.")
        if secrets.get("password") and not secrets.get("username"):
            raise ConfigError("secrets.password needs secrets.username.")
        if secrets.get("username") and security == "none":
            raise ConfigError("A login is only sent over TLS: use security 'starttls' or 'tls' with a username.")
        out: dict[str, Any] = {
            "host": host.strip().lower(),
            "port": port,
            "security": security,
            "sender": _address(config.get("sender"), "sender"),
            "recipients": [_address(r, "recipients") for r in recipients],
            "events": check_events(config, "an e-mail integration"),
        }
        ca_pem = _ca_pem(config.get("ca_pem"))
        if ca_pem:
            out["ca_pem"] = ca_pem
        console = check_console_url(config)
        if console:
            out["console_url"] = console
        return out

    def destination(self, config: dict[str, Any]) -> str:
        """``smtp://host:port`` (checked against the SSRF rule)."""
        return f"smtp://{config['host']}:{config['port']}"

    def subscribes(self, config: dict[str, Any], event: str) -> bool:
        """The events this integration picked."""
        return event in (config.get("events") or ())

    async def _deliver(
        self, http: GuardedHttp, config: dict[str, Any], secrets: dict[str, str], message: EmailMessage, event: str
    ) -> Receipt:
        address = await http.resolve(str(config["host"]), int(config["port"]))
        started = time.perf_counter()
        try:
            await asyncio.to_thread(_send, config, secrets, address, message, http.timeout_secs)
        except (OSError, smtplib.SMTPException) as exc:
            raise _failure(exc) from None
        latency_ms = (time.perf_counter() - started) * 1000.0
        summary = {"smtp": self.destination(config), "event": event, "recipients": len(config["recipients"])}
        return Receipt(status=250, latency_ms=latency_ms, summary=summary)

    @staticmethod
    def _message(config: dict[str, Any], event: str, payload: dict[str, Any], message_id: str) -> EmailMessage:
        note = notice(event, payload, config.get("console_url"))
        message = EmailMessage()
        message["From"] = formataddr(("Voxdesk", str(config["sender"])))
        message["To"] = ", ".join(config["recipients"])
        message["Subject"] = f"[Voxdesk] {note.title}"
        message["Message-ID"] = f"<{message_id}@voxdesk>"
        message.set_content(note.plain())
        return message

    async def deliver(self, http: GuardedHttp, job: Job) -> Receipt:
        """Mail the notice of the job's event to the recipients."""
        message = self._message(job.config, job.event, job.payload, job.delivery_id)
        return await self._deliver(http, job.config, job.secrets, message, job.event)

    async def test(self, http: GuardedHttp, config: dict[str, Any], secrets: dict[str, str]) -> Receipt:
        """Mail a test message."""
        message_id = "test-" + str(time.time_ns())
        message = self._message(
            config, "integration.test", {"message": "Voxdesk can send you notifications."}, message_id
        )
        return await self._deliver(http, config, secrets, message, "integration.test")
