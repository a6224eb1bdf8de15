"""Accounts and sessions over HTTP: sign-up, login, rotation with reuse detection, cookies + CSRF, reset by mail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from control_api.app import create_app
from tests.conftest import make_settings
from tests.control_api.conftest import PASSWORD, Accounts, SMTPServer, api_settings, email_of

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


def test_first_signup_is_admin_and_signup_then_closes(api: TestClient) -> None:
    r = api.post("/api/auth/signup", json={"email": "Boss@Voxdesk.example", "password": PASSWORD})
    assert r.status_code == 201
    assert r.json()["role"] == "admin"
    assert r.json()["email"] == "boss@voxdesk.example"
    assert "password_hash" not in r.json()
    second = api.post("/api/auth/signup", json={"email": "x@voxdesk.example", "password": PASSWORD})
    assert second.status_code == 403
    assert second.headers["content-type"] == PROBLEM
    assert second.json()["type"].endswith("/signup-closed")


def test_open_signup_makes_viewers(tmp_path: Path) -> None:
    from control_api.app import create_app

    settings = api_settings(tmp_path, auth={"allow_signup": True})
    with TestClient(create_app(settings)) as c:
        c.post("/api/auth/signup", json={"email": "a@voxdesk.example", "password": PASSWORD})
        r = c.post("/api/auth/signup", json={"email": "b@voxdesk.example", "password": PASSWORD, "role": "admin"})
        assert r.status_code == 422  # role is not a sign-up field
        r = c.post("/api/auth/signup", json={"email": "b@voxdesk.example", "password": PASSWORD})
        assert r.json()["role"] == "viewer"


def test_login_answers_in_the_oauth2_password_flow_shape(accounts: Accounts) -> None:
    r = accounts.login(email_of("supervisor"), grant_type="password")
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    assert body["access_token"] and body["refresh_token"]
    assert r.headers["cache-control"] == "no-store"
    me = accounts.client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["role"] == "supervisor"
    assert "calls:read_all" in me.json()["permissions"]


def test_wrong_password_is_401_problem(accounts: Accounts) -> None:
    r = accounts.login(email_of("agent"), "not the password")
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM
    unknown = accounts.login("nobody@voxdesk.example", "whatever it is")
    assert unknown.status_code == 401
    assert unknown.json()["detail"] == r.json()["detail"]  # no account enumeration


def test_sixth_bad_login_within_15_minutes_is_429(accounts: Accounts) -> None:
    for _ in range(5):
        assert accounts.login(email_of("viewer"), "wrong password!").status_code == 401
    sixth = accounts.login(email_of("viewer"), "wrong password!")
    assert sixth.status_code == 429
    assert sixth.headers["content-type"] == PROBLEM
    assert 1 <= int(sixth.headers["retry-after"]) <= 900
    # Even the right password waits now: the account is locked for the window.
    assert accounts.login(email_of("viewer")).status_code == 429


def test_login_limit_is_per_ip_too(accounts: Accounts) -> None:
    # Five different accounts from one address spend the IP's budget.
    for i in range(5):
        assert accounts.login(f"guess{i}@voxdesk.example", "wrong password!").status_code == 401
    assert accounts.login(email_of("agent")).status_code == 429


def test_refresh_rotates_and_reuse_revokes_the_family(accounts: Accounts) -> None:
    c = accounts.client
    first = accounts.login(email_of("agent")).json()
    second = c.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    second_body = second.json()
    assert second_body["refresh_token"] != first["refresh_token"]
    # Reusing the first refresh token: refused, and the whole family (second included) dies.
    reuse = c.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    assert reuse.json()["type"].endswith("/refresh-token-reused")
    assert c.post("/api/auth/refresh", json={"refresh_token": second_body["refresh_token"]}).status_code == 401
    me = c.get("/api/auth/me", headers={"Authorization": f"Bearer {second_body['access_token']}"})
    assert me.status_code == 401
    # Other logins of the same account are untouched.
    assert c.get("/api/auth/me", headers=accounts.headers("agent")).status_code == 200
    audit = c.get("/api/audit", params={"action": "auth.refresh_reuse"}, headers=accounts.headers("admin"))
    assert audit.status_code == 200
    assert len(audit.json()["items"]) >= 1


def test_logout_revokes_access_and_refresh(accounts: Accounts) -> None:
    c = accounts.client
    tokens = accounts.login(email_of("supervisor")).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert c.post("/api/auth/logout", headers=headers).status_code == 204
    assert c.get("/api/auth/me", headers=headers).status_code == 401
    assert c.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401


def test_cookie_session_needs_csrf_on_unsafe_methods(accounts: Accounts) -> None:
    c = accounts.client
    r = accounts.login(email_of("admin"), cookie_session="true")
    assert r.status_code == 200
    set_cookie = r.headers.get_list("set-cookie")
    session_cookie = next(v for v in set_cookie if v.startswith("voxdesk_session="))
    assert "HttpOnly" in session_cookie
    assert "SameSite=lax" in session_cookie
    assert "Secure" not in session_cookie  # plain http on loopback in development
    csrf = r.json()["csrf_token"]
    assert c.cookies.get("voxdesk_csrf") == csrf
    # Reads work with the cookie alone.
    assert c.get("/api/auth/me").json()["role"] == "admin"
    body = {"email": "new@voxdesk.example", "role": "viewer", "password": PASSWORD}
    # A cross-site form post carries the cookie but cannot read or set the CSRF header.
    forged = c.post("/api/users", json=body)
    assert forged.status_code == 403
    assert forged.json()["type"].endswith("/csrf-failed")
    wrong = c.post("/api/users", json=body, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    ok = c.post("/api/users", json=body, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201
    # Logout ends the cookie session.
    assert c.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    c.cookies.clear()
    c.cookies.set("voxdesk_session", session_cookie.split(";")[0].split("=", 1)[1])
    assert c.get("/api/auth/me").status_code == 401
    c.cookies.clear()


def test_password_reset_by_mail(accounts: Accounts, smtp_server: SMTPServer) -> None:
    c = accounts.client
    old = accounts.login(email_of("agent")).json()
    r = c.post("/api/auth/reset-password", json={"email": email_of("agent")})
    assert r.status_code == 202
    unknown = c.post("/api/auth/reset-password", json={"email": "ghost@voxdesk.example"})
    assert unknown.status_code == 202
    assert unknown.json() == r.json()
    assert smtp_server.inbox.to("ghost@voxdesk.example") == []
    token = smtp_server.inbox.token(email_of("agent"))
    new_password = "a brand new passphrase"
    done = c.post("/api/auth/reset-password", json={"token": token, "new_password": new_password})
    assert done.status_code == 200
    # Single use.
    again = c.post("/api/auth/reset-password", json={"token": token, "new_password": "another passphrase"})
    assert again.status_code == 400
    assert accounts.login(email_of("agent")).status_code == 401
    assert accounts.login(email_of("agent"), new_password).status_code == 200
    # Every earlier session ended.
    assert c.post("/api/auth/refresh", json={"refresh_token": old["refresh_token"]}).status_code == 401
    me = c.get("/api/auth/me", headers={"Authorization": f"Bearer {old['access_token']}"})
    assert me.status_code == 401


def test_invitation_by_mail(accounts: Accounts, smtp_server: SMTPServer) -> None:
    c = accounts.client
    r = c.post(
        "/api/users", json={"email": "invitee@voxdesk.example", "role": "agent"}, headers=accounts.headers("admin")
    )
    assert r.status_code == 201
    message = smtp_server.inbox.to("invitee@voxdesk.example")[-1]
    assert message["From"] == "desk@voxdesk.example"
    token = smtp_server.inbox.token("invitee@voxdesk.example")
    assert accounts.login("invitee@voxdesk.example", "anything at all").status_code == 401
    set_pw = c.post("/api/auth/reset-password", json={"token": token, "new_password": PASSWORD})
    assert set_pw.status_code == 200
    assert accounts.login("invitee@voxdesk.example").status_code == 200


def test_mail_goes_to_the_outbox_without_smtp_host(tmp_path: Path) -> None:
    from control_api.app import create_app

    settings = api_settings(tmp_path)
    with TestClient(create_app(settings)) as c:
        c.post("/api/auth/signup", json={"email": "a@voxdesk.example", "password": PASSWORD})
        assert c.post("/api/auth/reset-password", json={"email": "a@voxdesk.example"}).status_code == 202
    files = list((settings.data_dir / "outbox").glob("*.eml"))
    assert len(files) == 1
    assert "Reset token: " in files[0].read_text()


def test_mailed_links_use_the_configured_port_when_no_public_url(tmp_path: Path) -> None:
    settings = api_settings(tmp_path, server={"port": 8765})
    with TestClient(create_app(settings)) as c:
        admin = c.post("/api/auth/signup", json={"email": "a@voxdesk.example", "password": PASSWORD})
        assert admin.status_code == 201
        assert c.post("/api/auth/reset-password", json={"email": "a@voxdesk.example"}).status_code == 202
        login = c.post("/api/auth/login", data={"username": "a@voxdesk.example", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        invite = c.post("/api/users", json={"email": "b@voxdesk.example", "role": "agent"}, headers=headers)
        assert invite.status_code == 201
    mails = [path.read_text() for path in (settings.data_dir / "outbox").glob("*.eml")]
    assert len(mails) == 2
    for text in mails:
        assert "http://127.0.0.1:8765/console/reset-password?token=" in text
        assert ":8000" not in text


def test_users_admin_flows_and_mass_assignment(accounts: Accounts) -> None:
    c = accounts.client
    agent_id = accounts.ids["agent"]
    # A non-admin may edit their own name...
    r = c.patch(f"/api/users/{agent_id}", json={"full_name": "Asha"}, headers=accounts.headers("agent"))
    assert r.status_code == 200
    assert r.json()["full_name"] == "Asha"
    # ...but not grant themselves a role, nor touch anyone else, nor smuggle fields.
    for role in ("agent", "supervisor", "viewer"):
        own = accounts.ids[role]
        r = c.patch(f"/api/users/{own}", json={"role": "admin"}, headers=accounts.headers(role))
        assert r.status_code == 403, role
    r = c.patch(f"/api/users/{accounts.ids['viewer']}", json={"full_name": "x"}, headers=accounts.headers("agent"))
    assert r.status_code == 403
    r = c.patch(f"/api/users/{agent_id}", json={"password_hash": "x"}, headers=accounts.headers("agent"))
    assert r.status_code == 422
    assert c.get("/api/auth/me", headers=accounts.headers("agent")).json()["role"] == "agent"
    # The admin may promote, and deactivation ends the sessions.
    r = c.patch(f"/api/users/{agent_id}", json={"role": "supervisor"}, headers=accounts.headers("admin"))
    assert r.json()["role"] == "supervisor"
    r = c.post(f"/api/users/{agent_id}/deactivate", headers=accounts.headers("admin"))
    assert r.status_code == 200
    assert r.json()["is_active"] is False
    assert c.get("/api/auth/me", headers=accounts.headers("agent")).status_code == 401
    assert accounts.login(email_of("agent")).status_code == 401
    # The last admin cannot lock everyone out.
    admin_id = accounts.ids["admin"]
    r = c.post(f"/api/users/{admin_id}/deactivate", headers=accounts.headers("admin"))
    assert r.status_code == 409
    listing = c.get("/api/users", headers=accounts.headers("admin")).json()
    assert listing["count"] == 4


def test_own_password_change_needs_the_current_one_and_ends_other_sessions(accounts: Accounts) -> None:
    c = accounts.client
    me = accounts.ids["agent"]
    here = accounts.login(email_of("agent")).json()
    elsewhere = accounts.login(email_of("agent")).json()  # e.g. a stolen session
    h_here = {"Authorization": f"Bearer {here['access_token']}"}
    h_elsewhere = {"Authorization": f"Bearer {elsewhere['access_token']}"}
    new_password = "a brand new passphrase 42"

    r = c.patch(f"/api/users/{me}", json={"password": new_password}, headers=h_here)
    assert r.status_code == 403 and r.json()["type"].endswith("wrong-password")
    r = c.patch(f"/api/users/{me}", json={"password": new_password, "current_password": "wrong"}, headers=h_here)
    assert r.status_code == 403
    assert accounts.login(email_of("agent"), new_password).status_code == 401  # nothing changed

    r = c.patch(f"/api/users/{me}", json={"password": new_password, "current_password": PASSWORD}, headers=h_here)
    assert r.status_code == 200, r.text
    # The other session is cut off (access and refresh tokens); this one stays signed in.
    assert c.get("/api/auth/me", headers=h_elsewhere).status_code == 401
    assert c.post("/api/auth/refresh", json={"refresh_token": elsewhere["refresh_token"]}).status_code == 401
    assert c.get("/api/auth/me", headers=h_here).status_code == 200
    assert accounts.login(email_of("agent"), new_password).status_code == 200
    audit = c.get("/api/audit", params={"action": "users.password_changed"}, headers=accounts.headers("admin"))
    assert audit.status_code == 200
    assert any(item["target_id"] == me for item in audit.json()["items"])
    # Put the shared fixture's password back (the current one is needed for that too).
    r = c.patch(f"/api/users/{me}", json={"password": PASSWORD, "current_password": new_password}, headers=h_here)
    assert r.status_code == 200


def test_admin_password_reset_ends_every_session_of_the_account(accounts: Accounts) -> None:
    c = accounts.client
    target = accounts.ids["viewer"]
    attacker = accounts.login(email_of("viewer")).json()
    h_attacker = {"Authorization": f"Bearer {attacker['access_token']}"}
    assert c.get("/api/auth/me", headers=h_attacker).status_code == 200
    r = c.patch(f"/api/users/{target}", json={"password": PASSWORD}, headers=accounts.headers("admin"))
    assert r.status_code == 200, r.text
    assert c.get("/api/auth/me", headers=h_attacker).status_code == 401
    assert c.post("/api/auth/refresh", json={"refresh_token": attacker["refresh_token"]}).status_code == 401
    # The shared fixture's viewer token is one of those sessions: sign it in again for later tests.
    accounts.tokens["viewer"] = accounts.login(email_of("viewer")).json()


def _from_loopback(settings_path: Path, **server: Any) -> TestClient:
    settings = api_settings(settings_path, server={"host": "127.0.0.1", **server})
    return TestClient(create_app(settings), client=("127.0.0.1", 50000))


def test_forwarded_for_from_an_untrusted_peer_is_ignored(tmp_path: Path) -> None:
    # Loopback is no proxy unless configured: rotating X-Forwarded-For does not dodge the per-IP login limit.
    with _from_loopback(tmp_path) as c:
        for i in range(5):
            r = c.post(
                "/api/auth/login",
                data={"username": f"guess{i}@voxdesk.example", "password": "wrong password!"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            )
            assert r.status_code == 401
        r = c.post(
            "/api/auth/login",
            data={"username": "guess9@voxdesk.example", "password": "wrong password!"},
            headers={"X-Forwarded-For": "198.51.100.7"},
        )
        assert r.status_code == 429


def test_forwarded_for_from_a_trusted_proxy_names_the_client(tmp_path: Path) -> None:
    with _from_loopback(tmp_path, trusted_proxies=["127.0.0.1"]) as c:
        for i in range(6):
            r = c.post(
                "/api/auth/login",
                data={"username": f"guess{i}@voxdesk.example", "password": "wrong password!"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            )
            assert r.status_code == 401  # six different clients behind the proxy, one attempt each


def test_serve_leaves_forwarded_headers_to_the_app() -> None:
    # uvicorn's own proxy handling trusts 127.0.0.1 by default; the app's middleware follows the settings instead.
    from agent.cli import uvicorn_config

    config = uvicorn_config(create_app(make_settings(Path("/tmp/voxdesk-unused"))), host="127.0.0.1", port=8000)
    assert config.proxy_headers is False
    assert config.access_log is False  # the app's own access lines carry no query string (tokens)


def test_session_cookie_is_secure_over_https(accounts: Accounts) -> None:
    c = accounts.client
    r = c.post(
        f"{str(c.base_url).replace('http://', 'https://')}/api/auth/login",
        data={"username": email_of("admin"), "password": PASSWORD, "cookie_session": "true"},
    )
    assert r.status_code == 200
    session_cookie = next(v for v in r.headers.get_list("set-cookie") if v.startswith("voxdesk_session="))
    assert "Secure" in session_cookie
