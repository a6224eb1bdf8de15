"""One exception tree for deliveries to external systems, translated once at the HTTP edge."""

from __future__ import annotations


class IntegrationError(Exception):
    """Base class of integration failures.

    Messages are written for the console's operator: they never contain secrets or caller data.

    Args:
        message: What went wrong and what to do about it.
        retryable: Whether sending the same delivery again may succeed.
        ambiguous: The request may have reached the system (a timeout after sending, a 5xx): before
            creating anything again, look for what the earlier attempt may have created.
        status: The HTTP status the system answered, when it answered.
        retry_after_secs: How long the system asked us to wait (``Retry-After``), when it said.

    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        ambiguous: bool = False,
        status: int | None = None,
        retry_after_secs: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable
        self.ambiguous = ambiguous
        self.status = status
        self.retry_after_secs = retry_after_secs


class ConfigError(IntegrationError):
    """An integration's config or secrets are not valid for its kind."""


class DestinationRefusedError(IntegrationError):
    """The destination resolves to an address integrations may not reach (SSRF policy)."""


class DeliveryError(IntegrationError):
    """A delivery failed (unreachable, timed out, or refused by the system)."""


def from_status(status: int, *, what: str, retry_after: str | None = None) -> DeliveryError:
    """The error for an HTTP error answer: 408/425/429/5xx are retried, other 4xx are not.

    Args:
        status: The HTTP status (≥300).
        what: The system's name for the message (``"The webhook receiver"``).
        retry_after: The ``Retry-After`` header, if any (seconds form only).

    """
    delay = float(retry_after) if retry_after and retry_after.strip().isdigit() else None
    if status >= 500:
        return DeliveryError(f"{what} answered {status}.", retryable=True, ambiguous=True, status=status)
    if status in (408, 425, 429):
        return DeliveryError(f"{what} answered {status}.", retryable=True, status=status, retry_after_secs=delay)
    if 300 <= status < 400:
        return DeliveryError(f"{what} answered a redirect ({status}); redirects are not followed.", status=status)
    return DeliveryError(f"{what} refused the request ({status}).", status=status)
