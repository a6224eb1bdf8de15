"""Fetching web pages and sitemaps for import, with SSRF protection.

Every hop (the first request and each redirect) is checked: only ``http``/``https``, default or explicit
ports, and host names that resolve only to public addresses. Private, loopback, link-local, multicast,
reserved and unspecified addresses (IPv4 and IPv6, including IPv4-mapped IPv6) are refused unless
``allow_private`` is set. The connection goes to the address that was checked (the host name is kept for
the ``Host`` header and TLS), so a DNS answer that changes between check and connect cannot redirect it.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from knowledge.errors import FetchError

MAX_REDIRECTS = 5
MAX_SITEMAP_URLS = 50
_LOC = re.compile(r"<loc>\s*([^<\s]+)\s*</loc>", re.I)


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """A fetched resource."""

    url: str
    data: bytes
    content_type: str | None


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


async def resolve_checked(host: str, port: int, *, allow_private: bool) -> str:
    """Resolve ``host`` and return one address to connect to, refusing non-public ones.

    Raises:
        FetchError: The host does not resolve, or resolves to an address that is not allowed.

    """
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
        addresses = [literal]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise FetchError(f"The host name {host!r} could not be resolved.") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise FetchError(f"The host name {host!r} could not be resolved.")
    if not allow_private:
        for address in addresses:
            if not _is_public(address):
                raise FetchError(
                    f"Refused: {host!r} resolves to a private, loopback or reserved address ({address}). "
                    "Importing from internal addresses is disabled (knowledge.allow_private_urls).",
                )
    return str(addresses[0])


def _check_url(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError("Only http:// and https:// URLs can be imported.")
    if not parts.hostname:
        raise FetchError("The URL has no host name.")
    if parts.username or parts.password:
        raise FetchError("URLs with user names or passwords are not accepted.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise FetchError("The URL's port is not valid.") from exc
    return parts.scheme, parts.hostname, port


async def fetch(
    url: str,
    *,
    allow_private: bool = False,
    max_bytes: int = 25 * 1024 * 1024,
    timeout_s: float = 15.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FetchedPage:
    """GET ``url`` with SSRF checks on every hop, a size cap and a timeout.

    Raises:
        FetchError: Refused by policy, unreachable, an error status, or larger than ``max_bytes``.

    """
    current = url.strip()
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, transport=transport) as client:
        for _ in range(MAX_REDIRECTS + 1):
            scheme, host, port = _check_url(current)
            address = await resolve_checked(host, port, allow_private=allow_private)
            parts = urlsplit(current)
            ip_host = f"[{address}]" if ":" in address else address
            target = urlunsplit((scheme, f"{ip_host}:{port}", parts.path or "/", parts.query, ""))
            host_header = host if parts.port is None else f"{host}:{parts.port}"
            request = client.build_request(
                "GET",
                target,
                headers={"Host": host_header, "User-Agent": "Voxdesk-KnowledgeImporter/0.1", "Accept": "*/*"},
                extensions={"sni_hostname": host} if scheme == "https" else {},
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise FetchError(f"The page could not be fetched ({type(exc).__name__}).", retryable=True) from exc
            try:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchError("The server sent a redirect without a location.")
                    current = urljoin(current, location)
                    continue
                if response.status_code >= 400:
                    raise FetchError(f"The server answered {response.status_code} for this URL.")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise FetchError(f"The page is larger than the {max_bytes} bytes allowed.")
                body = bytearray()
                async for piece in response.aiter_bytes():
                    body.extend(piece)
                    if len(body) > max_bytes:
                        raise FetchError(f"The page is larger than the {max_bytes} bytes allowed.")
                return FetchedPage(url=current, data=bytes(body), content_type=response.headers.get("content-type"))
            finally:
                await response.aclose()
    raise FetchError(f"Too many redirects (more than {MAX_REDIRECTS}).")


def sitemap_urls(data: bytes, *, limit: int = MAX_SITEMAP_URLS) -> list[str]:
    """The page URLs listed in a sitemap (``<loc>`` entries), at most ``limit``."""
    text = data.decode("utf-8", errors="replace")
    seen: list[str] = []
    for match in _LOC.finditer(text):
        loc = html.unescape(match.group(1))
        if loc not in seen:
            seen.append(loc)
        if len(seen) >= limit:
            break
    return seen
