"""LiveKit calls without a LiveKit server (issue 17): the verified webhook route and the worker's job entry point.

The webhook route runs in the real app on SQLite, and its bodies are signed the way LiveKit's server signs them
(a JWT in ``Authorization`` whose ``sha256`` claim is the body's digest, livekit-api's ``AccessToken``). The job
entry point is given a job context built from livekit-agents' own types (``JobProcess``, the protocol's ``Job``
and ``ParticipantInfo``): it starts the voice runtime, finds the SIP caller through the Twirp stand-in of
test_livekit_admin, sets the call up through ``VoiceService.start_call`` and runs it; with no LiveKit server to
join, pipecat's ``LiveKitTransport`` never connects and the call is released as the documented not-connected
call. What needs a LiveKit server (media in the room, SIP audio) is not exercised: see docs/telephony.md.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from google.protobuf import json_format
from livekit import api
from livekit.agents import JobExecutorType, JobProcess
from livekit.protocol import agent as agent_proto
from sqlalchemy import select

from agent.livekit.tokens import MINT_PATH, livekit_token_router
from agent.livekit.webhooks import WEBHOOK_PATH, livekit_webhook_router
from agent.livekit.worker import PrewarmedRuntime, entrypoint, prepare_process
from config import Settings
from control_api.app import create_app
from control_api.db.engine import create_engine, session_factory
from control_api.db.models import Call, CallEvent
from control_api.rbac import Role
from control_api.services import calls as call_service
from control_api.services.users import create_user
from tests.conftest import make_settings
from tests.telephony.test_livekit_admin import KEY, SECRET, TwirpStandIn, twirp  # noqa: F401 - the fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CALLER, DIALLED = "+447700900123", "+441234567891"


def signed(body: str, *, key: str = KEY, secret: str = SECRET, ttl_s: int = 600) -> str:
    """The Authorization header LiveKit's server sends with a webhook."""
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return api.AccessToken(key, secret).with_sha256(digest).with_ttl(datetime.timedelta(seconds=ttl_s)).to_jwt()


def event_body(room: str, event: str = "participant_joined") -> str:
    message = api.WebhookEvent(
        event=event,
        id="EV_1",
        room=api.Room(name=room, sid="RM_1"),
        participant=api.ParticipantInfo(
            identity=f"sip_{CALLER}", kind=api.ParticipantInfo.Kind.SIP, attributes={"sip.phoneNumber": CALLER}
        ),
        created_at=int(time.time()),
    )
    return json_format.MessageToJson(message)


@pytest.fixture(params=["sqlite", "postgresql"])
async def webhook_app(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    # The call is found by its metadata's JSON member: both databases' JSON operators are exercised.
    database: dict[str, Any] = {}
    if request.param == "postgresql":
        database = {"url": request.getfixturevalue("postgres_url")}
    settings = make_settings(tmp_path, livekit={"api_secret": SECRET}, database=database)
    app = create_app(settings, routers=[livekit_webhook_router(settings.livekit)])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://voxdesk.test") as client:
            yield app, client


async def test_a_signed_webhook_is_recorded_against_its_call(webhook_app: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = webhook_app
    async with app.state.voxdesk.sessions() as session:
        call = await call_service.create_call(session, channel="sip", meta={"livekit_room": "call-abc"})
    body = event_body("call-abc")
    response = await client.post(WEBHOOK_PATH, content=body, headers={"Authorization": signed(body)})
    assert response.status_code == 200, response.text
    assert response.json() == {"event": "participant_joined", "recorded": True, "call_id": call.id}
    async with app.state.voxdesk.sessions() as session:
        events = (await session.scalars(select(CallEvent).where(CallEvent.call_id == call.id))).all()
    (event,) = [e for e in events if e.kind == "livekit"]
    assert event.data == {"event": "participant_joined", "id": "EV_1", "room": "call-abc", "participant_kind": "sip"}
    assert CALLER not in str(event.data)  # the SIP identity carries the caller's number: never stored here
    # The Bearer scheme some proxies add is accepted too; a room no call runs in is acknowledged, not recorded.
    other = event_body("room-nobody")
    response = await client.post(WEBHOOK_PATH, content=other, headers={"Authorization": f"Bearer {signed(other)}"})
    assert response.status_code == 200 and response.json()["recorded"] is False


def _refused_request(case: str) -> tuple[bytes, dict[str, str]]:
    body = event_body("call-abc")
    content: bytes = body.encode()
    headers: dict[str, str] = {"Authorization": signed(body)}
    if case == "tampered":
        content = body.replace("participant_joined", "participant_left").encode()
    elif case == "wrong_key":
        headers = {"Authorization": signed(body, key="another-key")}
    elif case == "wrong_secret":
        headers = {"Authorization": signed(body, secret="another-secret-that-is-also-32-chars-long")}
    elif case == "expired":
        headers = {"Authorization": signed(body, ttl_s=-300)}
    elif case == "missing":
        headers = {}
    else:
        content = b"\xff\xfe" + content
    return content, headers


async def test_a_badly_signed_webhook_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, livekit={"api_secret": SECRET})
    app = create_app(settings, routers=[livekit_webhook_router(settings.livekit)])
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        async with app.state.voxdesk.sessions() as session:
            call = await call_service.create_call(session, channel="sip", meta={"livekit_room": "call-abc"})
        for case in ("tampered", "wrong_key", "wrong_secret", "expired", "missing", "not_utf8"):
            content, headers = _refused_request(case)
            response = await client.post(WEBHOOK_PATH, content=content, headers=headers)
            assert response.status_code == 401, case
            assert response.headers["content-type"].startswith("application/problem+json"), case
            assert response.json()["status"] == 401, case
        async with app.state.voxdesk.sessions() as session:
            events = (await session.scalars(select(CallEvent).where(CallEvent.call_id == call.id))).all()
    assert [e for e in events if e.kind == "livekit"] == []  # nothing refused was recorded


async def test_webhooks_without_livekit_configured_are_404(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    app = create_app(settings, routers=[livekit_webhook_router(settings.livekit)])
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        body = event_body("call-abc")
        response = await client.post(WEBHOOK_PATH, content=body, headers={"Authorization": signed(body)})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_signed_in_user_gets_a_token_for_a_room_with_the_agent(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, livekit={"url": "wss://livekit.example", "api_secret": SECRET})
    app = create_app(settings, routers=[livekit_token_router(settings.livekit)])
    password = "correct horse battery"
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        async with app.state.voxdesk.sessions() as session:
            agent = await create_user(
                session, email="agent@voxdesk.example", password=password, role=Role.AGENT, full_name="Ann"
            )
            await create_user(session, email="viewer@voxdesk.example", password=password, role=Role.VIEWER)

        async def bearer(email: str) -> dict[str, str]:
            login = await client.post("/api/auth/login", data={"username": email, "password": password})
            assert login.status_code == 200, login.text
            return {"Authorization": f"Bearer {login.json()['access_token']}"}

        as_agent = await bearer("agent@voxdesk.example")
        response = await client.post(MINT_PATH, json={"room": "support-1"}, headers=as_agent)
        assert response.status_code == 200, response.text
        minted = response.json()
        assert minted["url"] == "wss://livekit.example" and minted["room"] == "support-1"
        assert minted["identity"] == f"user-{agent.id}"
        claims = api.TokenVerifier(KEY, SECRET).verify(minted["token"])
        assert claims.identity == f"user-{agent.id}" and claims.name == "Ann"
        assert claims.video is not None and claims.video.room == "support-1" and not claims.video.room_admin
        # LiveKit dispatches Voxdesk's agent into the room the caller's join creates.
        assert claims.room_config is not None
        assert [a.agent_name for a in claims.room_config.agents] == ["voxdesk"]
        fresh = await client.post(MINT_PATH, json={}, headers=as_agent)
        assert fresh.status_code == 200 and fresh.json()["room"].startswith("web-")
        assert (await client.post(MINT_PATH, json={"room": "../x"}, headers=as_agent)).status_code == 422
        viewer = await client.post(MINT_PATH, json={}, headers=await bearer("viewer@voxdesk.example"))
        assert viewer.status_code == 403
        assert (await client.post(MINT_PATH, json={})).status_code == 401


async def test_the_job_entry_point_sets_up_a_sip_call(twirp: TwirpStandIn, tmp_path: Path) -> None:  # noqa: F811
    sip_caller = api.ParticipantInfo(
        identity=f"sip_{CALLER}",
        kind=api.ParticipantInfo.Kind.SIP,
        attributes={"sip.phoneNumber": CALLER, "sip.trunkPhoneNumber": DIALLED, "sip.trunkID": "ST_1"},
    )
    agent_self = api.ParticipantInfo(identity="voxdesk-AJ_7", kind=api.ParticipantInfo.Kind.AGENT)
    twirp.replies["/twirp/livekit.RoomService/ListParticipants"] = lambda req: api.ListParticipantsResponse(
        participants=[agent_self, sip_caller]
    )
    settings: Settings = make_settings(
        tmp_path,
        livekit={"url": twirp.url.replace("http://", "ws://"), "api_secret": SECRET},
        telephony={"sip_port": 0, "routes": {DIALLED: "default"}},
        voice={"connect_timeout_secs": 2.0},
    )
    proc = JobProcess(executor_type=JobExecutorType.PROCESS, user_arguments=None, http_proxy=None)
    # livekit-agents' process set-up: the runtime starts on its own thread while the process waits for a job.
    started = time.monotonic()
    prepare_process(proc, settings)
    runtime: PrewarmedRuntime = proc.userdata["runtime"]
    await runtime.voice()
    prewarm_s = time.monotonic() - started
    job = agent_proto.Job(id="AJ_7", type=agent_proto.JT_ROOM, room=api.Room(name="call-7f3a", sid="RM_7"))
    shutdowns: list[str] = []
    ctx: Any = SimpleNamespace(proc=proc, job=job, shutdown=shutdowns.append)

    started = time.monotonic()
    await entrypoint(ctx)
    elapsed = time.monotonic() - started
    print(f"livekit job: runtime prewarmed in {prewarm_s:.1f} s; job (set up, not connected, released) {elapsed:.1f} s")

    assert twirp.errors == []
    # pipecat's LiveKitTransport tried to join the room (LiveKit's /rtc signalling) with the agent token minted
    # for this job: that room only, marked agent.
    assert twirp.joins, "the transport never tried to join the room"
    for _path, _query, authorization in twirp.joins:
        claims = api.TokenVerifier(KEY, SECRET).verify(authorization.removeprefix("Bearer "))
        assert claims.identity == "voxdesk-AJ_7" and claims.kind == "agent"
        assert claims.video is not None and claims.video.room == "call-7f3a" and claims.video.room_join
    listed = [m for path, m in twirp.requests if path.endswith("/ListParticipants")]
    assert listed and all(m.room == "call-7f3a" for m in listed)  # type: ignore[attr-defined]
    assert shutdowns == ["call ended"]
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            (call,) = (await session.scalars(select(Call))).all()
    finally:
        await engine.dispose()
    # One call record from the one call setup: the SIP caller's channel, number, room and LiveKit trunk.
    assert call.channel == "sip"
    assert call.caller_number == CALLER
    expected_meta = {"transport": "livekit", "livekit_room": "call-7f3a", "livekit_job": "AJ_7", "trunk": "ST_1"}
    assert expected_meta.items() <= call.meta.items(), call.meta
    assert call.persona_id is not None  # the route's persona ("default", seeded by the runtime)
    # No LiveKit server to join: the media never connected and the line was released (docs: not exercised).
    assert call.status in {"ended", "failed"} and call.ended_at is not None
    assert call.end_reason == "media_timeout" and call.outcome == "not_connected", (call.end_reason, call.outcome)
