"""Trunk admission: source addresses, digest login (checked against aiosipua's client-side digest), limits."""

from __future__ import annotations

import pytest
from aiosipua import SipDigestAuth, build_credentials, parse_auth, stringify_auth
from aiosipua.headers import AuthChallenge

from agent.transports.sip.trunks import LOOPBACK, Trunk, TrunkTable, parse_networks

pytestmark = pytest.mark.unit

URI = "sip:+15550100@voxdesk.example"


def _table(now: list[float], *, loopback_ok: bool = False) -> TrunkTable:
    return TrunkTable(
        [
            Trunk(name="carrier", networks=parse_networks(["203.0.113.0/24"]), max_calls=2),
            Trunk(name="pbx", username="pbx", password="s3cret", max_calls=1),
            Trunk(name="both", networks=parse_networks(["198.51.100.7"]), username="both", password="pw"),
        ],
        loopback_ok=loopback_ok,
        secret=b"k" * 32,
        clock=lambda: now[0],
    )


def _answer(table: TrunkTable, user: str, password: str) -> str:
    challenge_text = table.challenge()
    parsed = parse_auth(challenge_text)
    challenge = AuthChallenge(scheme=parsed.scheme, params=parsed.params)
    credentials = build_credentials(SipDigestAuth(user, password), challenge, "INVITE", URI)
    assert credentials is not None
    return stringify_auth(credentials)


def test_source_address_admits_its_trunk_and_counts_calls() -> None:
    table = _table([1000.0])
    assert table.admit("203.0.113.9", None).trunk == "carrier"
    assert table.acquire("carrier") and table.acquire("carrier")
    assert not table.acquire("carrier")  # the endpoint answers 486
    table.release("carrier")
    assert table.acquire("carrier")


def test_unknown_source_is_challenged_then_admitted_by_login() -> None:
    now = [1000.0]
    table = _table(now)
    verdict = table.admit("192.0.2.1", None)
    assert verdict.status == 401 and verdict.challenge is not None and 'qop="auth"' in verdict.challenge
    assert table.admit("192.0.2.1", _answer(table, "pbx", "s3cret")).trunk == "pbx"
    assert table.admit("192.0.2.1", _answer(table, "pbx", "wrong")).status == 401
    stale = _answer(table, "pbx", "s3cret")
    now[0] += 301  # the nonce expired
    assert table.admit("192.0.2.1", stale).status == 401


def test_trunk_with_address_and_login_needs_both() -> None:
    table = _table([1000.0])
    assert table.admit("198.51.100.7", None).status == 401
    assert table.admit("198.51.100.7", _answer(table, "both", "pw")).trunk == "both"
    assert table.admit("192.0.2.1", _answer(table, "both", "pw")).status == 401  # wrong source for that login


def test_loopback_only_in_development() -> None:
    assert _table([0.0], loopback_ok=True).admit("127.0.0.1", None).trunk == LOOPBACK
    only_addresses = TrunkTable([Trunk(name="c", networks=parse_networks(["203.0.113.1"]))], loopback_ok=False)
    assert only_addresses.admit("127.0.0.1", None).status == 403
    assert only_addresses.admit("not-an-ip", None).status == 403
