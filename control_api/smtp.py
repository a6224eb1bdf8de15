"""One SMTP conversation over ``smtplib``: the TLS rule shared by the e-mail integration and the account mail.

``security``: ``starttls`` (upgrade after EHLO; refused when the server does not offer it), ``tls`` (implicit TLS
from the first byte, port 465) or ``none`` (a local relay only). Certificates are always verified and the host
name always checked, against the system's CAs or, when ``ca_pem`` is given, against that CA only. A login is only
ever sent over TLS. Blocking: callers run it in a worker thread.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from typing import Literal

__all__ = ["SECURITY", "Security", "TlsRequiredError", "send_message", "tls_context"]

Security = Literal["starttls", "tls", "none"]
SECURITY: tuple[Security, ...] = ("starttls", "tls", "none")


class TlsRequiredError(smtplib.SMTPException):
    """The connection would not be encrypted as the configuration requires."""


def tls_context(ca_pem: str | None) -> ssl.SSLContext:
    """A verifying client TLS context: the system's CAs, or only ``ca_pem``'s certificates when given."""
    return ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()


class _Pinned:
    """Connects to ``_pinned_address`` (when set) while TLS checks the certificate against the host name."""

    _pinned_address: str | None = None
    _host: str  # smtplib's own attribute (not in its type stubs): the name TLS checks the certificate against

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return super()._get_socket(self._pinned_address or host, port, timeout)  # type: ignore[misc, no-any-return]


class _SMTP(_Pinned, smtplib.SMTP):
    pass


class _SMTPSSL(_Pinned, smtplib.SMTP_SSL):
    pass


def send_message(
    message: EmailMessage,
    *,
    host: str,
    port: int,
    security: Security,
    timeout: float,
    ca_pem: str | None = None,
    username: str | None = None,
    password: str | None = None,
    address: str | None = None,
) -> None:
    """Deliver ``message`` to the SMTP server at ``host:port``.

    Args:
        message: The message (its own From/To headers say the envelope).
        host: The server's name (what its certificate must name).
        port: The server's port.
        security: ``starttls``, ``tls`` or ``none``.
        timeout: Seconds before the conversation is abandoned.
        ca_pem: PEM certificates of the CA to trust instead of the system's.
        username: Login (sent only over TLS).
        password: Password for ``username``.
        address: The IP address to connect to instead of resolving ``host`` again (the SSRF rule's checked one).

    Raises:
        TlsRequiredError: STARTTLS is required and not offered, or a login would cross an unencrypted connection.
        OSError | smtplib.SMTPException: The server could not be reached or refused.
    """
    if username and security == "none":
        raise TlsRequiredError("A login is only sent over TLS.")
    context = tls_context(ca_pem)
    smtp = _SMTPSSL(timeout=timeout, context=context) if security == "tls" else _SMTP(timeout=timeout)
    smtp._pinned_address = address
    # smtplib takes TLS's server_hostname from ``_host``, which only its constructor sets (and constructing with a
    # host would connect before the pinned address is known).
    smtp._host = host
    with smtp:
        smtp.connect(host, port)
        if security == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise TlsRequiredError("The SMTP server does not offer STARTTLS; security 'starttls' needs it.")
            smtp.starttls(context=context)
        if username:
            smtp.login(username, password or "")
        smtp.send_message(message)
