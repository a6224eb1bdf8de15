"""The audit log: every mutation and sensitive read lands in it; admins page through it; nobody edits it."""

from __future__ import annotations

import pytest

from tests.control_api.conftest import Accounts
from tests.control_api.test_calls import seed_call

pytestmark = pytest.mark.integration


def test_entries_carry_who_what_when_where_and_page_by_cursor(accounts: Accounts) -> None:
    c = accounts.client
    admin = accounts.headers("admin")
    call = seed_call(c)
    for i in range(7):
        r = c.put(f"/api/calls/{call}", json={"notes": f"note {i}"}, headers={**admin, "X-Request-ID": f"req-{i}"})
        assert r.status_code == 200
    seen: list[int] = []
    cursor = None
    while True:
        params = {"action": "calls.update", "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = c.get("/api/audit", params=params, headers=admin).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7
    assert seen == sorted(seen, reverse=True)
    newest = c.get("/api/audit", params={"action": "calls.update", "limit": 1}, headers=admin).json()["items"][0]
    assert newest["actor_user_id"] == accounts.ids["admin"]
    assert newest["actor_role"] == "admin"
    assert newest["target_type"] == "call" and newest["target_id"] == call
    assert newest["request_id"] == "req-6"
    assert newest["ip"] == "testclient"
    assert newest["outcome"] == "success"
    assert newest["detail"] == {"fields": ["notes"]}
    logins = c.get("/api/audit", params={"action_prefix": "auth."}, headers=admin).json()["items"]
    assert {e["action"] for e in logins} == {"auth.login"}
    # Denied attempts are recorded too.
    c.patch(f"/api/users/{accounts.ids['viewer']}", json={"role": "admin"}, headers=accounts.headers("viewer"))
    denied = c.get("/api/audit", params={"outcome": "denied"}, headers=admin).json()["items"]
    assert denied[0]["actor_user_id"] == accounts.ids["viewer"]
    window = c.get("/api/audit", params={"since": "2100-01-01T00:00:00Z"}, headers=admin).json()
    assert window == {"items": [], "next_cursor": None}


def test_no_route_edits_or_deletes_it(accounts: Accounts) -> None:
    c = accounts.client
    admin = accounts.headers("admin")
    entry = c.get("/api/audit", headers=admin).json()["items"][0]["id"]
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert c.request(method, "/api/audit", headers=admin).status_code == 405
        assert c.request(method, f"/api/audit/{entry}", headers=admin).status_code in (404, 405)
    for role in ("supervisor", "agent", "viewer"):
        assert c.get("/api/audit", headers=accounts.headers(role)).status_code == 403
