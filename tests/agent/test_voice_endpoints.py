"""Voice endpoints' admission and refusals: caller page, embed key, SDP errors, rate limit, capacity, WS auth.

The refusals all happen before a pipeline is built, so the app here mounts the voice routers over a
``VoiceService`` whose pipeline factory must not be reached. Full calls are in ``tests/e2e``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
import uvicorn
import websockets
from aiortc import RTCPeerConnection
from fastapi.testclient import TestClient
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.transports.base_transport import BaseTransport
from pydantic import SecretStr
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect

from agent.calls.service import CallPlan, VoiceService
from agent.calls.session import CallSession
from agent.cli import uvicorn_config
from agent.transports.webrtc import STATIC_DIR, webrtc_router
from agent.transports.websocket import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, ws_stream_router
from config import Settings
from control_api.app import create_app
from control_api.db.models import Call
from control_api.logging_setup import configure_logging, flush_logs
from control_api.middleware import access_log
from control_api.problems import ProblemError
from control_api.rbac import Role
from pipelines.contracts import PersonaSpec
from tests.agent.conftest import make_token
from tests.conftest import make_settings

pytestmark = pytest.mark.integration


def _no_pipeline(*, transport: object, call: CallSession, persona: PersonaSpec) -> CallPlan:
    raise AssertionError("no call should reach the pipeline in these tests")


def _client(settings: Settings, *, max_calls: int = 4) -> TestClient:
    return _client_and_voice(settings, max_calls=max_calls)[0]


def _client_and_voice(settings: Settings, *, max_calls: int = 4) -> tuple[TestClient, VoiceService]:
    voice = VoiceService(
        max_calls=max_calls,
        silence_timeout_secs=60,
        max_call_secs=600,
        embed_key=settings.voice.embed_key.get_secret_value() if settings.voice.embed_key else None,
        pipeline_factory=_no_pipeline,
    )
    app = create_app(settings, routers=[webrtc_router(voice), ws_stream_router(voice)], startup_hooks=[voice.startup])
    return TestClient(app, raise_server_exceptions=False), voice


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with _client(settings) as test_client:
        yield test_client


def test_caller_page_is_public_and_self_contained(client: TestClient) -> None:
    page = client.get("/call")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    script = client.get("/call/call.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert client.get("/call/call.css").status_code == 200
    missing = client.get("/call/secrets.txt")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    # No CDN: every URL the page and its script load is relative to the server.
    for name in ("call.html", "call.js"):
        text = (STATIC_DIR / name).read_text()
        assert not re.search(r"https?://", text), name


def test_default_persona_is_seeded(client: TestClient) -> None:
    _, token = make_token(client, Role.ADMIN)
    persona = client.get("/api/personas/default", headers={"Authorization": f"Bearer {token}"})
    assert persona.status_code == 200
    assert "record" in persona.json()["consent_notice"].lower()


def test_offer_validation_and_bad_sdp(client: TestClient) -> None:
    assert client.post("/api/voice/webrtc/offer", json={}).status_code == 422
    bad = client.post("/api/voice/webrtc/offer", json={"sdp": "this is not an sdp offer", "type": "offer"})
    assert bad.status_code == 400, bad.text
    assert bad.json()["type"].endswith("/bad-sdp")
    unknown_pc = client.post("/api/voice/webrtc/offer", json={"sdp": "v=0 whatever", "pc_id": "nope"})
    assert unknown_pc.status_code == 404
    patch = client.patch("/api/voice/webrtc/offer", json={"pc_id": "nope", "candidates": []})
    assert patch.status_code == 404


def test_embed_key_required_when_configured(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.voice.embed_key = SecretStr("site-key-123")
    with _client(settings) as client:
        refused = client.post("/api/voice/webrtc/offer", json={"sdp": "v=0 not used", "type": "offer"})
        assert refused.status_code == 403 and refused.json()["type"].endswith("/embed-key-required")
        wrong = client.post("/api/voice/webrtc/offer", json={"sdp": "v=0 not used", "embed_key": "guess"})
        assert wrong.status_code == 403
        # The right key gets past admission (and then fails on the SDP, which is the client's error).
        right = client.post(
            "/api/voice/webrtc/offer", json={"sdp": "v=0 not used"}, headers={"X-Voxdesk-Embed-Key": "site-key-123"}
        )
        assert right.status_code == 400


def test_voice_rate_limit_per_ip(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.rate_limits.voice = "2/hour"
    with _client(settings) as client:
        codes = [client.post("/api/voice/webrtc/offer", json={"sdp": "v=0 not used"}).status_code for _ in range(3)]
        assert codes == [400, 400, 429]
        limited = client.post("/api/voice/webrtc/offer", json={"sdp": "v=0 not used"})
        assert int(limited.headers["Retry-After"]) > 0


def test_trunk_calls_count_against_the_phone_limit_not_the_callers_one(tmp_path: Path) -> None:
    """A trunk carries many callers: its calls are held to ``phone`` per trunk, never to ``voice``."""
    settings = make_settings(tmp_path)
    settings.rate_limits.voice = "1/hour"
    settings.rate_limits.phone = "3/hour"
    test_client, service = _client_and_voice(settings)
    with test_client as client:
        assert client.portal is not None
        portal = client.portal
        for _ in range(3):  # three times the voice limit, within the trunk's
            portal.call(lambda: service.admit(rate_key="trunk:carrier", channel="sip"))
        with pytest.raises(ProblemError) as refused:
            portal.call(lambda: service.admit(rate_key="trunk:carrier", channel="sip"))
        assert refused.value.status == 429 and "phone limit" in refused.value.detail
        portal.call(lambda: service.admit(rate_key="trunk:other", channel="sip"))  # each trunk has its own count
        portal.call(lambda: service.admit(rate_key="ip:192.0.2.7", channel="websocket"))
        with pytest.raises(ProblemError):
            portal.call(lambda: service.admit(rate_key="ip:192.0.2.7", channel="websocket"))


def test_capacity_refuses_with_503(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    test_client, service = _client_and_voice(settings, max_calls=1)
    with test_client as client:
        # Take the only line through the registry, as a call in progress would.
        assert client.portal is not None
        call = client.portal.call(lambda: service.registry.open(channel="webrtc"))
        busy = client.post("/api/voice/webrtc/offer", json={"sdp": "v=0 not used"})
        assert busy.status_code == 503 and busy.json()["type"].endswith("/calls-at-capacity")
        client.portal.call(call.end, "test_done")
        assert client.post("/api/voice/webrtc/offer", json={"sdp": "v=0 not used"}).status_code == 400


def _ws_close_code(client: TestClient, url: str, headers: dict[str, str] | None = None) -> int:
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(url, headers=headers or {}) as ws:
        ws.receive_text()
    return closed.value.code


def test_ws_stream_authentication(client: TestClient) -> None:
    assert _ws_close_code(client, "/api/voice/stream") == CLOSE_UNAUTHENTICATED
    assert _ws_close_code(client, "/api/voice/stream?access_token=garbage") == CLOSE_UNAUTHENTICATED
    _, viewer = make_token(client, Role.VIEWER)
    assert _ws_close_code(client, f"/api/voice/stream?access_token={viewer}") == CLOSE_FORBIDDEN
    assert _ws_close_code(client, "/api/voice/stream", headers={"Authorization": f"Bearer {viewer}"}) == CLOSE_FORBIDDEN


def test_ws_stream_refuses_a_signed_out_token(client: TestClient) -> None:
    # The WebSocket and the HTTP API share one token check: a token signed out over HTTP opens no call.
    make_token(client, Role.AGENT, email="signed.out@example.com")
    login = client.post(
        "/api/auth/login", data={"username": "signed.out@example.com", "password": "correct-horse-battery"}
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/auth/me", headers=headers).status_code == 200
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/auth/me", headers=headers).status_code == 401
    assert _ws_close_code(client, f"/api/voice/stream?access_token={token}") == CLOSE_UNAUTHENTICATED
    assert _ws_close_code(client, "/api/voice/stream", headers=headers) == CLOSE_UNAUTHENTICATED


@contextlib.contextmanager
def _access_log_events() -> Iterator[list[MutableMapping[str, Any]]]:
    """The access log's events while the block runs, whichever test used that logger first.

    A structlog proxy caches its processors on first use (``cache_logger_on_first_use``), and one cached before
    ``capture_logs`` would bypass the capture; its cache is dropped before and after, so it follows the capture
    and then the configuration again.
    """
    vars(access_log).pop("bind", None)
    try:
        with structlog.testing.capture_logs() as events:
            yield events
    finally:
        vars(access_log).pop("bind", None)


def test_ws_access_token_never_reaches_the_logs(client: TestClient) -> None:
    _, token = make_token(client, Role.VIEWER, email="logged@example.com")
    with _access_log_events() as events:
        assert _ws_close_code(client, f"/api/voice/stream?access_token={token}") == CLOSE_FORBIDDEN
        client.get(f"/health/live?access_token={token}")
    assert any(event.get("path") == "/api/voice/stream" for event in events), events
    assert token not in repr(events)


def _passthrough(*, transport: BaseTransport, call: CallSession, persona: PersonaSpec) -> CallPlan:
    # The smallest real pipeline: the call's media in and out (these calls never connect).
    return CallPlan(worker=PipelineWorker(Pipeline([transport.input(), transport.output()])))


async def _unreachable_offer() -> str:
    # A real browser-like offer whose only ICE candidate is a closed loopback port: the media never connects.
    peer = RTCPeerConnection()
    peer.addTransceiver("audio", direction="sendrecv")
    await peer.setLocalDescription(await peer.createOffer())
    sdp = peer.localDescription.sdp
    await peer.close()
    lines = [line for line in sdp.splitlines() if not line.startswith("a=candidate:")]
    at = next(i for i, line in enumerate(lines) if line.startswith("a=end-of-candidates") or line.startswith("m=audio"))
    lines.insert(at + 1, "a=candidate:1 1 UDP 2130706431 127.0.0.1 9 typ host")
    return "\r\n".join(lines) + "\r\n"


def test_calls_that_never_connect_are_released_and_capped_per_address(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    voice = VoiceService(
        max_calls=16,
        silence_timeout_secs=60,
        max_call_secs=600,
        embed_key=None,
        pipeline_factory=_passthrough,
        connect_timeout_secs=1.5,
        max_connecting_per_address=2,
    )
    app = create_app(settings, routers=[webrtc_router(voice)], startup_hooks=[voice.startup])
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.portal is not None
        offers = [client.portal.call(_unreachable_offer) for _ in range(3)]
        first, second, third = (client.post("/api/voice/webrtc/offer", json={"sdp": sdp}) for sdp in offers)
        assert first.status_code == 200 and second.status_code == 200, (first.text, second.text)
        # A third line held by the same address while two still connect is refused; other callers keep theirs.
        assert third.status_code == 429 and third.json()["type"].endswith("/calls-connecting")
        deadline = time.monotonic() + 15
        while len(voice.registry) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(voice.registry) == 0  # both lines released, not held for a minute

        async def outcomes() -> list[tuple[str | None, str | None]]:
            async with voice.state.sessions() as session:
                rows = (await session.execute(select(Call.outcome, Call.end_reason))).all()
            return [(row[0], row[1]) for row in rows]

        assert sorted(client.portal.call(outcomes)) == [("not_connected", "media_timeout")] * 2
        # The address may call again once its stale lines are gone.
        again = client.post("/api/voice/webrtc/offer", json={"sdp": client.portal.call(_unreachable_offer)})
        assert again.status_code == 200, again.text


def test_ice_candidate_patches_are_rate_limited(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.rate_limits.ice = "3/minute"
    with _client(settings) as client:
        codes = [
            client.patch("/api/voice/webrtc/offer", json={"pc_id": "nope", "candidates": []}).status_code
            for _ in range(4)
        ]
        assert codes == [404, 404, 404, 429]


@contextlib.contextmanager
def _served(app: Any) -> Iterator[int]:
    """``app`` behind real uvicorn, configured as ``voxdesk serve`` runs it; yields the port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_a_websocket_token_stays_out_of_the_server_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Through real uvicorn: it logs every WebSocket's path with its query ("WebSocket /...?access_token=...").
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging(level="INFO", json_logs=True)
    settings = make_settings(tmp_path)
    app = _client_and_voice(settings)[0].app
    secret = "eyJhbGciOiJIUzI1NiJ9.not-a-real-token.secret-part"
    try:
        with _served(app) as port:

            async def connect() -> int | None:
                async with websockets.connect(f"ws://127.0.0.1:{port}/api/voice/stream?access_token={secret}") as ws:
                    with contextlib.suppress(websockets.ConnectionClosed):
                        await ws.recv()
                    return ws.close_code

            assert asyncio.run(connect()) == CLOSE_UNAUTHENTICATED
    finally:
        flush_logs()
        logging.getLogger().handlers.clear()
    text = stream.getvalue()
    assert "/api/voice/stream?<redacted>" in text, text[-2000:]
    assert secret not in text and "not-a-real-token" not in text


def test_the_server_declines_websocket_compression(tmp_path: Path) -> None:
    # A call's socket carries raw 20 ms PCM frames: the server must not deflate each one on the audio loop,
    # whatever the client offers (browsers and the websockets library both offer permessage-deflate).
    app = _client_and_voice(make_settings(tmp_path))[0].app
    with _served(app) as port:

        async def negotiated() -> tuple[str | None, str | None]:
            async with websockets.connect(f"ws://127.0.0.1:{port}/api/voice/stream", compression="deflate") as ws:
                assert ws.request is not None and ws.response is not None
                offered = ws.request.headers.get("Sec-WebSocket-Extensions")
                return offered, ws.response.headers.get("Sec-WebSocket-Extensions")

        offered, accepted = asyncio.run(negotiated())
    assert offered is not None and "permessage-deflate" in offered
    assert accepted is None
