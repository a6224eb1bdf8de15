"""The restore drill of docs/DISASTER_RECOVERY.md: seed a desk, back it up, lose it, restore it, use it.

SQLite runs the drill through the real command line (``voxdesk create-admin``, ``ingest``, ``backup``,
``restore``) and then serves the restored data dir; PostgreSQL round-trips the database through
``pg_dump``/``pg_restore`` into a second, empty database and a moved data directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import shutil
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from agent.cli.backup import BackupError, create_backup, restore_backup
from config import Settings
from tests.conftest import fresh_postgres_database, make_settings
from tests.voxdesk_cli import run_voxdesk

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
ADMIN = "drill@example.com"
DOCUMENT = """# Parcel lockers

Parcels left in a Voxdesk locker are held for nine days. After nine days the parcel goes back to the depot
and the caller can ask for a second delivery at no cost.

## Opening hours

The lockers open every day from six in the morning until midnight.
"""


def _wav(seconds: float = 0.5) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(bytes(int(16000 * seconds) * 4))
    return buffer.getvalue()


async def _seed_call(settings: Settings) -> tuple[str, Path]:
    """A finished call with two turns and a recording file, written through the call services."""
    from control_api.db.engine import create_engine, session_factory
    from control_api.db.migrate import upgrade
    from control_api.services import calls

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        async with session_factory(engine)() as session:
            call = await calls.create_call(session, channel="webrtc", status="active", consent_recording=True)
            await calls.append_turn(session, call.id, seq=1, role="caller", text="How long is a parcel kept?")
            await calls.append_turn(session, call.id, seq=2, role="agent", text="Nine days in the locker.")
            settings.recordings_dir.mkdir(parents=True, exist_ok=True)
            path = settings.recordings_dir / f"{call.id}.wav"
            data = _wav()
            path.write_bytes(data)
            await calls.add_recording(
                session,
                call.id,
                path=str(path),
                format="wav",
                channels=2,
                sample_rate=16000,
                duration_ms=500,
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
            await calls.end_call(session, call.id, reason="caller_hangup", outcome="resolved")
            return call.id, path
    finally:
        await engine.dispose()


async def _counts(settings: Settings) -> dict[str, int]:
    from control_api.db.engine import create_engine, session_factory
    from control_api.db.models import Call, CallTurn, KnowledgeDocument, Recording, User

    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            return {
                model.__tablename__: int(await session.scalar(select(func.count()).select_from(model)) or 0)
                for model in (User, Call, CallTurn, Recording, KnowledgeDocument)
            }
    finally:
        await engine.dispose()


def test_sqlite_restore_drill_through_the_cli(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = make_settings(tmp_path)
    created = run_voxdesk(["create-admin", "--email", ADMIN], tmp_path, stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    (tmp_path / "lockers.md").write_text(DOCUMENT)
    ingested = run_voxdesk(["ingest", str(tmp_path / "lockers.md")], tmp_path)
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    call_id, recording = asyncio.run(_seed_call(settings))
    recording_bytes = recording.read_bytes()
    before = asyncio.run(_counts(settings))
    assert before == {"users": 1, "calls": 1, "call_turns": 2, "recordings": 1, "knowledge_documents": 1}
    originals = sorted(p.relative_to(data_dir) for p in (data_dir / "uploads").rglob("*") if p.is_file())
    assert len(originals) == 1

    backup_dir = tmp_path / "backup"
    backed_up = run_voxdesk(["backup", "--out", str(backup_dir)], tmp_path)
    assert backed_up.returncode == 0, backed_up.stderr
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    assert manifest["database"]["backend"] == "sqlite"
    assert manifest["alembic_revision"]
    assert manifest["tables"]["call_turns"] == 2
    assert f"data/{originals[0].as_posix()}" in manifest["files"]
    assert f"data/recordings/{recording.name}" in manifest["files"]
    assert not any(name.startswith("data/knowledge/") for name in manifest["files"])  # the index is derived

    shutil.rmtree(data_dir)  # the disaster
    restored = run_voxdesk(["restore", "--from", str(backup_dir)], tmp_path)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "index       rebuilt from the database:" in restored.stdout
    assert asyncio.run(_counts(settings)) == before
    assert (data_dir / originals[0]).is_file()
    assert recording.read_bytes() == recording_bytes

    again = run_voxdesk(["restore", "--from", str(backup_dir)], tmp_path)
    assert again.returncode == 1
    assert "already holds a database" in again.stderr

    from control_api.app import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/health/ready").status_code == 200
        login = client.post("/api/auth/login", data={"username": ADMIN, "password": PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        transcript = client.get(f"/api/calls/{call_id}/transcript", headers=headers)
        assert transcript.status_code == 200, transcript.text
        assert [t["text"] for t in transcript.json()["turns"]][1] == "Nine days in the locker."
        played = client.get(f"/api/calls/{call_id}/recording", headers=headers)
        assert played.status_code == 200
        assert played.content == recording_bytes
        answer = client.post("/api/rag/query", json={"question": "How many days is a parcel held?"}, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["found"]
        assert "nine days" in answer.json()["passages"][0]["text"].lower()


def test_a_damaged_backup_is_refused_before_anything_changes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    asyncio.run(_seed_call(settings))
    create_backup(settings, tmp_path / "backup", echo=lambda _: None)
    recording = next((tmp_path / "backup" / "data" / "recordings").iterdir())
    recording.write_bytes(recording.read_bytes()[:-2] + b"\x01\x02")
    elsewhere = make_settings(tmp_path / "elsewhere")
    with pytest.raises(BackupError, match="does not match its sha256"):
        restore_backup(elsewhere, tmp_path / "backup", echo=lambda _: None)
    assert not elsewhere.data_dir.exists()
    with pytest.raises(BackupError, match="not empty"):
        create_backup(settings, tmp_path / "backup", echo=lambda _: None)


@pytest.fixture
def second_postgres_url() -> Iterator[str]:
    """Another fresh PostgreSQL database: the server the backup is restored onto."""
    with fresh_postgres_database("voxdesk_restore") as url:
        yield url


def test_postgres_round_trip_onto_another_database_and_data_dir(
    tmp_path: Path, postgres_url: str, second_postgres_url: str
) -> None:
    source = make_settings(tmp_path / "a", database={"url": postgres_url})
    call_id, recording = asyncio.run(_seed_call(source))
    before = asyncio.run(_counts(source))
    manifest = create_backup(source, tmp_path / "backup", echo=lambda _: None)
    assert manifest["database"]["backend"] == "postgresql"
    assert "pg_dump" in manifest["database"]["pg_dump"]

    target = make_settings(tmp_path / "b", database={"url": second_postgres_url})
    lines: list[str] = []
    restore_backup(target, tmp_path / "backup", echo=lines.append)
    assert asyncio.run(_counts(target)) == before
    assert any(line.startswith("paths       1 stored file paths moved") for line in lines), lines

    async def stored_path() -> str:
        from control_api.db.engine import create_engine, session_factory
        from control_api.services.calls import current_recording

        engine = create_engine(target.database_url)
        try:
            async with session_factory(engine)() as session:
                found = await current_recording(session, call_id)
                assert found is not None
                return found.path
        finally:
            await engine.dispose()

    moved = Path(asyncio.run(stored_path()))
    assert moved == target.recordings_dir.resolve() / recording.name
    assert moved.read_bytes() == recording.read_bytes()
    with pytest.raises(BackupError, match="already holds a database"):
        restore_backup(target, tmp_path / "backup", echo=lambda _: None)
    restore_backup(target, tmp_path / "backup", force=True, echo=lambda _: None)
    assert asyncio.run(_counts(target)) == before
