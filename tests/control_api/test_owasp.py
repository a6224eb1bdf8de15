"""OWASP API Security Top 10 (2023) probes: none may succeed, none may produce a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.control_api.conftest import PASSWORD, Accounts, api_settings, sign_in_everyone
from tests.control_api.test_calls import seed_call

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"
SQLI = ["' OR '1'='1", "'; DROP TABLE calls; --", '" OR 1=1 --', "1 UNION SELECT password_hash FROM users--"]
XSS = ['<script>alert("x")</script>', '"><img src=x onerror=alert(1)>', "javascript:alert(1)", "{{7*7}}${7*7}"]
PAYLOADS = SQLI + XSS + ["\u202etxt.exe", "😀" * 50, "%00%", "_%"]


def _no_leak(response: Any) -> None:
    assert response.status_code < 500, response.text
    text = response.text.lower()
    # Markers of a stack trace or a database error message (the payload itself may be echoed in "instance").
    for needle in ("traceback", "sqlalchemy", "psycopg", "sqlite3", "background on this error", "syntax error"):
        assert needle not in text, needle


def test_bola_another_users_objects(accounts: Accounts) -> None:
    c = accounts.client
    supervisors_call = seed_call(c, agent_id=accounts.ids["supervisor"])
    h = accounts.headers("agent")
    for method, path, body in [
        ("GET", f"/api/calls/{supervisors_call}", None),
        ("PUT", f"/api/calls/{supervisors_call}", {"notes": "x"}),
        ("GET", f"/api/calls/{supervisors_call}/transcript", None),
        ("GET", f"/api/calls/{supervisors_call}/recording", None),
    ]:
        r = c.request(method, path, json=body, headers=h)
        assert r.status_code == 404, (method, path, r.status_code)
    viewer_id = accounts.ids["viewer"]
    assert c.get(f"/api/users/{viewer_id}", headers=h).status_code == 403
    assert c.patch(f"/api/users/{viewer_id}", json={"full_name": "pwned"}, headers=h).status_code == 403
    assert c.patch(f"/api/users/{viewer_id}", json={"password": "new password 123"}, headers=h).status_code == 403
    # Filtering by someone else's id does not widen an agent's view.
    r = c.get("/api/calls", params={"agent_user_id": accounts.ids["supervisor"]}, headers=h)
    assert r.json()["items"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/auth/signup", {"email": "m@voxdesk.example", "password": PASSWORD, "role": "admin"}),
        ("PATCH", "/api/users/{self}", {"is_admin": True}),
        ("PATCH", "/api/users/{self}", {"password_hash": "x"}),
        ("POST", "/api/calls", {"channel": "sip", "id": "00000000-0000-0000-0000-000000000001"}),
        ("POST", "/api/calls", {"channel": "sip", "created_by": "someone"}),
        ("PUT", "/api/calls/{call}", {"status": "ended"}),
        ("PUT", "/api/calls/{call}", {"agent_user_id": "someone"}),
        ("POST", "/api/incidents", {"title": "x", "notified_at": "2026-01-01T00:00:00Z"}),
    ],
)
def test_mass_assignment_is_refused(accounts: Accounts, method: str, path: str, body: dict[str, Any]) -> None:
    c = accounts.client
    call = seed_call(c, agent_id=accounts.ids["agent"])
    url = path.replace("{self}", accounts.ids["agent"]).replace("{call}", call)
    role = "admin" if "incidents" in path or path == "/api/calls" else "agent"
    r = c.request(method, url, json=body, headers=accounts.headers(role))
    assert r.status_code in (403, 422), r.text
    assert r.headers["content-type"] == PROBLEM


def test_role_escalation_by_non_admins(accounts: Accounts) -> None:
    c = accounts.client
    for role in ("supervisor", "agent", "viewer"):
        r = c.patch(f"/api/users/{accounts.ids[role]}", json={"role": "admin"}, headers=accounts.headers(role))
        assert r.status_code == 403
        r = c.post(
            "/api/users",
            json={"email": f"x{role}@voxdesk.example", "role": "admin", "password": PASSWORD},
            headers=accounts.headers(role),
        )
        assert r.status_code == 403
    roles = {u["email"]: u["role"] for u in c.get("/api/users", headers=accounts.headers("admin")).json()["items"]}
    assert sorted(roles.values()) == ["admin", "agent", "supervisor", "viewer"]


def test_injection_payloads_in_every_text_field_are_stored_as_data(accounts: Accounts) -> None:
    call = seed_call(accounts.client, agent_id=accounts.ids["agent"], turns=("hello there",))
    for payload in PAYLOADS:
        _probe_text_fields(accounts, call, payload)


def _probe_text_fields(accounts: Accounts, call: str, payload: str) -> None:
    c = accounts.client
    admin = accounts.headers("admin")
    # Body text fields: stored verbatim, returned as JSON (never rendered), nothing executed.
    r = c.put(
        f"/api/calls/{call}",
        json={"notes": payload, "disposition": payload[:100], "tags": [payload[:40]]},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["notes"] == payload
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-content-type-options"] == "nosniff"
    r = c.post("/api/calls", json={"channel": "sip", "caller_name": payload[:200]}, headers=admin)
    assert r.status_code == 201 and r.json()["caller_name"] == payload[:200]
    r = c.patch(f"/api/users/{accounts.ids['agent']}", json={"full_name": payload[:200]}, headers=admin)
    assert r.status_code == 200 and r.json()["full_name"] == payload[:200]
    r = c.post("/api/incidents", json={"title": payload[:200], "description": payload}, headers=admin)
    assert r.status_code == 201 and r.json()["description"] == payload
    r = c.post("/api/privacy/consents", json={"notice_text": payload, "recording": False}, headers=admin)
    assert r.status_code == 201
    # Login and sign-up fields: refused cleanly.
    for r in (
        c.post("/api/auth/login", data={"username": payload, "password": payload}),
        c.post("/api/auth/signup", json={"email": payload, "password": payload}),
        c.post("/api/auth/reset-password", json={"token": payload, "new_password": PASSWORD}),
    ):
        assert r.status_code in (400, 401, 403, 422, 429), r.text
        _no_leak(r)
    # Query parameters: data, never SQL; a search for the payload matches only literally.
    for params in ({"q": payload}, {"status": payload[:20]}, {"channel": payload[:20]}, {"since": payload}):
        r = c.get("/api/calls", params=params, headers=admin)
        assert r.status_code in (200, 422), r.text
        _no_leak(r)
        if r.status_code == 200 and "q" in params:
            assert r.json()["items"] == []  # no transcript contains it: ' OR 1=1 did not match everything
    for params in ({"action": payload[:80]}, {"target_id": payload[:64]}, {"cursor": payload}):
        r = c.get("/api/audit", params=params, headers=admin)
        assert r.status_code in (200, 400, 422)
        _no_leak(r)
    r = c.get(f"/api/calls/{payload}", headers=admin)
    assert r.status_code in (404, 422)
    _no_leak(r)
    # Every table still there.
    assert c.get("/api/calls", headers=admin).status_code == 200


def test_oversized_bodies_and_fields(accounts: Accounts) -> None:
    c = accounts.client
    admin = accounts.headers("admin")
    call = seed_call(c)
    huge = "x" * (2 * 1024 * 1024)
    r = c.put(f"/api/calls/{call}", json={"notes": huge}, headers=admin)
    assert r.status_code == 413
    assert r.headers["content-type"] == PROBLEM
    r = c.put(f"/api/calls/{call}", content=b"{" * 2_000_000, headers={**admin, "content-type": "application/json"})
    assert r.status_code == 413
    r = c.put(f"/api/calls/{call}", json={"notes": "x" * 10_001}, headers=admin)
    assert r.status_code == 422
    r = c.put(f"/api/calls/{call}", json={"tags": ["t"] * 21}, headers=admin)
    assert r.status_code == 422
    r = c.get("/api/calls", params={"limit": 10**30}, headers=admin)
    assert r.status_code == 422
    r = c.put(f"/api/calls/{call}", content=b'{"notes": ', headers={**admin, "content-type": "application/json"})
    assert r.status_code == 422
    _no_leak(r)


def test_unauthenticated_and_forged_tokens(accounts: Accounts) -> None:
    c = accounts.client
    import jwt

    forged = jwt.encode(
        {"sub": accounts.ids["viewer"], "role": "admin", "typ": "access", "exp": 4102444800},
        "not-the-secret-but-long-enough-32b",
        algorithm="HS256",
    )
    none_alg = jwt.encode(
        {"sub": accounts.ids["admin"], "typ": "access", "exp": 4102444800}, key=None, algorithm="none"
    )
    for token in (forged, none_alg, "garbage", accounts.tokens["admin"]["refresh_token"]):
        r = c.get("/api/audit", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
    # The role claim is not trusted: the database role is.
    h = accounts.headers("viewer")
    assert c.get("/api/audit", headers=h).status_code == 403


def test_csrf_on_cookie_sessions(accounts: Accounts) -> None:
    c = accounts.client
    call = seed_call(c)
    login = accounts.login("supervisor@voxdesk.example", cookie_session="true")
    csrf = login.json()["csrf_token"]
    try:
        assert c.get(f"/api/calls/{call}").status_code == 200
        for method, path, body in [
            ("PUT", f"/api/calls/{call}", {"notes": "csrf"}),
            ("POST", "/api/calls", {"channel": "sip"}),
            ("POST", "/api/auth/logout", None),
        ]:
            r = c.request(method, path, json=body, headers={"Origin": "https://evil.example"})
            assert r.status_code == 403, (method, path)
            assert r.json()["type"].endswith("/csrf-failed")
        assert c.put(f"/api/calls/{call}", json={"notes": "ok"}, headers={"X-CSRF-Token": csrf}).status_code == 200
        # A new session (the cookie jar now holds the admin's): the old session's CSRF token no longer fits.
        admin_csrf = accounts.login("admin@voxdesk.example", cookie_session="true").json()["csrf_token"]
        r = c.put(f"/api/calls/{call}", json={"notes": "x"}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 403
        assert c.put(f"/api/calls/{call}", json={"notes": "y"}, headers={"X-CSRF-Token": admin_csrf}).status_code == 200
    finally:
        c.cookies.clear()


@pytest.fixture
def pg_api(tmp_path: Path, postgres_url: str) -> Iterator[TestClient]:
    from control_api.app import create_app

    settings = api_settings(tmp_path, database={"url": postgres_url})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_nul_bytes_and_odd_values_on_postgresql(pg_api: TestClient) -> None:
    accounts = sign_in_everyone(pg_api)
    c = pg_api
    admin = accounts.headers("admin")
    call = seed_call(c)
    r = c.put(f"/api/calls/{call}", json={"notes": "a\u0000b"}, headers=admin)
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    _no_leak(r)
    r = c.get("/api/calls", params={"q": "a\u0000b"}, headers=admin)
    assert r.status_code in (200, 422)
    _no_leak(r)
    for payload in SQLI:
        r = c.get("/api/calls", params={"q": payload}, headers=admin)
        assert r.status_code == 200 and r.json()["items"] == []
    r = c.get("/api/analytics/calls", params={"since": "1900-01-01T00:00:00Z"}, headers=admin)
    assert r.status_code == 400
