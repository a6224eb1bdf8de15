"""Personal data: consent, export/correction/erasure by phone or e-mail, retention purge, incidents' 72-hour clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from control_api.db.models import Integration, OutboxDelivery
from control_api.services import calls as calls_service
from control_api.services import privacy, retention
from tests.control_api.conftest import Accounts
from tests.control_api.test_calls import run

pytestmark = pytest.mark.integration


def _seed_subject(client: TestClient, *, number: str, email: str | None = None, consent: bool = True) -> str:
    state = client.app.state.voxdesk  # type: ignore[attr-defined]

    async def go(session: Any) -> str:
        call = await calls_service.create_call(
            session, channel="sip", caller_number=number, caller_email=email, caller_name="Priya"
        )
        await privacy.record_consent(
            session, call_id=call.id, notice_text="This call may be recorded.", recording=consent
        )
        await calls_service.append_turn(session, call.id, seq=1, role="caller", text="my email is priya@example.in")
        await calls_service.append_turn(session, call.id, seq=2, role="agent", text="Thanks Priya.")
        path = state.settings.recordings_dir / f"{call.id}.wav"
        path.write_bytes(b"RIFF" + b"\0" * 100)
        if consent:
            await calls_service.add_recording(
                session,
                call.id,
                path=path.name,
                format="wav",
                channels=1,
                sample_rate=16000,
                duration_ms=10,
                size_bytes=104,
                sha256=None,
            )
        await calls_service.end_call(session, call.id, reason="done")
        return call.id

    return str(run(client, go))


def _request(accounts: Accounts, body: dict[str, Any]) -> dict[str, Any]:
    c = accounts.client
    r = c.post("/api/privacy/requests", json=body, headers=accounts.headers("admin"))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "received"
    done = c.post(f"/api/privacy/requests/{r.json()['id']}/execute", headers=accounts.headers("admin"))
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    return dict(done.json())


def test_consent_is_recorded_with_the_call(accounts: Accounts) -> None:
    c = accounts.client
    declined = _seed_subject(c, number="+91 90000 00001", consent=False)
    r = c.get("/api/privacy/consents", params={"call_id": declined}, headers=accounts.headers("admin"))
    assert r.status_code == 200
    (consent,) = r.json()["items"]
    assert consent["recording"] is False
    assert consent["notice_text"] == "This call may be recorded."
    assert consent["subject_phone"] == "+91 90000 00001"
    call = c.get(f"/api/calls/{declined}", headers=accounts.headers("admin")).json()
    assert call["consent_recording"] is False
    assert call["has_recording"] is False
    by_phone = c.get("/api/privacy/consents", params={"phone": "+919000000001"}, headers=accounts.headers("admin"))
    assert len(by_phone.json()["items"]) == 1


def test_export_by_phone_in_any_format(accounts: Accounts) -> None:
    c = accounts.client
    mine = _seed_subject(c, number="+91 98765-43210", email="priya@example.in")
    _seed_subject(c, number="+91 11111 11111")
    result = _request(accounts, {"kind": "export", "subject_phone": "+91 (98765) 43210"})["result"]
    assert [call["id"] for call in result["calls"]] == [mine]
    exported = result["calls"][0]
    assert [t["text"] for t in exported["transcript"]] == ["my email is [EMAIL]", "Thanks Priya."]
    assert exported["recordings"][0]["url"] == f"/api/calls/{mine}/recording"
    assert result["consents"][0]["recording"] is True
    by_mail = _request(accounts, {"kind": "export", "subject_email": "PRIYA@example.in"})["result"]
    assert [call["id"] for call in by_mail["calls"]] == [mine]


def test_correction(accounts: Accounts) -> None:
    c = accounts.client
    call_id = _seed_subject(c, number="+91 90000 00002")
    result = _request(
        accounts,
        {"kind": "correction", "subject_phone": "+919000000002", "correction": {"caller_name": "Priya S."}},
    )["result"]
    assert result["calls_corrected"] == 1
    assert c.get(f"/api/calls/{call_id}", headers=accounts.headers("admin")).json()["caller_name"] == "Priya S."
    bad = c.post(
        "/api/privacy/requests",
        json={"kind": "correction", "subject_phone": "+919000000002"},
        headers=accounts.headers("admin"),
    )
    assert bad.status_code == 422


def test_erasure_removes_transcripts_and_recordings_and_keeps_the_audit(accounts: Accounts) -> None:
    c = accounts.client
    state = c.app.state.voxdesk  # type: ignore[attr-defined]
    call_id = _seed_subject(c, number="+91 90000 00003", email="erase.me@example.in")
    other = _seed_subject(c, number="+91 90000 00004")
    recording_file = state.settings.recordings_dir / f"{call_id}.wav"
    assert recording_file.exists()
    requester = {"email": "erase.me@example.in", "phone": "+91 90000 00003"}

    async def owe_deliveries(session: Any) -> None:
        # A ticket already delivered and one that failed for good, both carrying the caller's details.
        hook = Integration(kind="freshdesk", name="helpdesk", enabled=False, config={})
        session.add(hook)
        await session.flush()
        for status in ("delivered", "dead"):
            session.add(
                OutboxDelivery(
                    integration_id=hook.id,
                    event="ticket.create",
                    call_id=call_id,
                    idempotency_key=f"erase-{status}",
                    payload={"requester": requester},
                    status=status,
                )
            )
        await session.commit()

    run(c, owe_deliveries)
    result = _request(accounts, {"kind": "erasure", "subject_email": "erase.me@example.in"})["result"]
    assert result == {
        "calls_anonymised": 1,
        "turns_deleted": 2,
        "recordings_deleted": 1,
        "deliveries_cancelled": 1,
        "consents_anonymised": 1,
    }

    async def deliveries(session: Any) -> list[tuple[str, dict[str, Any]]]:
        rows = await session.execute(
            select(OutboxDelivery.status, OutboxDelivery.payload).order_by(OutboxDelivery.status)
        )
        return [(row[0], row[1]) for row in rows]

    # Nothing of the caller is left to send, and the failed one cannot be retried into the helpdesk.
    assert run(c, deliveries) == [("delivered", {}), ("erased", {})]
    assert not recording_file.exists()
    call = c.get(f"/api/calls/{call_id}", headers=accounts.headers("admin")).json()
    assert (call["caller_number"], call["caller_email"], call["caller_name"]) == (None, None, None)
    assert call["anonymised_at"] is not None
    assert call["has_recording"] is False
    assert c.get(f"/api/calls/{call_id}/transcript", headers=accounts.headers("admin")).json()["turns"] == []
    assert c.get(f"/api/calls/{call_id}/recording", headers=accounts.headers("admin")).status_code == 404
    # Someone else's data is untouched; the audit trail of the erasure stays.
    assert len(c.get(f"/api/calls/{other}/transcript", headers=accounts.headers("admin")).json()["turns"]) == 2
    audit = c.get("/api/audit", params={"action": "privacy.erasure"}, headers=accounts.headers("admin")).json()
    assert audit["items"][0]["detail"]["turns_deleted"] == 2
    # A completed request cannot run twice.
    req_id = c.get("/api/privacy/requests", headers=accounts.headers("admin")).json()["items"][0]["id"]
    again = c.post(f"/api/privacy/requests/{req_id}/execute", headers=accounts.headers("admin"))
    assert again.status_code == 409


def test_requests_need_a_subject_and_only_admins_run_them(accounts: Accounts) -> None:
    c = accounts.client
    r = c.post("/api/privacy/requests", json={"kind": "export"}, headers=accounts.headers("admin"))
    assert r.status_code == 422
    r = c.post(
        "/api/privacy/requests",
        json={"kind": "erasure", "subject_phone": "+911234567"},
        headers=accounts.headers("supervisor"),
    )
    assert r.status_code == 403
    r = c.post(
        "/api/privacy/requests",
        json={"kind": "erasure", "subject_phone": "+911234567"},
        headers=accounts.headers("admin"),
    )
    rejected = c.post(
        f"/api/privacy/requests/{r.json()['id']}/reject",
        json={"reason": "identity not verified"},
        headers=accounts.headers("admin"),
    )
    assert rejected.json()["status"] == "rejected"


def test_retention_purge_removes_old_recordings_and_transcripts(accounts: Accounts) -> None:
    c = accounts.client
    state = c.app.state.voxdesk  # type: ignore[attr-defined]
    old = _seed_subject(c, number="+91 90000 00005")
    new = _seed_subject(c, number="+91 90000 00006")

    async def age(session: Any) -> None:
        call = await calls_service.get_call(session, old)
        call.started_at = datetime.now(UTC) - timedelta(days=400)
        rec = await calls_service.current_recording(session, old)
        assert rec is not None
        rec.created_at = datetime.now(UTC) - timedelta(days=40)
        await session.commit()

    run(c, age)
    r = c.post("/api/privacy/retention/purge", headers=accounts.headers("admin"))
    assert r.status_code == 200
    assert r.json()["recordings_deleted"] == 1
    assert r.json()["turns_deleted"] == 2
    assert not (state.settings.recordings_dir / f"{old}.wav").exists()
    assert (state.settings.recordings_dir / f"{new}.wav").exists()
    assert c.get(f"/api/calls/{old}/transcript", headers=accounts.headers("admin")).json()["turns"] == []
    policy = c.get("/api/privacy/retention", headers=accounts.headers("admin")).json()
    assert policy == {"recordings_days": 30, "transcripts_days": 365, "purge_interval_minutes": 60, "redact_pii": True}


async def test_the_purge_job_runs_on_its_own_and_survives_a_failure(tmp_path: Path) -> None:
    import asyncio

    from sqlalchemy import func, select

    from control_api.db.engine import create_engine, session_factory
    from control_api.db.migrate import upgrade
    from control_api.db.models import AuditLog, CallTurn

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    await upgrade(engine)
    sessions = session_factory(engine)
    recordings = tmp_path / "recordings"
    # The "recording" is a directory: unlinking it fails, so every run fails until it is replaced by a file.
    (recordings / "old.wav").mkdir(parents=True)
    async with sessions() as session:
        call = await calls_service.create_call(session, channel="sip")
        call.started_at = datetime.now(UTC) - timedelta(days=10)
        await session.commit()
        await calls_service.append_turn(session, call.id, seq=1, role="caller", text="hello")
        rec = await calls_service.add_recording(
            session,
            call.id,
            path="old.wav",
            format="wav",
            channels=1,
            sample_rate=8000,
            duration_ms=None,
            size_bytes=None,
            sha256=None,
        )
        rec.created_at = datetime.now(UTC) - timedelta(days=10)
        await session.commit()
    policy = retention.RetentionPolicy(recordings_days=1, transcripts_days=1, recordings_dir=recordings)
    stop = retention.start_purge_job(sessions, policy, interval_seconds=0.05, initial_delay_seconds=0)

    async def turns_left() -> int:
        async with sessions() as session:
            return int((await session.execute(select(func.count()).select_from(CallTurn))).scalar_one())

    try:
        await asyncio.sleep(0.3)  # several failed runs
        assert await turns_left() == 1
        (recordings / "old.wav").rmdir()
        (recordings / "old.wav").write_bytes(b"RIFF")
        for _ in range(100):
            if await turns_left() == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        await stop()
    async with sessions() as session:
        actions = (await session.execute(select(AuditLog.action, AuditLog.actor_role))).all()
    await engine.dispose()
    assert not (recordings / "old.wav").exists()
    assert ("retention.purge", "retention") in actions


def test_incident_72_hour_clock(accounts: Accounts) -> None:
    c = accounts.client
    h = accounts.headers("admin")
    detected = datetime.now(UTC) - timedelta(hours=80)
    r = c.post(
        "/api/incidents",
        json={
            "title": "Laptop with exports stolen",
            "personal_data_breach": True,
            "severity": "high",
            "detected_at": detected.isoformat(),
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    incident = r.json()
    assert datetime.fromisoformat(incident["notify_by"]) == detected + timedelta(hours=72)
    assert incident["notification_overdue"] is True
    assert incident["hours_left"] < 0
    fresh = c.post(
        "/api/incidents", json={"title": "Suspicious logins", "personal_data_breach": True}, headers=h
    ).json()
    assert 71.9 < fresh["hours_left"] <= 72
    minor = c.post("/api/incidents", json={"title": "Disk 80% full", "kind": "operational"}, headers=h).json()
    assert minor["notify_by"] is None and minor["hours_left"] is None
    done = c.patch(f"/api/incidents/{incident['id']}", json={"notified": True, "status": "mitigated"}, headers=h).json()
    assert done["notified_at"] is not None
    assert done["notification_overdue"] is False
    assert c.get("/api/incidents", headers=accounts.headers("supervisor")).status_code == 403
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert c.post("/api/incidents", json={"title": "x", "detected_at": future}, headers=h).status_code == 422
    listing = c.get("/api/incidents", headers=h).json()["items"]
    assert len(listing) == 3
