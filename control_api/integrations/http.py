"""HTTP to integrations, behind the SSRF rule of ``knowledge.fetch`` (one implementation of that rule).

Every request resolves its host and refuses private, loopback, link-local and reserved answers unless
the host is in ``integrations.allowed_private_hosts``; the connection goes to the checked address (the
host name is kept for ``Host`` and TLS), so a DNS answer that changes between check and send cannot
redirect it. Redirects are never followed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from control_api.integrations.errors import ConfigError, DeliveryError, DestinationRefusedError
from knowledge.errors import FetchError
from knowledge.fetch import resolve_checked

USER_AGENT = "Voxdesk-Integrations/0.1"


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """An HTTP answer of an integration."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    latency_ms: float

    def json(self) -> Any:
        """The body parsed as JSON (None when it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def check_url(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of an integration URL.

    Raises:
        ConfigError: Not an http(s) URL with a host, or it carries credentials.

    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise ConfigError("Integration URLs must start with http:// or https://.")
    if not parts.hostname:
        raise ConfigError("The integration URL has no host name.")
    if parts.username or parts.password:
        raise ConfigError("Put credentials in the integration's secrets, not in its URL.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConfigError("The integration URL's port is not valid.") from None
    return parts.scheme, parts.hostname.lower(), port


def redact_url(url: str) -> str:
    """``url`` without its query and fragment (they may carry tokens), for run records."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))


class GuardedHttp:
    """An HTTP client for integrations with the SSRF rule applied to every request.

    Args:
        allowed_private_hosts: Host names (lower case) that may resolve to private addresses.
        timeout_secs: Timeout of one request (connect, read, write and pool each).
        transport: An httpx transport (tests); the default opens real connections.

    """

    def __init__(
        self,
        *,
        allowed_private_hosts: Collection[str] = (),
        timeout_secs: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._allowed = frozenset(h.lower() for h in allowed_private_hosts)
        self._timeout = timeout_secs
        self._client = httpx.AsyncClient(timeout=timeout_secs, follow_redirects=False, transport=transport)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def check_destination(self, url: str) -> None:
        """Refuse ``url`` when its host resolves to an address integrations may not reach.

        Raises:
            ConfigError: The URL is malformed.
            DestinationRefusedError: The host resolves to a private address, or does not resolve.

        """
        parts = urlsplit(url.strip())
        if parts.scheme == "smtp" and parts.hostname:  # an SMTP server (e-mail notifications)
            await self.resolve(parts.hostname.lower(), parts.port or 25)
            return
        _, host, port = check_url(url)
        await self._resolve(host, port)

    @property
    def allowed_private_hosts(self) -> frozenset[str]:
        """The hosts exempt from the private-address rule."""
        return self._allowed

    @property
    def timeout_secs(self) -> float:
        """The timeout of one request (other protocols' connections use it too)."""
        return self._timeout

    async def resolve(self, host: str, port: int) -> str:
        """The address to connect to for ``host`` (a non-HTTP destination), checked against the SSRF rule.

        Raises:
            DestinationRefusedError: The host resolves to a private address, or does not resolve.

        """
        return await self._resolve(host.lower(), port)

    async def _resolve(self, host: str, port: int) -> str:
        try:
            return await resolve_checked(host, port, allow_private=host in self._allowed)
        except FetchError as exc:
            raise DestinationRefusedError(
                f"{exc.message} Add the host to VOXDESK_INTEGRATIONS__ALLOWED_PRIVATE_HOSTS to allow it.",
                retryable=exc.retryable,
            ) from None

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> HttpAnswer:
        """Send one request (no redirects followed) and read the whole answer.

        Raises:
            ConfigError: The URL is malformed.
            DestinationRefusedError: The destination is not allowed (checked at send time, DNS answers change).
            DeliveryError: Unreachable (retryable) or timed out after sending (retryable and ambiguous).

        """
        scheme, host, port = check_url(url)
        address = await self._resolve(host, port)
        parts = urlsplit(url.strip())
        ip_host = f"[{address}]" if ":" in address else address
        target = urlunsplit((scheme, f"{ip_host}:{port}", parts.path or "/", parts.query, ""))
        sent_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        sent_headers["Host"] = host if parts.port is None else f"{host}:{parts.port}"
        request = self._client.build_request(
            method,
            target,
            headers=sent_headers,
            content=content,
            params=params,
            extensions={"sni_hostname": host} if scheme == "https" else {},
        )
        started = time.perf_counter()
        try:
            response = await self._client.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached the system: sending again cannot duplicate anything.
            raise DeliveryError(
                f"The destination could not be reached ({type(exc).__name__}).", retryable=True
            ) from None
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"The request failed after it was sent ({type(exc).__name__}).", retryable=True, ambiguous=True
            ) from None
        latency_ms = (time.perf_counter() - started) * 1000.0
        return HttpAnswer(response.status_code, dict(response.headers), response.content, latency_ms)
