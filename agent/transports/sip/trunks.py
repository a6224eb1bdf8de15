"""Who may send calls: trunks matched by source address and/or SIP digest login, each with a call limit.

Digest authentication (RFC 2617/7616, MD5 and SHA-256, ``qop=auth``) is the server side that aiosipua leaves
out (it only answers challenges): a stateless nonce (issue time + HMAC) checked on the way back, so nothing is
stored per challenge. A response is checked in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiosipua import parse_auth

NONCE_TTL_S = 300.0
LOOPBACK = "loopback"
_HASHES: dict[str, Callable[[bytes], hashlib._Hash]] = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Trunk:
    """One trunk: where it sends from, how it logs in, how many calls it may hold."""

    name: str
    networks: tuple[IpNetwork, ...] = ()
    username: str | None = None
    password: str | None = None
    max_calls: int = 10
    busy_message: bool = False

    @property
    def needs_login(self) -> bool:
        """Whether INVITEs must carry valid digest credentials."""
        return self.username is not None and self.password is not None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with an INVITE: ``trunk`` admits it; otherwise answer ``status`` (401 carries a challenge)."""

    trunk: str | None = None
    status: int = 0
    reason: str = ""
    challenge: str | None = None


def parse_networks(addresses: Sequence[str]) -> tuple[IpNetwork, ...]:
    """Addresses and CIDR networks as networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(address, strict=False) for address in addresses)


class TrunkTable:
    """Matches INVITEs to trunks and counts their calls.

    Args:
        trunks: The configured trunks.
        loopback_ok: Loopback callers need no trunk (development).
        realm: The digest realm announced in challenges.
        secret: Key of the stateless nonces.
        clock: Seconds (tests pass their own).

    """

    def __init__(
        self,
        trunks: Sequence[Trunk],
        *,
        loopback_ok: bool,
        realm: str = "voxdesk",
        secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._trunks = list(trunks)
        self._loopback_ok = loopback_ok
        self.realm = realm
        self._secret = secret or secrets.token_bytes(32)
        self._clock = clock
        self._active: dict[str, int] = {}

    def _limit(self, name: str) -> int | None:
        for trunk in self._trunks:
            if trunk.name == name:
                return trunk.max_calls
        return None

    def busy_message(self, name: str) -> bool:
        """Whether the trunk's calls over its limit are answered with the spoken busy message (else 486)."""
        return any(trunk.name == name and trunk.busy_message for trunk in self._trunks)

    def active(self, name: str) -> int:
        """Calls the trunk holds now."""
        return self._active.get(name, 0)

    def acquire(self, name: str) -> bool:
        """Take one of the trunk's lines; False when it already holds its limit."""
        limit = self._limit(name)
        if limit is not None and self.active(name) >= limit:
            return False
        self._active[name] = self.active(name) + 1
        return True

    def release(self, name: str) -> None:
        """Give a line back."""
        left = self.active(name) - 1
        if left > 0:
            self._active[name] = left
        else:
            self._active.pop(name, None)

    def nonce(self) -> str:
        """A fresh stateless nonce: issue time and its HMAC."""
        issued = f"{self._clock():.0f}"
        mac = hmac.new(self._secret, issued.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{issued}.{mac}"

    def _nonce_fresh(self, nonce: str) -> bool:
        issued, _, mac = nonce.partition(".")
        expected = hmac.new(self._secret, issued.encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            return False
        try:
            return self._clock() - float(issued) <= NONCE_TTL_S
        except ValueError:
            return False

    def challenge(self) -> str:
        """A ``WWW-Authenticate`` value (MD5, qop=auth)."""
        return f'Digest realm="{self.realm}", nonce="{self.nonce()}", algorithm=MD5, qop="auth"'

    def _login(self, authorization: str, method: str) -> str | None:
        """The trunk whose credentials ``authorization`` proves, if any."""
        try:
            credentials = parse_auth(authorization)
        except ValueError:
            return None
        params = {key.lower(): value for key, value in credentials.params.items()}
        if credentials.scheme.lower() != "digest" or params.get("realm") != self.realm:
            return None
        hasher = _HASHES.get(params.get("algorithm", "MD5").upper())
        nonce, uri, response = params.get("nonce", ""), params.get("uri", ""), params.get("response", "")
        if hasher is None or not self._nonce_fresh(nonce):
            return None

        def h(text: str) -> str:
            return hasher(text.encode()).hexdigest()

        for trunk in self._trunks:
            if not trunk.needs_login or trunk.username != params.get("username"):
                continue
            ha1 = h(f"{trunk.username}:{self.realm}:{trunk.password}")
            ha2 = h(f"{method}:{uri}")
            qop = params.get("qop")
            if qop:
                expected = h(f"{ha1}:{nonce}:{params.get('nc', '')}:{params.get('cnonce', '')}:{qop}:{ha2}")
            else:
                expected = h(f"{ha1}:{nonce}:{ha2}")
            if hmac.compare_digest(expected.encode(), response.lower().encode()):
                return trunk.name
        return None

    def admit(self, source_ip: str, authorization: str | None, *, method: str = "INVITE") -> Verdict:
        """Which trunk an INVITE from ``source_ip`` belongs to, or the SIP answer refusing it.

        A trunk with addresses admits its sources (and asks for a login too when it has credentials); a trunk
        with only credentials admits whoever logs in as it; loopback needs nothing in development.
        """
        try:
            address = ipaddress.ip_address(source_ip)
        except ValueError:
            return Verdict(status=403, reason="Forbidden")
        login = self._login(authorization, method) if authorization else None
        for trunk in self._trunks:
            if trunk.networks and any(address in network for network in trunk.networks):
                if trunk.needs_login and login != trunk.name:
                    return Verdict(status=401, reason="Unauthorized", challenge=self.challenge())
                return Verdict(trunk=trunk.name)
        if login is not None:
            for trunk in self._trunks:
                if trunk.name == login and not trunk.networks:
                    return Verdict(trunk=trunk.name)
        if self._loopback_ok and address.is_loopback:
            return Verdict(trunk=LOOPBACK)
        if any(trunk.needs_login and not trunk.networks for trunk in self._trunks):
            return Verdict(status=401, reason="Unauthorized", challenge=self.challenge())
        return Verdict(status=403, reason="Forbidden")
