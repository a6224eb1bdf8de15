"""Calls over HTTP: listing with filters, search and cursors; CSV; annotate; transcript; recording ranges; BOLA."""

from __future__ import annotations

import csv
import io
import wave
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient

from control_api.db.models import CallbackRequest
from control_api.problems import ProblemError
from control_api.schemas.calls import Outcome
from control_api.services import analytics
from control_api.services import calls as calls_service
from control_api.services.summary import Exchange
from tests.control_api.conftest import PASSWORD, Accounts

pytestmark = pytest.mark.integration


def run(client: TestClient, coro_fn: Any) -> Any:
    """Run ``coro_fn(session)`` on the app's database, in the app's event loop."""
    state = client.app.state.voxdesk  # type: ignore[attr-defined]

    async def go() -> Any:
        async with state.sessions() as session:
            return await coro_fn(session)

    return client.portal.call(go)  # type: ignore[union-attr]


def seed_call(
    client: TestClient,
    *,
    agent_id: str | None = None,
    started: datetime | None = None,
    turns: tuple[str, ...] = (),
    channel: str = "webrtc",
    **fields: Any,
) -> str:
    async def go(session: Any) -> str:
        call = await calls_service.create_call(
            session, channel=channel, agent_user_id=agent_id, caller_number="+91 98765 43210"
        )
        if started is not None:
            call.started_at = started
        for key, value in fields.items():
            setattr(call, key, value)
        await session.commit()
        for i, text in enumerate(turns, start=1):
            await calls_service.append_turn(session, call.id, seq=i, role="caller", text=text)
        await calls_service.end_call(session, call.id, reason="caller_hung_up", outcome=fields.get("outcome"))
        return call.id

    return str(run(client, go))


def test_agents_see_only_their_calls_and_viewers_none(accounts: Accounts) -> None:
    c = accounts.client
    mine = seed_call(c, agent_id=accounts.ids["agent"])
    other = seed_call(c, agent_id=accounts.ids["supervisor"])
    listing = c.get("/api/calls", headers=accounts.headers("agent")).json()
    assert [i["id"] for i in listing["items"]] == [mine]
    assert c.get(f"/api/calls/{mine}", headers=accounts.headers("agent")).status_code == 200
    # BOLA: another agent's call is not there for them, by any route.
    for path in (f"/api/calls/{other}", f"/api/calls/{other}/transcript", f"/api/calls/{other}/recording"):
        assert c.get(path, headers=accounts.headers("agent")).status_code == 404, path
    r = c.put(f"/api/calls/{other}", json={"notes": "mine now"}, headers=accounts.headers("agent"))
    assert r.status_code == 404
    assert c.get("/api/calls", headers=accounts.headers("viewer")).status_code == 403
    assert len(c.get("/api/calls", headers=accounts.headers("supervisor")).json()["items"]) == 2


def seed_callback(client: TestClient, call_id: str) -> str:
    """A callback request (open, nobody claimed it) for the call ``call_id``."""

    async def go(session: Any) -> str:
        request = CallbackRequest(call_id=call_id, reason="no_agents", phone="+91 98765 43210")
        session.add(request)
        await session.commit()
        return request.id

    return str(run(client, go))


def second_agent(accounts: Accounts) -> dict[str, str]:
    """Headers of a second agent (``accounts.ids["agent2"]``)."""
    c = accounts.client
    body = {"email": "agent2@voxdesk.example", "role": "agent", "password": PASSWORD}
    r = c.post("/api/users", json=body, headers=accounts.headers("admin"))
    assert r.status_code == 201, r.text
    accounts.ids["agent2"] = r.json()["id"]
    return {"Authorization": f"Bearer {accounts.login('agent2@voxdesk.example').json()['access_token']}"}


def reads(c: TestClient, call_id: str, headers: dict[str, str]) -> tuple[int, int, bool]:
    """What ``headers`` get for the call: page and transcript statuses, whether the list holds it."""
    listed = [i["id"] for i in c.get("/api/calls", headers=headers).json()["items"]]
    return (
        c.get(f"/api/calls/{call_id}", headers=headers).status_code,
        c.get(f"/api/calls/{call_id}/transcript", headers=headers).status_code,
        call_id in listed,
    )


def test_an_agent_reads_the_call_of_a_callback_while_they_hold_it(accounts: Accounts) -> None:
    """Claiming a callback opens its call to the claimer (read only); other agents still get 404; release closes it."""
    c = accounts.client
    agent, other = accounts.headers("agent"), second_agent(accounts)
    call_id = seed_call(c, agent_id=accounts.ids["supervisor"], turns=("please call me back",))
    callback = seed_callback(c, call_id)
    hidden = (404, 404, False)
    assert reads(c, call_id, agent) == hidden  # BOLA: someone else's call, no claim

    assert c.post(f"/api/handoffs/callbacks/{callback}/claim", headers=agent).status_code == 200
    assert reads(c, call_id, agent) == (200, 200, True)
    transcript = c.get(f"/api/calls/{call_id}/transcript", headers=agent).json()
    assert [t["text"] for t in transcript["turns"]] == ["please call me back"]
    assert reads(c, call_id, other) == hidden
    # Reading only: the call's notes stay with the agent who took it (and supervisors).
    r = c.put(f"/api/calls/{call_id}", json={"notes": "called back"}, headers=agent)
    assert r.status_code == 403, r.text
    assert c.get(f"/api/calls/{call_id}", headers=accounts.headers("supervisor")).json()["notes"] is None

    assert c.post(f"/api/handoffs/callbacks/{callback}/release", headers=agent).status_code == 200
    assert reads(c, call_id, agent) == hidden
    # A supervisor hands it to the other agent: theirs to read, no longer the first agent's.
    to_other = {"user_id": accounts.ids["agent2"]}
    r = c.post(f"/api/handoffs/callbacks/{callback}/reassign", json=to_other, headers=accounts.headers("supervisor"))
    assert r.status_code == 200, r.text
    assert reads(c, call_id, other) == (200, 200, True)
    assert reads(c, call_id, agent) == hidden


def test_an_agent_still_reads_the_call_of_a_callback_they_completed(accounts: Accounts) -> None:
    c = accounts.client
    agent, other = accounts.headers("agent"), second_agent(accounts)
    call_id = seed_call(c, agent_id=accounts.ids["supervisor"], turns=("please call me back",))
    callback = seed_callback(c, call_id)
    assert c.post(f"/api/handoffs/callbacks/{callback}/claim", headers=agent).status_code == 200
    done = c.post(f"/api/handoffs/callbacks/{callback}/complete", json={"outcome": "reached"}, headers=agent)
    assert done.status_code == 200, done.text
    assert reads(c, call_id, agent) == (200, 200, True)
    assert reads(c, call_id, other) == (404, 404, False)


def test_filters_search_and_cursor_pagination(accounts: Accounts) -> None:
    c = accounts.client
    base = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    ids = [seed_call(c, started=base + timedelta(minutes=i), outcome="resolved") for i in range(7)]
    refund = seed_call(
        c,
        started=base + timedelta(hours=2),
        turns=("I want a REFUND for 100% of it_now",),
        channel="sip",
        outcome="handed_off",
    )
    h = accounts.headers("supervisor")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = c.get("/api/calls", params=params, headers=h).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [refund, *reversed(ids)]
    assert [i["id"] for i in c.get("/api/calls", params={"q": "refund"}, headers=h).json()["items"]] == [refund]
    # LIKE wildcards are data: "100%" and "it_now" match literally, "%" alone matches nothing special.
    assert len(c.get("/api/calls", params={"q": "100%"}, headers=h).json()["items"]) == 1
    assert len(c.get("/api/calls", params={"q": "%"}, headers=h).json()["items"]) == 1
    assert len(c.get("/api/calls", params={"q": "_"}, headers=h).json()["items"]) == 1
    assert [i["id"] for i in c.get("/api/calls", params={"channel": "sip"}, headers=h).json()["items"]] == [refund]
    assert len(c.get("/api/calls", params={"outcome": "resolved"}, headers=h).json()["items"]) == 7
    window = {"since": (base + timedelta(minutes=2)).isoformat(), "until": (base + timedelta(minutes=4)).isoformat()}
    assert [i["id"] for i in c.get("/api/calls", params=window, headers=h).json()["items"]] == [ids[3], ids[2]]
    negative = c.get("/api/calls", params={"sentiment": "negative"}, headers=h).json()["items"]
    assert all(i["sentiment_label"] == "negative" for i in negative)
    assert c.get("/api/calls", params={"cursor": "not-a-cursor"}, headers=h).status_code == 400


def test_csv_export_is_audited_and_defuses_formulas(accounts: Accounts) -> None:
    c = accounts.client
    call_id = seed_call(c, notes='=HYPERLINK("http://evil")', tags=["vip", "refund"])
    r = c.get("/api/calls/export.csv", headers=accounts.headers("supervisor"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows[0]["id"] == call_id
    assert rows[0]["notes"].startswith("'=")
    assert rows[0]["tags"] == "vip;refund"
    assert c.get("/api/calls/export.csv", headers=accounts.headers("agent")).status_code == 403
    audit = c.get("/api/audit", params={"action": "calls.export"}, headers=accounts.headers("admin")).json()
    assert audit["items"][0]["actor_user_id"] == accounts.ids["supervisor"]


def test_csv_export_keeps_negative_numbers_numeric(accounts: Accounts) -> None:
    c = accounts.client
    seed_call(c, turns=("This is terrible, I am furious and angry!",), notes="-call me back")
    rows = list(csv.DictReader(io.StringIO(c.get("/api/calls/export.csv", headers=accounts.headers("admin")).text)))
    assert float(rows[0]["sentiment"]) < 0  # "-0.8" stays a number, not the text "'-0.8"
    assert int(rows[0]["duration_ms"]) >= 0
    assert rows[0]["notes"] == "'-call me back"  # text starting with a formula character is still defused


def test_register_and_annotate(accounts: Accounts) -> None:
    c = accounts.client
    r = c.post(
        "/api/calls",
        json={"channel": "sip", "caller_number": "+1 415 555 0100", "agent_user_id": accounts.ids["agent"]},
        headers=accounts.headers("supervisor"),
    )
    assert r.status_code == 201, r.text
    call_id = r.json()["id"]
    assert c.post("/api/calls", json={"channel": "sip"}, headers=accounts.headers("agent")).status_code == 403
    bad = c.post("/api/calls", json={"channel": "sip", "agent_user_id": "nobody"}, headers=accounts.headers("admin"))
    assert bad.status_code == 422
    # The agent who took it writes the wrap-up.
    body = {"notes": "Asked about refunds", "disposition": "refund-info", "tags": [" billing ", "refund"]}
    r = c.put(f"/api/calls/{call_id}", json=body, headers=accounts.headers("agent"))
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == ["billing", "refund"]
    got = c.get(f"/api/calls/{call_id}", headers=accounts.headers("supervisor")).json()
    assert got["disposition"] == "refund-info"
    assert (
        c.put(f"/api/calls/{call_id}", json={"status": "ended"}, headers=accounts.headers("admin")).status_code == 422
    )
    audit = c.get("/api/audit", params={"target_id": call_id}, headers=accounts.headers("admin")).json()
    assert {e["action"] for e in audit["items"]} == {"calls.create", "calls.update"}


def test_transcript_is_redacted_and_its_read_audited(accounts: Accounts) -> None:
    c = accounts.client
    call_id = seed_call(c, agent_id=accounts.ids["agent"], turns=("my card is 4111 1111 1111 1111", "thanks, great"))
    r = c.get(f"/api/calls/{call_id}/transcript", headers=accounts.headers("agent"))
    assert r.status_code == 200
    turns = r.json()["turns"]
    assert [t["text"] for t in turns] == ["my card is [CARD]", "thanks, great"]
    audit = c.get("/api/audit", params={"action": "transcripts.read"}, headers=accounts.headers("admin")).json()
    assert audit["items"][0]["target_id"] == call_id


def test_recording_streams_with_ranges_and_is_audited(accounts: Accounts) -> None:
    c = accounts.client
    state = c.app.state.voxdesk  # type: ignore[attr-defined]
    call_id = seed_call(c, agent_id=accounts.ids["agent"])
    path = state.settings.recordings_dir / f"{call_id}.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(range(256)) * 64)
    size = path.stat().st_size

    async def add(session: Any) -> None:
        await calls_service.add_recording(
            session,
            call_id,
            path=path.name,
            format="wav",
            channels=1,
            sample_rate=16000,
            duration_ms=512,
            size_bytes=size,
            sha256=None,
        )

    run(c, add)
    h = accounts.headers("supervisor")
    whole = c.get(f"/api/calls/{call_id}/recording", headers=h)
    assert whole.status_code == 200
    assert whole.content == path.read_bytes()
    assert whole.headers["accept-ranges"] == "bytes"
    part = c.get(f"/api/calls/{call_id}/recording", headers={**h, "Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == path.read_bytes()[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    assert c.get(f"/api/calls/{call_id}", headers=h).json()["has_recording"] is True
    audit = c.get("/api/audit", params={"action": "recordings.read"}, headers=accounts.headers("admin")).json()
    assert len(audit["items"]) == 2
    assert audit["items"][0]["detail"]["range"] == "bytes=100-199"
    # Refused ranges answer as problem JSON, the 416 with the size it needs.
    beyond = c.get(f"/api/calls/{call_id}/recording", headers={**h, "Range": "bytes=99999999-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-type"] == "application/problem+json"
    assert beyond.headers["content-range"] == f"bytes */{size}"
    assert beyond.json()["status"] == 416
    assert beyond.json()["type"].endswith("/range-not-satisfiable")
    assert str(size) in beyond.json()["detail"]
    malformed = c.get(f"/api/calls/{call_id}/recording", headers={**h, "Range": "bytes=abc"})
    assert malformed.status_code == 400
    assert malformed.headers["content-type"] == "application/problem+json"
    assert malformed.json()["type"].endswith("/invalid-range")
    assert malformed.json()["instance"] == f"/api/calls/{call_id}/recording"
    assert "range" in malformed.json()["detail"].lower()
    wrong_unit = c.get(f"/api/calls/{call_id}/recording", headers={**h, "Range": "items=0-1"})
    assert wrong_unit.status_code == 400
    assert wrong_unit.headers["content-type"] == "application/problem+json"


def test_a_recording_outside_the_recordings_folder_is_never_served(accounts: Accounts, tmp_path: Any) -> None:
    c = accounts.client
    call_id = seed_call(c)
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF....")

    async def add(session: Any) -> None:
        await calls_service.add_recording(
            session,
            call_id,
            path=str(secret),
            format="wav",
            channels=1,
            sample_rate=16000,
            duration_ms=None,
            size_bytes=None,
            sha256=None,
        )

    run(c, add)
    assert c.get(f"/api/calls/{call_id}/recording", headers=accounts.headers("admin")).status_code == 404


def test_no_recording_kept_without_consent(accounts: Accounts) -> None:
    c = accounts.client
    call_id = seed_call(c, consent_recording=False)

    async def add(session: Any) -> None:
        await calls_service.add_recording(
            session,
            call_id,
            path="x.wav",
            format="wav",
            channels=1,
            sample_rate=16000,
            duration_ms=None,
            size_bytes=None,
            sha256=None,
        )

    with pytest.raises(ProblemError) as err:
        run(c, add)
    assert err.value.status == 409


@pytest.mark.parametrize(
    "query",
    ["since=0001-01-01T00:00:00%2B14:00", "until=9999-12-31T23:59:59-14:00", "since=1066-10-14T09:00:00Z"],
)
def test_times_outside_the_accepted_range_are_422(accounts: Accounts, query: str) -> None:
    # These overflowed datetime when converted to UTC: a 500 after seconds of logging, the loop stalled meanwhile.
    r = accounts.client.get(f"/api/calls?{query}", headers=accounts.headers("admin"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert accounts.client.get("/health/live").status_code == 200


def seed_conversation(client: TestClient, turns: list[tuple[str, str, tuple[str, ...]]], **fields: Any) -> str:
    """A call of ``(role, text, citations)`` turns, ended with the stored ``fields`` (outcome)."""

    async def go(session: Any) -> str:
        call = await calls_service.create_call(session, channel="webrtc", caller_number="+91 98765 43210")
        for i, (role, text, cited) in enumerate(turns, start=1):
            await calls_service.append_turn(session, call.id, seq=i, role=role, text=text, citations=cited)
        await calls_service.end_call(session, call.id, reason="caller_hung_up", outcome=fields.get("outcome"))
        if fields.get("callback"):
            session.add(CallbackRequest(call_id=call.id, reason="no_agents", phone="+91 98765 43210"))
            await session.commit()
        return call.id

    return str(run(client, go))


def test_the_list_shows_and_filters_the_checked_outcome(accounts: Accounts) -> None:
    """The list, its filter, the call page and the analytics read one outcome (the walkthrough's calls A and B)."""
    c = accounts.client
    h = accounts.headers("supervisor")
    # A: the second question was not answered from the base; the voice side stored "resolved".
    a = seed_conversation(
        c,
        [
            ("caller", "When are you open?", ()),
            ("agent", "We are open nine to five.", ("hours.md#1",)),
            ("caller", "Do you sell gift cards?", ()),
            ("agent", "I could not find that.", ()),
        ],
        outcome="resolved",
    )
    # B: asked for a person, nobody was free, a callback was promised; the voice side stored "handed_off".
    b = seed_conversation(
        c,
        [("caller", "Can I talk to someone?", ()), ("agent", "Nobody is free, we will call you back.", ())],
        outcome="handed_off",
        callback=True,
    )
    listed = {i["id"]: i["outcome"] for i in c.get("/api/calls", headers=h).json()["items"]}
    assert listed == {a: "unanswered", b: "callback"}
    for call_id, expected in ((a, "unanswered"), (b, "callback")):
        assert c.get(f"/api/calls/{call_id}", headers=h).json()["outcome"] == expected
        assert c.get(f"/api/analytics/calls/{call_id}/outcome", headers=h).json()["outcome"] == expected
    assert [i["id"] for i in c.get("/api/calls", params={"outcome": "unanswered"}, headers=h).json()["items"]] == [a]
    assert [i["id"] for i in c.get("/api/calls", params={"outcome": "callback"}, headers=h).json()["items"]] == [b]
    assert c.get("/api/calls", params={"outcome": "resolved"}, headers=h).json()["items"] == []
    assert c.get("/api/calls", params={"outcome": "handed_off"}, headers=h).json()["items"] == []
    exported = list(csv.DictReader(io.StringIO(c.get("/api/calls/export.csv", headers=h).text)))
    assert {r["id"]: r["outcome"] for r in exported} == {a: "unanswered", b: "callback"}


@pytest.mark.parametrize("query", [{"channel": "pigeon"}, {"outcome": "maybe"}, {"sentiment": "meh"}])
def test_unknown_filter_values_are_422_problems(accounts: Accounts, query: dict[str, str]) -> None:
    r = accounts.client.get("/api/calls", params=query, headers=accounts.headers("supervisor"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_the_outcome_filter_offers_every_outcome_of_the_rule() -> None:
    """The filter's choices are the outcomes ``classify`` can give, no more, no fewer."""
    asked = [Exchange("q", True, "a", ("c",))]
    missed = [Exchange("q", False, None, ())]
    given = {
        analytics.classify(stored=stored, asked=exchanges, handed_off=handed, callback=callback)
        for stored in (None, "resolved", "failed", "abandoned", "not_connected", "handed_off")
        for exchanges in ([], asked, missed)
        for handed in (False, True)
        for callback in (False, True)
    }
    assert given == set(get_args(Outcome))
