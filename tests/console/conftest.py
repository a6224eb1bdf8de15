"""A real Voxdesk server (uvicorn on a free loopback port, SQLite in a temp dir) and headless Chromium."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn

from config import Settings
from tests.conftest import make_settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "console-admin-pass-1"
AGENT_EMAIL = "agent@example.com"
VIEWER_EMAIL = "viewer@example.com"
SUPERVISOR_EMAIL = "supervisor@example.com"
OTHER_PASSWORD = "console-other-pass-1"
OLD_CALLS = 30


@dataclass
class Seeded:
    """What the seed put in the database."""

    admin_id: str = ""
    agent_id: str = ""
    agent_call_id: str = ""
    ended_call_id: str = ""
    live_call_id: str = ""
    caller_lines: list[str] = field(default_factory=list)
    agent_lines: list[str] = field(default_factory=list)


@dataclass
class LiveServer:
    """A running server: its base URL, settings and seed."""

    base_url: str
    settings: Settings
    seeded: Seeded


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write_silence(path: Path, *, seconds: float) -> None:
    """A short mono 16 kHz WAV of silence (a stand-in for a call recording)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x00" * int(16000 * seconds))


async def _seed(settings: Settings) -> Seeded:
    """Migrate, then create the admin and two calls (one ended with a transcript, one live)."""
    from control_api.db.engine import create_engine, session_factory
    from control_api.db.migrate import upgrade
    from control_api.db.models import Handoff, utcnow
    from control_api.rbac import Role
    from control_api.services import calls, personas, users

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    seeded = Seeded(
        caller_lines=[
            "Hi, my broadband keeps dropping every evening.",
            "Thanks, that sounds helpful!",
        ],
        agent_lines=[
            "Sorry to hear that. Restarting the router and moving it away from the microwave usually helps.",
            "Glad to help. Is there anything else?",
        ],
    )
    try:
        await upgrade(engine)
        async with session_factory(engine)() as session:
            admin = await users.create_user(
                session, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, role=Role.ADMIN, full_name="Asha Admin"
            )
            seeded.admin_id = admin.id
            await personas.create(
                session,
                name=personas.DEFAULT_PERSONA,
                display_name="Ava",
                greeting="Hi, this is Ava from Kestrel Broadband.",
                consent_notice="This call is recorded.",
                created_by=admin.id,
            )
            call = await calls.create_call(
                session, channel="webrtc", caller_name="Ravi Kumar", caller_number="+919812345678"
            )
            seeded.ended_call_id = call.id
            await calls.set_status(session, call.id, "active")
            seq = 0
            for caller_text, agent_text in zip(seeded.caller_lines, seeded.agent_lines, strict=True):
                await calls.append_turn(session, call.id, seq=seq, role="caller", text=caller_text)
                await calls.append_turn(
                    session, call.id, seq=seq + 1, role="agent", text=agent_text, citations=["router-tips.md"]
                )
                await calls.add_event(
                    session,
                    call.id,
                    kind="latency",
                    turn_seq=seq + 1,
                    total_ms=640.0 + 100 * seq,
                    vad_ms=200.0,
                    asr_ms=120.0,
                    retrieval_ms=30.0,
                    llm_ms=90.0 + 50 * seq,
                    tts_ms=150.0,
                )
                seq += 2
            recording = settings.recordings_dir / f"{call.id}.wav"
            recording.parent.mkdir(parents=True, exist_ok=True)
            _write_silence(recording, seconds=0.5)
            await calls.add_recording(
                session,
                call.id,
                path=str(recording),
                format="wav",
                channels=1,
                sample_rate=16000,
                duration_ms=500,
                size_bytes=recording.stat().st_size,
                sha256=None,
            )
            ended = await calls.end_call(
                session, call.id, reason="caller_hangup", outcome="resolved", latency_p50_ms=640.0, latency_p95_ms=740.0
            )
            # A few seconds of handle time, as a real call would have.
            ended.duration_ms = int(timedelta(minutes=2, seconds=5).total_seconds() * 1000)
            await session.commit()
            agent = await users.create_user(
                session, email=AGENT_EMAIL, password=OTHER_PASSWORD, role=Role.AGENT, full_name="Arjun Agent"
            )
            seeded.agent_id = agent.id
            await users.create_user(
                session, email=VIEWER_EMAIL, password=OTHER_PASSWORD, role=Role.VIEWER, full_name="Vera Viewer"
            )
            await users.create_user(
                session,
                email=SUPERVISOR_EMAIL,
                password=OTHER_PASSWORD,
                role=Role.SUPERVISOR,
                full_name="Sam Supervisor",
            )
            taken = await calls.create_call(
                session, channel="sip", caller_name="Meera Shah", agent_user_id=agent.id, status="active"
            )
            await calls.append_turn(session, taken.id, seq=0, role="caller", text="I need a person, please.")
            await calls.end_call(session, taken.id, reason="handed_off", outcome="handed_off")
            # The handoff behind it (the caller asked for a person), as the live-handoff service records it.
            session.add(Handoff(call_id=taken.id, source="phrase", status="completed", reason="asked for a person"))
            seeded.agent_call_id = taken.id
            # Yesterday's failed calls: enough for a second page of the list, none counted in today's figures.
            yesterday = utcnow() - timedelta(days=1)
            for index in range(OLD_CALLS):
                old = await calls.create_call(
                    session, channel="telephony", caller_number=f"+91981234{index:04d}", status="failed"
                )
                old.started_at = yesterday - timedelta(minutes=index)
            await session.commit()
            live = await calls.create_call(session, channel="sip", caller_number="+441632960001")
            await calls.set_status(session, live.id, "active")
            seeded.live_call_id = live.id
    finally:
        await engine.dispose()
    return seeded


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The whole server (``agent.server.build_app``) on a free loopback port, seeded."""
    from agent.server import build_app

    # Several browser sessions within a minute share one admin's API budget; the limit itself is tested in
    # tests/control_api, so here it is wide enough not to interfere.
    settings = make_settings(tmp_path_factory.mktemp("console"), rate_limits={"api": "1000/minute"})
    seeded = asyncio.run(_seed(settings))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(build_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="console-e2e-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield LiveServer(base_url=f"http://127.0.0.1:{port}", settings=settings, seeded=seeded)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def browser_dir(tmp_path: Path) -> Path:
    """A fresh Chromium profile directory."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    return profile


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: ``$VOXDESK_CONSOLE_SHOTS`` when set (for a person to look at), else a temp dir."""
    folder = Path(os.environ.get("VOXDESK_CONSOLE_SHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
