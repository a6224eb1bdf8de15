"""The handoff queue over the real API, on SQLite and on the real PostgreSQL server.

Object-level rules: an agent sees and accepts only handoffs offered to them, reads only the calls they took,
completes only what they accepted; the first accept wins; going available offers what is waiting; a callback
request carries the caller's number and the briefing; the policy of a persona round-trips. The callback queue:
the first claim wins, only the claimer (or a supervisor) completes, every change is audited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from control_api.db.engine import create_engine, session_factory
from control_api.services import calls as call_service
from control_api.services import handoffs as service
from tests.control_api.conftest import PASSWORD, Accounts, api_settings, sign_in_everyone

pytestmark = [pytest.mark.integration]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def api(tmp_path: Path, database_url: str | None) -> Iterator[TestClient]:
    from control_api.app import create_app

    overrides: dict[str, Any] = {"database": {"url": database_url}} if database_url else {}
    settings = api_settings(tmp_path, **overrides)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.app_settings = settings  # type: ignore[attr-defined]
        yield client


def _db_url(api: TestClient) -> str:
    return str(api.app_settings.database_url)  # type: ignore[attr-defined]


def _queue(api: TestClient, *, number: str = "+15550100") -> tuple[str, str]:
    """A call with two turns and its handoff, queued the way the voice side queues it; returns (call, handoff)."""

    async def run() -> tuple[str, str]:
        engine = create_engine(_db_url(api))
        try:
            async with session_factory(engine)() as session:
                call = await call_service.create_call(session, channel="webrtc", caller_number=number)
                await call_service.append_turn(session, call.id, seq=1, role="agent", text="Hi, this is Ava.")
                await call_service.append_turn(
                    session, call.id, seq=2, role="caller", text="I want to talk to a person please"
                )
                briefing = await service.build_briefing(session, call.id, reason="caller asked for a person")
                handoff = await service.queue_handoff(
                    session, call_id=call.id, reason="caller asked for a person", source="phrase", briefing=briefing
                )
                return call.id, handoff.id
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _second_agent(api: TestClient, accounts: Accounts) -> dict[str, str]:
    r = api.post(
        "/api/users",
        json={"email": "agent2@voxdesk.example", "role": "agent", "password": PASSWORD},
        headers=accounts.headers("admin"),
    )
    assert r.status_code == 201, r.text
    accounts.ids["agent2"] = r.json()["id"]
    token = accounts.login("agent2@voxdesk.example").json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_an_agent_takes_only_what_is_offered_to_them(api: TestClient) -> None:
    accounts = sign_in_everyone(api)
    agent, supervisor = accounts.headers("agent"), accounts.headers("supervisor")
    other = _second_agent(api, accounts)
    assert api.put("/api/agents/me/presence", json={"status": "available"}, headers=agent).status_code == 200
    call_id, handoff_id = _queue(api)

    # Offered to the available agent only; the other agent (away) neither sees nor takes it.
    listed = api.get("/api/handoffs", params={"status": "queued"}, headers=agent).json()["items"]
    assert [h["id"] for h in listed] == [handoff_id]
    assert listed[0]["offered_to"] == [accounts.ids["agent"]]
    assert api.get("/api/handoffs", headers=other).json()["items"] == []
    assert api.get(f"/api/handoffs/{handoff_id}", headers=other).status_code == 404
    assert api.post(f"/api/handoffs/{handoff_id}/accept", headers=other).status_code == 404
    assert api.get("/api/handoffs", headers=accounts.headers("viewer")).status_code == 403

    detail = api.get(f"/api/handoffs/{handoff_id}", headers=agent).json()
    briefing = detail["briefing"]
    assert "person" in briefing["summary"] and briefing["caller"]["number"] == "+15550100"
    assert [t["role"] for t in briefing["transcript"]] == ["agent", "caller"]
    assert briefing["reason"] == "caller asked for a person"
    assert [s["status"] for s in detail["timeline"]] == ["queued", "offered"]

    # Before the accept the agent cannot read the call; after it, the call is theirs.
    assert api.get(f"/api/calls/{call_id}", headers=agent).status_code == 404
    accepted = api.post(f"/api/handoffs/{handoff_id}/accept", headers=agent)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert api.post(f"/api/handoffs/{handoff_id}/accept", headers=supervisor).status_code == 409
    assert api.get(f"/api/calls/{call_id}", headers=agent).status_code == 200
    assert api.get(f"/api/calls/{call_id}", headers=other).status_code == 404
    presence = {p["user_id"]: p["status"] for p in api.get("/api/agents/presence", headers=supervisor).json()["items"]}
    assert presence[accounts.ids["agent"]] == "busy"

    # Only the person who accepted completes it; the wrap-up lands on the call too.
    assert api.post(f"/api/handoffs/{handoff_id}/complete", json={"disposition": "x"}, headers=other).status_code == 404
    done = api.post(
        f"/api/handoffs/{handoff_id}/complete",
        json={"notes": "Refund issued.", "disposition": "resolved"},
        headers=agent,
    )
    assert done.status_code == 200, done.text
    assert [s["status"] for s in done.json()["timeline"]] == ["queued", "offered", "accepted", "completed"]
    call = api.get(f"/api/calls/{call_id}", headers=agent).json()
    assert call["notes"] == "Refund issued." and call["disposition"] == "resolved"
    presence = {p["user_id"]: p["status"] for p in api.get("/api/agents/presence", headers=supervisor).json()["items"]}
    assert presence[accounts.ids["agent"]] == "available"
    # No live call in this process: joining the audio says so instead of failing.
    joined = api.post(f"/api/handoffs/{handoff_id}/media", json={"sdp": "v=0 offer sdp"}, headers=agent)
    assert joined.status_code == 409


def test_decline_going_available_and_callbacks(api: TestClient) -> None:
    accounts = sign_in_everyone(api)
    agent, supervisor = accounts.headers("agent"), accounts.headers("supervisor")
    other = _second_agent(api, accounts)
    # Nobody available: the handoff ends at once as no_agents.
    _, nobody = _queue(api)
    assert api.get(f"/api/handoffs/{nobody}", headers=supervisor).json()["status"] == "no_agents"

    api.put("/api/agents/me/presence", json={"status": "available"}, headers=agent)
    _, handoff_id = _queue(api, number="+15550199")
    # Going available offers what is waiting.
    api.put("/api/agents/me/presence", json={"status": "available"}, headers=other)
    detail = api.get(f"/api/handoffs/{handoff_id}", headers=other).json()
    assert set(detail["offered_to"]) == {accounts.ids["agent"], accounts.ids["agent2"]}
    assert api.post(f"/api/handoffs/{handoff_id}/decline", headers=agent).status_code == 200
    assert api.post(f"/api/handoffs/{handoff_id}/decline", headers=other).status_code == 200

    # The voice side then ends it and records the callback (here directly, as it does).
    async def give_back() -> None:
        engine = create_engine(_db_url(api))
        try:
            async with session_factory(engine)() as session:
                ended = await service.end_unaccepted(session, handoff_id, "declined")
                assert ended is not None
                await service.record_callback(session, ended, reason="declined")
                assert await service.end_unaccepted(session, handoff_id, "timed_out") is None
        finally:
            await engine.dispose()

    asyncio.run(give_back())
    callbacks = api.get("/api/handoffs/callbacks", headers=supervisor).json()["items"]
    assert [(c["handoff_id"], c["phone"], c["reason"]) for c in callbacks] == [(handoff_id, "+15550199", "declined")]
    assert api.get("/api/handoffs/callbacks", headers=agent).json()["count"] == 1  # agents work the queue
    assert api.get("/api/handoffs/callbacks", headers=accounts.headers("viewer")).status_code == 403
    assert api.post(f"/api/handoffs/{handoff_id}/accept", headers=agent).status_code == 409


def test_the_first_accept_wins(api: TestClient) -> None:
    accounts = sign_in_everyone(api)
    agent = accounts.headers("agent")
    other = _second_agent(api, accounts)
    api.put("/api/agents/me/presence", json={"status": "available"}, headers=agent)
    api.put("/api/agents/me/presence", json={"status": "available"}, headers=other)
    _, handoff_id = _queue(api)

    async def race() -> list[int]:
        engine = create_engine(_db_url(api))
        try:
            factory = session_factory(engine)

            async def take(email: str) -> int:
                async with factory() as session:
                    from sqlalchemy import select

                    from control_api.db.models import User

                    user = (await session.execute(select(User).where(User.email == email))).scalar_one()
                    try:
                        await service.accept(session, handoff_id, user)
                    except Exception as exc:  # the loser's 409
                        return int(getattr(exc, "status", 500))
                    return 200

            return sorted(await asyncio.gather(take("agent@voxdesk.example"), take("agent2@voxdesk.example")))
        finally:
            await engine.dispose()

    assert asyncio.run(race()) == [200, 409]


def test_a_persona_policy_round_trips(api: TestClient) -> None:
    accounts = sign_in_everyone(api)
    supervisor = accounts.headers("supervisor")
    default = api.get("/api/handoffs/policies/default", headers=supervisor).json()
    assert default["enabled"] and default["not_found_threshold"] == 3
    changed = {**default, "phrases": ["human"], "sentiment_trigger": False, "priority": 5}
    assert api.put("/api/handoffs/policies/default", json=changed, headers=supervisor).status_code == 200
    assert api.get("/api/handoffs/policies/default", headers=supervisor).json() == changed
    bad = api.put("/api/handoffs/policies/default", json={**default, "not_found_threshold": 0}, headers=supervisor)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")


def test_a_policy_is_404_for_a_persona_that_does_not_exist(api: TestClient) -> None:
    accounts = sign_in_everyone(api)
    supervisor, admin = accounts.headers("supervisor"), accounts.headers("admin")
    missing = api.get("/api/handoffs/policies/nobody", headers=supervisor)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    default = api.get("/api/handoffs/policies/default", headers=supervisor).json()
    assert api.put("/api/handoffs/policies/nobody", json=default, headers=supervisor).status_code == 404
    # Every persona that exists has a policy: the defaults until one is stored.
    persona = {"name": "sales", "greeting": "Hi, sales here.", "consent_notice": "This call is recorded."}
    assert api.post("/api/personas", json=persona, headers=admin).status_code == 201
    assert api.get("/api/handoffs/policies/sales", headers=supervisor).json() == default


@pytest.mark.parametrize(
    "target",
    ["+15557654321", "sip:+15557654321@pbx.example.com", "sip:desk@10.0.0.5:5060;transport=udp", "tel:+4930123456"],
)
def test_a_cold_transfer_target_round_trips(api: TestClient, target: str) -> None:
    supervisor = sign_in_everyone(api).headers("supervisor")
    default = api.get("/api/handoffs/policies/default", headers=supervisor).json()
    assert default["cold_transfer_to"] is None
    put = api.put("/api/handoffs/policies/default", json={**default, "cold_transfer_to": target}, headers=supervisor)
    assert put.status_code == 200, put.text
    assert api.get("/api/handoffs/policies/default", headers=supervisor).json()["cold_transfer_to"] == target
    # An empty target switches the cold transfer off again.
    put = api.put("/api/handoffs/policies/default", json={**default, "cold_transfer_to": " "}, headers=supervisor)
    assert put.status_code == 200 and put.json()["cold_transfer_to"] is None


@pytest.mark.parametrize(
    "target",
    ["http://pbx.example.com", "sip:", "desk", "+1", "sip:a@b c", "sip:<x>@pbx.example.com", "sip:a@b\r\nX-Evil: 1"],
)
def test_a_bad_cold_transfer_target_is_a_422_problem(api: TestClient, target: str) -> None:
    supervisor = sign_in_everyone(api).headers("supervisor")
    default = api.get("/api/handoffs/policies/default", headers=supervisor).json()
    bad = api.put("/api/handoffs/policies/default", json={**default, "cold_transfer_to": target}, headers=supervisor)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json"), bad.text
    assert "cold_transfer_to" in bad.text
    assert api.get("/api/handoffs/policies/default", headers=supervisor).json()["cold_transfer_to"] is None


def _callback(api: TestClient, *, number: str) -> tuple[str, str]:
    """A handoff nobody could take (no agent available) and its callback request; returns (call, callback)."""
    call_id, handoff_id = _queue(api, number=number)

    async def run() -> str:
        engine = create_engine(_db_url(api))
        try:
            async with session_factory(engine)() as session:
                handoff = await service.get_handoff(session, handoff_id)
                assert handoff.status == "no_agents"
                return (await service.record_callback(session, handoff, reason="no_agents")).id
        finally:
            await engine.dispose()

    return call_id, asyncio.run(run())


def _audit(api: TestClient, accounts: Accounts, callback_id: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    entries = api.get(
        "/api/audit",
        params={"target_type": "callback", "target_id": callback_id},
        headers=accounts.headers("admin"),
    ).json()["items"]
    return [(e["action"], e["actor_user_id"], e["detail"]) for e in reversed(entries)]


def test_the_callback_queue_claim_complete_and_who_may(api: TestClient) -> None:
    accounts = sign_in_everyone(api)
    agent, supervisor, viewer = (accounts.headers(r) for r in ("agent", "supervisor", "viewer"))
    other = _second_agent(api, accounts)
    first_call, first = _callback(api, number="+15550111")
    _, second = _callback(api, number="+15550122")

    # The open queue, oldest first, with what the page needs.
    listed = api.get("/api/handoffs/callbacks", headers=agent)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["count"] == 2 and [c["id"] for c in page["items"]] == [first, second]
    item = page["items"][0]
    assert (item["call_id"], item["phone"], item["reason"], item["status"]) == (
        first_call,
        "+15550111",
        "no_agents",
        "open",
    )
    assert "person" in item["summary"] and item["handoff_reason"] == "caller asked for a person"
    assert item["claimed_by"] is None and item["age_s"] >= 0
    assert api.get("/api/handoffs/callbacks", headers=viewer).status_code == 403
    assert api.post(f"/api/handoffs/callbacks/{first}/claim", headers=viewer).status_code == 403

    # The first claim wins; a second claimer is told who holds it; claiming one's own again is harmless.
    claimed = api.post(f"/api/handoffs/callbacks/{first}/claim", headers=agent)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["claimed_by"] == accounts.ids["agent"]
    assert claimed.json()["claimed_by_name"] == "agent@voxdesk.example" and claimed.json()["claimed_at"]
    lost = api.post(f"/api/handoffs/callbacks/{first}/claim", headers=other)
    assert lost.status_code == 409 and lost.headers["content-type"].startswith("application/problem+json")
    assert lost.json()["detail"] == "Already claimed by agent@voxdesk.example."
    assert lost.json()["claimed_by"] == accounts.ids["agent"]
    assert api.post(f"/api/handoffs/callbacks/{first}/claim", headers=agent).status_code == 200

    # Another agent no longer sees it; its claimer and supervisors do (``claimed`` filter too).
    assert [c["id"] for c in api.get("/api/handoffs/callbacks", headers=other).json()["items"]] == [second]
    assert [c["id"] for c in api.get("/api/handoffs/callbacks", headers=agent).json()["items"]] == [first, second]
    mine = api.get("/api/handoffs/callbacks", params={"status": "claimed"}, headers=agent).json()
    assert [c["id"] for c in mine["items"]] == [first]
    assert api.get("/api/handoffs/callbacks", params={"status": "claimed"}, headers=other).json()["items"] == []
    assert api.get("/api/handoffs/callbacks", params={"status": "open"}, headers=supervisor).json()["count"] == 2
    assert api.get("/api/handoffs/callbacks", params={"status": "nope"}, headers=agent).status_code == 422

    # Only the claimer completes (another agent: 403; unclaimed: 409); a bad outcome or a long note is a 422.
    body = {"outcome": "reached", "note": "Called back; router replaced."}
    refused = api.post(f"/api/handoffs/callbacks/{first}/complete", json=body, headers=other)
    assert refused.status_code == 403 and "agent@voxdesk.example" in refused.json()["detail"]
    unclaimed = api.post(f"/api/handoffs/callbacks/{second}/complete", json=body, headers=other)
    assert unclaimed.status_code == 409 and unclaimed.json()["detail"] == "Claim this callback before completing it."
    for bad in ({"outcome": "sold_them_a_phone"}, {"outcome": "reached", "note": "x" * 2001}, {}):
        wrong = api.post(f"/api/handoffs/callbacks/{first}/complete", json=bad, headers=agent)
        assert wrong.status_code == 422 and wrong.headers["content-type"].startswith("application/problem+json")
    done = api.post(f"/api/handoffs/callbacks/{first}/complete", json=body, headers=agent)
    assert done.status_code == 200, done.text
    closed = done.json()
    assert (closed["status"], closed["outcome"], closed["note"]) == ("done", "reached", body["note"])
    assert closed["completed_by"] == accounts.ids["agent"] and closed["completed_at"]
    again = api.post(f"/api/handoffs/callbacks/{first}/complete", json=body, headers=agent)
    assert again.status_code == 409
    assert api.post(f"/api/handoffs/callbacks/{first}/claim", headers=other).status_code == 409
    # Done ones: the agent sees what they completed, the other agent nothing; the open queue no longer has it.
    assert [
        c["id"] for c in api.get("/api/handoffs/callbacks", params={"status": "done"}, headers=agent).json()["items"]
    ] == [first]
    assert api.get("/api/handoffs/callbacks", params={"status": "done"}, headers=other).json()["count"] == 0
    assert [c["id"] for c in api.get("/api/handoffs/callbacks", headers=supervisor).json()["items"]] == [second]

    # Unknown ids: 404 problem JSON.
    for action in ("claim", "release"):
        missing = api.post(f"/api/handoffs/callbacks/no-such-callback/{action}", headers=agent)
        assert missing.status_code == 404 and missing.json()["type"].endswith("not-found")
    assert api.post("/api/handoffs/callbacks/no-such-callback/complete", json=body, headers=agent).status_code == 404

    # Every change is in the audit log, with who did it.
    assert _audit(api, accounts, first) == [
        ("handoffs.callback_claim", accounts.ids["agent"], {}),
        ("handoffs.callback_claim", accounts.ids["agent"], {}),
        ("handoffs.callback_complete", accounts.ids["agent"], {"outcome": "reached"}),
    ]


def test_a_callback_goes_to_anyone_who_takes_handoffs_presence_or_not(api: TestClient) -> None:
    """The people a supervisor may pick are the people reassign accepts: active accounts that take handoffs."""
    accounts = sign_in_everyone(api)
    admin, agent, supervisor = (accounts.headers(r) for r in ("admin", "agent", "supervisor"))
    _, callback = _callback(api, number="+15550144")  # nobody available yet
    assert api.put("/api/agents/me/presence", json={"status": "available"}, headers=agent).status_code == 200
    made = {}
    for email, name in (("ravi@voxdesk.example", "Ravi Kumar"), ("gone@voxdesk.example", "Gone Agent")):
        r = api.post(
            "/api/users",
            json={"email": email, "role": "agent", "password": PASSWORD, "full_name": name},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        made[name] = r.json()["id"]
    ravi, gone = made["Ravi Kumar"], made["Gone Agent"]  # Ravi never set a presence
    off = api.patch(f"/api/users/{gone}", json={"is_active": False}, headers=admin)
    assert off.status_code == 200, off.text

    listed = api.get("/api/handoffs/callbacks/assignees", headers=supervisor)
    assert listed.status_code == 200, listed.text
    people = {p["user_id"]: p for p in listed.json()["items"]}
    assert set(people) == {accounts.ids[r] for r in ("admin", "supervisor", "agent")} | {ravi}
    assert (people[ravi]["full_name"], people[ravi]["presence"]) == ("Ravi Kumar", None)
    assert people[accounts.ids["agent"]]["presence"] == "available"
    assert api.get("/api/handoffs/callbacks/assignees", headers=agent).status_code == 403

    moved = api.post(f"/api/handoffs/callbacks/{callback}/reassign", json={"user_id": ravi}, headers=supervisor)
    assert moved.status_code == 200, moved.text
    assert (moved.json()["claimed_by"], moved.json()["claimed_by_name"]) == (ravi, "Ravi Kumar")
    for refused in (accounts.ids["viewer"], gone):
        bad = api.post(f"/api/handoffs/callbacks/{callback}/reassign", json={"user_id": refused}, headers=supervisor)
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json"), bad.text
        assert bad.json()["status"] == 422 and bad.json()["type"].endswith("invalid-assignee")
    assert api.post(f"/api/handoffs/callbacks/{callback}/claim", headers=agent).status_code == 409


def test_a_supervisor_reassigns_releases_and_completes_any_callback(api: TestClient) -> None:
    accounts = sign_in_everyone(api)
    agent, supervisor = accounts.headers("agent"), accounts.headers("supervisor")
    other = _second_agent(api, accounts)
    _, callback = _callback(api, number="+15550133")

    assert api.post(f"/api/handoffs/callbacks/{callback}/claim", headers=agent).status_code == 200
    # Agents neither reassign nor release someone else's claim.
    to_other = {"user_id": accounts.ids["agent2"]}
    assert api.post(f"/api/handoffs/callbacks/{callback}/reassign", json=to_other, headers=agent).status_code == 403
    assert api.post(f"/api/handoffs/callbacks/{callback}/release", headers=other).status_code == 409
    # A supervisor hands it to the other agent; only an account that takes handoffs can receive it.
    viewer_id = {"user_id": accounts.ids["viewer"]}
    assert (
        api.post(f"/api/handoffs/callbacks/{callback}/reassign", json=viewer_id, headers=supervisor).status_code == 422
    )
    moved = api.post(f"/api/handoffs/callbacks/{callback}/reassign", json=to_other, headers=supervisor)
    assert moved.status_code == 200, moved.text
    assert moved.json()["claimed_by"] == accounts.ids["agent2"]
    assert (
        api.post(f"/api/handoffs/callbacks/{callback}/complete", json={"outcome": "reached"}, headers=agent).status_code
        == 403
    )
    # Its new holder lets it go: back in the open queue, anyone may claim it.
    released = api.post(f"/api/handoffs/callbacks/{callback}/release", headers=other)
    assert released.status_code == 200 and released.json()["claimed_by"] is None
    assert api.post(f"/api/handoffs/callbacks/{callback}/release", headers=other).status_code == 409
    # A supervisor completes even an unclaimed callback (and becomes its claimer).
    done = api.post(f"/api/handoffs/callbacks/{callback}/complete", json={"outcome": "voicemail"}, headers=supervisor)
    assert done.status_code == 200, done.text
    assert done.json()["claimed_by"] == done.json()["completed_by"] == accounts.ids["supervisor"]
    assert done.json()["note"] is None
    assert (
        api.post(f"/api/handoffs/callbacks/{callback}/reassign", json=to_other, headers=supervisor).status_code == 409
    )
    assert [a for a, _, _ in _audit(api, accounts, callback)] == [
        "handoffs.callback_claim",
        "handoffs.callback_reassign",
        "handoffs.callback_release",
        "handoffs.callback_complete",
    ]
