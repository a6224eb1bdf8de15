"""Personas and voice profiles through the API: versioning, one active version, roles, audit."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from control_api.db.models import AuditLog
from control_api.rbac import Role
from control_api.state import AppState
from tests.agent.conftest import bearer, make_token

pytestmark = pytest.mark.integration


def _audit_count(client: TestClient, action: str) -> int:
    state: AppState = client.app.state.voxdesk  # type: ignore[attr-defined]

    async def count() -> int:
        async with state.sessions() as session:
            result = await session.execute(select(func.count()).select_from(AuditLog).where(AuditLog.action == action))
            return int(result.scalar_one())

    assert client.portal is not None
    return int(client.portal.call(count))


def test_persona_versions_and_single_active(client: TestClient) -> None:
    _, admin = make_token(client, Role.ADMIN)
    body = {"name": "support", "greeting": "Hi there.", "consent_notice": "This call is recorded."}
    created = client.post("/api/personas", json=body, headers=bearer(admin))
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1
    assert client.post("/api/personas", json=body, headers=bearer(admin)).status_code == 409

    edited = client.put("/api/personas/support", json={"greeting": "Hello again."}, headers=bearer(admin))
    assert edited.status_code == 200, edited.text
    assert edited.json()["version"] == 2
    assert edited.json()["consent_notice"] == "This call is recorded."

    active = client.get("/api/personas/support", headers=bearer(admin)).json()
    assert (active["version"], active["greeting"]) == (2, "Hello again.")
    versions = client.get("/api/personas/support/versions", headers=bearer(admin)).json()
    assert [v["version"] for v in versions["items"]] == [2, 1]
    assert [v["is_active"] for v in versions["items"]] == [True, False]
    assert versions["count"] == 2
    # The list answers in the shape of every other list: ``items`` (and ``count``).
    listed = client.get("/api/personas", headers=bearer(admin)).json()
    support = [p for p in listed["items"] if p["name"] == "support"]
    assert [(p["version"], p["is_active"]) for p in support] == [(2, True)]
    assert listed["count"] == len(listed["items"])
    assert _audit_count(client, "personas.create") == 1
    assert _audit_count(client, "personas.update") == 1


def test_persona_roles_and_validation(client: TestClient) -> None:
    _, viewer = make_token(client, Role.VIEWER)
    _, admin = make_token(client, Role.ADMIN)
    body = {"name": "sales", "greeting": "Hi.", "consent_notice": "Recorded."}
    assert client.post("/api/personas", json=body).status_code == 401
    forbidden = client.post("/api/personas", json=body, headers=bearer(viewer))
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"].startswith("application/problem+json")
    bad = client.post("/api/personas", json={**body, "name": "Bad Name!"}, headers=bearer(admin))
    assert bad.status_code == 422
    route_name = client.post("/api/personas", json={**body, "name": "preview-voice"}, headers=bearer(admin))
    assert route_name.status_code == 422 and "taken by the API" in route_name.text
    assert client.put("/api/personas/missing", json={"greeting": "x"}, headers=bearer(admin)).status_code == 404
    assert client.put("/api/personas/sales", json={"unknown": 1}, headers=bearer(admin)).status_code == 422
    # A null for a field that cannot be null is refused, not ignored; voice may be null (the default voice).
    assert client.post("/api/personas", json=body, headers=bearer(admin)).status_code == 201
    for field in ("greeting", "consent_notice", "display_name", "language", "instructions"):
        null = client.put("/api/personas/sales", json={field: None}, headers=bearer(admin))
        assert null.status_code == 422, field
        assert null.headers["content-type"].startswith("application/problem+json")
        assert field in null.text
    assert client.get("/api/personas/sales/versions", headers=bearer(admin)).json()["count"] == 1
    voiced = client.put("/api/personas/sales", json={"voice": "slt"}, headers=bearer(admin))
    assert voiced.json()["voice"] == "slt"
    unvoiced = client.put("/api/personas/sales", json={"voice": None}, headers=bearer(admin))
    assert unvoiced.status_code == 200 and unvoiced.json()["voice"] is None


def test_voice_profile_self_and_others(client: TestClient) -> None:
    agent_id, agent = make_token(client, Role.AGENT)
    _, supervisor = make_token(client, Role.SUPERVISOR)
    default = client.get(f"/api/voice/profile/{agent_id}", headers=bearer(agent))
    assert default.status_code == 200
    assert default.json()["updated_at"] is None
    put = client.put(
        f"/api/voice/profile/{agent_id}",
        json={"language": "en-GB", "voice": "slt", "speaking_rate": 1.2},
        headers=bearer(agent),
    )
    assert put.status_code == 200, put.text
    again = client.get(f"/api/voice/profile/{agent_id}", headers=bearer(agent)).json()
    assert (again["language"], again["voice"], again["speaking_rate"]) == ("en-GB", "slt", 1.2)
    # An agent may not edit a caller's profile; a supervisor may.
    assert client.put("/api/voice/profile/+15550100", json={}, headers=bearer(agent)).status_code == 403
    assert client.put("/api/voice/profile/+15550100", json={}, headers=bearer(supervisor)).status_code == 200
    assert (
        client.put(f"/api/voice/profile/{agent_id}", json={"speaking_rate": 9}, headers=bearer(agent)).status_code
        == 422
    )
    assert _audit_count(client, "voice_profiles.update") == 2
    # A caller with no stored profile has the defaults; a user id with no account is a 404 problem.
    caller = client.get("/api/voice/profile/sip:alice@pbx.example.com", headers=bearer(supervisor))
    assert caller.status_code == 200 and caller.json()["updated_at"] is None
    ghost = str(uuid.uuid4())
    missing = client.get(f"/api/voice/profile/{ghost}", headers=bearer(supervisor))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert client.put(f"/api/voice/profile/{ghost}", json={}, headers=bearer(supervisor)).status_code == 404
    # An agent asking for another id is refused before anything is looked up.
    assert client.get(f"/api/voice/profile/{ghost}", headers=bearer(agent)).status_code == 403
    assert _audit_count(client, "voice_profiles.update") == 2
