"""LiveKit without a server (issue 17): tokens, setup-sip's Twirp requests, the worker's registration.

No LiveKit server runs here. What LiveKit would check is checked with LiveKit's own code: tokens are verified with
livekit-api's ``TokenVerifier``; setup-sip and the worker's room look-up go to a local Twirp stand-in that checks
each request's path, content type, bearer token and grants, and parses its protobuf body into the request type
LiveKit's documentation names (``/twirp/livekit.SIP/CreateSIPInboundTrunk``, ``.../CreateSIPDispatchRule``,
``/twirp/livekit.RoomService/ListParticipants``); the worker registers against a local WebSocket stand-in speaking
LiveKit's agent protocol (``/agent``, protobuf ``WorkerMessage.register`` → ``ServerMessage.register``).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import WSMsgType, web
from google.protobuf import json_format
from google.protobuf.message import Message
from livekit import api
from livekit.api.access_token import Claims
from livekit.protocol import agent as agent_proto
from typer.testing import CliRunner

from agent.cli import app as cli_app
from agent.livekit import admin
from agent.livekit.worker import build_server, call_request, run_worker, sip_transfer
from config.settings import LiveKitSettings
from tests.conftest import make_settings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET = "voxdesk", "a-livekit-api-secret-of-at-least-32-chars"
RULE_EXAMPLE = ROOT / "deploy" / "livekit" / "sip-dispatch-rule.json"


def livekit_settings(**overrides: Any) -> LiveKitSettings:
    values: dict[str, Any] = {"url": "ws://127.0.0.1:7880", "api_key": KEY, "api_secret": SECRET}
    values.update(overrides)
    return LiveKitSettings(**values)


# --- tokens -------------------------------------------------------------------------------------------------------


def test_participant_token_grants_one_room_and_verifies() -> None:
    token = admin.participant_token(livekit_settings(), identity="caller-1", room="support-42", name="Ann")
    claims = api.TokenVerifier(KEY, SECRET).verify(token)
    assert claims.identity == "caller-1" and claims.name == "Ann"
    assert claims.video is not None
    assert claims.video.room_join is True and claims.video.room == "support-42"
    assert claims.video.can_publish and claims.video.can_subscribe and claims.video.can_publish_data
    # Nothing beyond joining that one room: no room admin, creation, listing or recording; not an agent.
    assert not (claims.video.room_admin or claims.video.room_create or claims.video.room_list)
    assert not (claims.video.room_record or claims.video.agent)
    assert claims.kind != "agent"
    raw = jwt.decode(token, SECRET, algorithms=["HS256"], issuer=KEY)
    assert raw["exp"] - raw["nbf"] == 600  # token_ttl_s


def test_agent_token_is_marked_agent() -> None:
    token = admin.participant_token(livekit_settings(), identity="voxdesk-J1", room="call-x", agent=True)
    claims = api.TokenVerifier(KEY, SECRET).verify(token)
    assert claims.kind == "agent" and claims.video is not None and claims.video.agent is True


def test_a_callers_token_dispatches_the_agent() -> None:
    token = admin.participant_token(livekit_settings(agent_name="desk-ai"), identity="c", room="r", dispatch=True)
    claims = api.TokenVerifier(KEY, SECRET).verify(token)
    assert claims.room_config is not None
    assert [a.agent_name for a in claims.room_config.agents] == ["desk-ai"]
    plain = api.TokenVerifier(KEY, SECRET).verify(admin.participant_token(livekit_settings(), identity="c", room="r"))
    assert not plain.room_config


def test_token_with_another_secret_or_expired_is_refused() -> None:
    token = admin.participant_token(livekit_settings(), identity="c", room="r")
    with pytest.raises(jwt.InvalidSignatureError):
        api.TokenVerifier(KEY, "another-secret-that-is-also-32-chars-long").verify(token)
    with pytest.raises(jwt.InvalidIssuerError):
        api.TokenVerifier("other-key", SECRET).verify(token)
    expired = (
        api.AccessToken(KEY, SECRET)
        .with_identity("c")
        .with_grants(api.VideoGrants(room_join=True, room="r"))
        .with_ttl(datetime.timedelta(minutes=-5))
        .to_jwt()
    )
    with pytest.raises(jwt.ExpiredSignatureError):
        api.TokenVerifier(KEY, SECRET).verify(expired)


def test_not_configured_and_short_secret_are_refused() -> None:
    with pytest.raises(admin.LiveKitNotConfigured):
        admin.participant_token(LiveKitSettings(), identity="c", room="r")
    with pytest.raises(ValueError, match="32 characters"):
        LiveKitSettings(api_secret="short")


def test_cli_token_prints_a_verifiable_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VOXDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VOXDESK_LIVEKIT__API_SECRET", SECRET)
    result = CliRunner().invoke(cli_app, ["livekit", "token", "--room", "desk", "--identity", "console-1"])
    assert result.exit_code == 0, result.output
    claims = api.TokenVerifier(KEY, SECRET).verify(result.output.strip())
    assert claims.identity == "console-1" and claims.video is not None and claims.video.room == "desk"
    assert claims.room_config is not None and claims.room_config.agents[0].agent_name == "voxdesk"


# --- a Twirp stand-in for the LiveKit server API ------------------------------------------------------------------

# LiveKit's documented Twirp methods: path -> (request type, response type, grants the bearer token must carry).
Check = Callable[[Claims, Message], None]


def _sip_admin(claims: Claims, _request: Message) -> None:
    assert claims.sip is not None and claims.sip.admin is True


def _room_admin(claims: Claims, request: Message) -> None:
    assert claims.video is not None and claims.video.room_admin is True
    assert claims.video.room == request.room  # type: ignore[attr-defined]


def _sip_call(claims: Claims, request: Message) -> None:
    assert claims.sip is not None and claims.sip.call is True
    assert claims.video is not None and claims.video.room_admin is True
    assert claims.video.room == request.room_name  # type: ignore[attr-defined]


METHODS: dict[str, tuple[type[Message], Check]] = {
    "/twirp/livekit.SIP/CreateSIPInboundTrunk": (api.CreateSIPInboundTrunkRequest, _sip_admin),
    "/twirp/livekit.SIP/CreateSIPDispatchRule": (api.CreateSIPDispatchRuleRequest, _sip_admin),
    "/twirp/livekit.RoomService/ListParticipants": (api.ListParticipantsRequest, _room_admin),
    "/twirp/livekit.SIP/TransferSIPParticipant": (api.TransferSIPParticipantRequest, _sip_call),
}


@dataclass
class TwirpStandIn:
    """Records every checked request; answers from ``replies`` (path -> callable(request) -> response message)."""

    url: str
    replies: dict[str, Callable[[Any], Message]]
    requests: list[tuple[str, Message]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    joins: list[tuple[str, dict[str, str], str]] = field(default_factory=list)


@pytest.fixture
async def twirp() -> AsyncIterator[TwirpStandIn]:
    stand_in = TwirpStandIn(url="", replies={})

    async def handle(request: web.Request) -> web.Response:
        if request.path.startswith("/rtc"):
            # A participant joining a room (LiveKit's signalling): keep its token; no SFU answers here.
            stand_in.joins.append((request.path, dict(request.query), request.headers.get("Authorization", "")))
            return web.json_response({"code": "not_found", "msg": "no LiveKit SFU in this stand-in"}, status=404)
        try:
            assert request.method == "POST"
            assert request.path in METHODS, f"not a LiveKit Twirp method: {request.path}"
            assert request.content_type == "application/protobuf"
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            assert scheme == "Bearer"
            claims = api.TokenVerifier(KEY, SECRET).verify(token)
            request_type, check = METHODS[request.path]
            message = request_type.FromString(await request.read())
            check(claims, message)
        except Exception as exc:  # the stand-in answers like Twirp and keeps the reason for the test
            stand_in.errors.append(f"{request.path}: {exc!r}")
            return web.json_response({"code": "invalid_argument", "msg": str(exc)}, status=400)
        stand_in.requests.append((request.path, message))
        reply = stand_in.replies[request.path](message)
        return web.Response(body=reply.SerializeToString(), content_type="application/protobuf")

    application = web.Application()
    application.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stand_in.url = f"http://127.0.0.1:{port}"
    yield stand_in
    await runner.cleanup()


def _sip_replies(twirp: TwirpStandIn) -> None:
    twirp.replies["/twirp/livekit.SIP/CreateSIPInboundTrunk"] = lambda req: api.SIPInboundTrunkInfo(
        sip_trunk_id="ST_trunk1", name=req.trunk.name, numbers=req.trunk.numbers
    )
    twirp.replies["/twirp/livekit.SIP/CreateSIPDispatchRule"] = lambda req: api.SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_rule1", trunk_ids=req.dispatch_rule.trunk_ids
    )


async def test_setup_sip_sends_livekits_documented_requests(twirp: TwirpStandIn) -> None:
    _sip_replies(twirp)
    settings = livekit_settings(
        url=twirp.url.replace("http://", "ws://"),
        sip_numbers=["+441234567890"],
        sip_allowed_addresses=["198.51.100.0/28"],
    )
    client = admin.livekit_api(settings)
    try:
        done = await admin.setup_sip(client, settings)
    finally:
        await client.aclose()
    assert twirp.errors == []
    assert done == admin.SipSetup(trunk_id="ST_trunk1", rule_id="SDR_rule1")
    (trunk_path, trunk), (rule_path, rule) = twirp.requests
    assert trunk_path.endswith("/CreateSIPInboundTrunk") and rule_path.endswith("/CreateSIPDispatchRule")
    # The JSON LiveKit's docs show for `lk sip inbound create` and `lk sip dispatch create`.
    assert json_format.MessageToDict(trunk) == {
        "trunk": {"name": "voxdesk-inbound", "numbers": ["+441234567890"], "allowedAddresses": ["198.51.100.0/28"]}
    }
    assert json_format.MessageToDict(rule) == {
        "dispatchRule": {
            "name": "voxdesk-individual",
            "trunkIds": ["ST_trunk1"],
            "rule": {"dispatchRuleIndividual": {"roomPrefix": "call-"}},
            "roomConfig": {"agents": [{"agentName": "voxdesk"}]},
        }
    }


async def test_setup_sip_with_the_example_rule_file(twirp: TwirpStandIn) -> None:
    _sip_replies(twirp)
    settings = livekit_settings(url=twirp.url, sip_numbers=["+441234567890"])
    client = admin.livekit_api(settings)
    try:
        await admin.setup_sip(client, settings, rule_file=RULE_EXAMPLE)
    finally:
        await client.aclose()
    assert twirp.errors == []
    rule = twirp.requests[1][1]
    assert isinstance(rule, api.CreateSIPDispatchRuleRequest)
    assert list(rule.dispatch_rule.trunk_ids) == ["ST_trunk1"]  # bound to the trunk just created
    assert rule.dispatch_rule.rule.WhichOneof("rule") == "dispatch_rule_individual"
    assert [a.agent_name for a in rule.dispatch_rule.room_config.agents] == ["voxdesk"]


def test_example_rule_file_is_livekits_json() -> None:
    # json_format.Parse refuses unknown fields: every key of the example is one LiveKit's protocol defines.
    request = admin.load_dispatch_rule(RULE_EXAMPLE)
    assert request.dispatch_rule.rule.dispatch_rule_individual.room_prefix == "call-"
    bad = json.loads(RULE_EXAMPLE.read_text())
    bad["dispatch_rule"]["agent"] = "typo"
    with pytest.raises(json_format.ParseError):
        json_format.Parse(json.dumps(bad), api.CreateSIPDispatchRuleRequest())


async def test_cli_setup_sip_against_the_stand_in(
    twirp: TwirpStandIn, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _sip_replies(twirp)
    for name, value in {
        "VOXDESK_DATA_DIR": str(tmp_path),
        "VOXDESK_LIVEKIT__URL": twirp.url,
        "VOXDESK_LIVEKIT__API_SECRET": SECRET,
        "VOXDESK_LIVEKIT__SIP_NUMBERS": '["+441234567890"]',
    }.items():
        monkeypatch.setenv(name, value)
    # The stand-in serves on this test's event loop: the CLI (its own asyncio.run) runs in a thread.
    result = await asyncio.to_thread(CliRunner().invoke, cli_app, ["livekit", "setup-sip"])
    assert result.exit_code == 0, result.output
    assert "inbound trunk ST_trunk1, dispatch rule SDR_rule1" in result.output
    assert twirp.errors == [] and len(twirp.requests) == 2
    dry = await asyncio.to_thread(CliRunner().invoke, cli_app, ["livekit", "setup-sip", "--dry-run"])
    assert dry.exit_code == 0 and '"roomPrefix": "call-"' in dry.output
    assert len(twirp.requests) == 2  # a dry run sends nothing


async def test_cli_setup_sip_reports_an_unreachable_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    port = _closed_port()
    for name, value in {
        "VOXDESK_DATA_DIR": str(tmp_path),
        "VOXDESK_LIVEKIT__URL": f"ws://127.0.0.1:{port}",
        "VOXDESK_LIVEKIT__API_SECRET": SECRET,
        "VOXDESK_LIVEKIT__SIP_NUMBERS": '["+441234567890"]',
    }.items():
        monkeypatch.setenv(name, value)
    result = await asyncio.to_thread(CliRunner().invoke, cli_app, ["livekit", "setup-sip"])
    assert result.exit_code == 3
    assert "could not be reached" in result.output


# --- the worker's registration ------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _worker_settings(tmp_path: Path, url: str) -> Any:
    return make_settings(tmp_path, livekit={"url": url, "api_secret": SECRET, "num_idle_processes": 0})


async def test_worker_fails_fast_against_a_closed_port(tmp_path: Path) -> None:
    settings = _worker_settings(tmp_path, f"ws://127.0.0.1:{_closed_port()}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RuntimeError, match="failed to connect to livekit"):
        await asyncio.wait_for(run_worker(settings, max_retry=0), timeout=60)
    assert loop.time() - started < 30  # no retry loop: one refused connection is the end


async def test_cli_worker_exits_3_when_livekit_is_unreachable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in {
        "VOXDESK_DATA_DIR": str(tmp_path),
        "VOXDESK_LIVEKIT__URL": f"ws://127.0.0.1:{_closed_port()}",
        "VOXDESK_LIVEKIT__API_SECRET": SECRET,
        "VOXDESK_LIVEKIT__NUM_IDLE_PROCESSES": "0",
    }.items():
        monkeypatch.setenv(name, value)
    result = await asyncio.to_thread(CliRunner().invoke, cli_app, ["worker", "--max-retry", "0"])
    assert result.exit_code == 3, result.output
    assert "failed to connect to livekit" in result.output
    monkeypatch.delenv("VOXDESK_LIVEKIT__API_SECRET")
    result = await asyncio.to_thread(CliRunner().invoke, cli_app, ["worker", "--max-retry", "0"])
    assert result.exit_code == 2 and "VOXDESK_LIVEKIT__API_SECRET" in result.output


async def test_worker_registers_with_livekits_agent_protocol(tmp_path: Path) -> None:
    registered: list[agent_proto.RegisterWorkerRequest] = []
    claims_seen: list[Claims] = []
    done = asyncio.Event()

    async def agent_ws(request: web.Request) -> web.WebSocketResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        assert scheme == "Bearer"
        claims_seen.append(api.TokenVerifier(KEY, SECRET).verify(token))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        first = await ws.receive()
        assert first.type == WSMsgType.BINARY
        message = agent_proto.WorkerMessage.FromString(first.data)
        assert message.WhichOneof("message") == "register"
        registered.append(message.register)
        reply = agent_proto.ServerMessage(register=agent_proto.RegisterWorkerResponse(worker_id="AW_standin"))
        await ws.send_bytes(reply.SerializeToString())
        done.set()
        async for _ in ws:  # keep the connection until the worker closes it
            pass
        return ws

    application = web.Application()
    application.router.add_get("/agent", agent_ws)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server = build_server(_worker_settings(tmp_path, f"ws://127.0.0.1:{port}"), max_retry=0)
    task = asyncio.create_task(server.run(devmode=True))
    try:
        await asyncio.wait_for(done.wait(), timeout=60)
        for _ in range(100):
            if server.id == "AW_standin":
                break
            await asyncio.sleep(0.05)
    finally:
        await server.aclose()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runner.cleanup()
    assert server.id == "AW_standin"
    (register,) = registered
    assert register.agent_name == "voxdesk"
    assert register.type == agent_proto.JT_ROOM
    assert register.allowed_permissions.agent is True
    assert claims_seen[0].video is not None and claims_seen[0].video.agent is True


# --- what a dispatched job becomes --------------------------------------------------------------------------------


def _job(room: str, participant: api.ParticipantInfo | None = None) -> agent_proto.Job:
    job = agent_proto.Job(id="AJ_1", type=agent_proto.JT_ROOM, room=api.Room(name=room, sid="RM_1"))
    if participant is not None:
        job.participant.CopyFrom(participant)
    return job


def test_a_sip_participant_routes_by_the_dialled_number() -> None:
    caller = api.ParticipantInfo(
        identity="sip_+447700900123",
        kind=api.ParticipantInfo.Kind.SIP,
        attributes={"sip.phoneNumber": "+447700900123", "sip.trunkPhoneNumber": "+441234567891", "sip.trunkID": "ST_1"},
    )
    request = call_request(_job("call-abc", caller), caller, {"+441234567891": "billing"})
    assert request.channel == "sip" and request.persona == "billing"
    assert request.caller_number == "+447700900123"
    assert request.meta == {"transport": "livekit", "livekit_room": "call-abc", "livekit_job": "AJ_1", "trunk": "ST_1"}
    other = api.ParticipantInfo(kind=api.ParticipantInfo.Kind.SIP, attributes={"sip.trunkPhoneNumber": "+440000000000"})
    assert call_request(_job("call-x"), other, {"+441234567891": "billing"}).persona == "default"


def test_a_signed_in_users_participant_counts_against_that_user() -> None:
    user = api.ParticipantInfo(identity="user-0b9c", kind=api.ParticipantInfo.Kind.STANDARD)
    request = call_request(_job("web-1"), user, {})
    assert request.channel == "livekit" and request.rate_key == "user:0b9c" and request.created_by == "0b9c"


def test_a_browser_participant_is_a_livekit_call() -> None:
    browser = api.ParticipantInfo(identity="web-1", kind=api.ParticipantInfo.Kind.STANDARD)
    request = call_request(_job("support-1"), browser, {})
    assert request.channel == "livekit" and request.caller_number is None
    assert request.rate_key == "livekit:web-1" and request.created_by is None


async def test_a_sip_caller_is_cold_transferred_through_livekit(twirp: TwirpStandIn) -> None:
    twirp.replies["/twirp/livekit.SIP/TransferSIPParticipant"] = lambda req: api.TransferSIPParticipantResponse()
    client = admin.livekit_api(livekit_settings(url=twirp.url))
    try:
        transfer = sip_transfer(client, room="call-1", identity="sip_+447700900123")
        assert await transfer("sip:desk@pbx.example.com") is True
    finally:
        await client.aclose()
    # The server refusing (here: a token signed with another secret) is "not transferred", never a raise.
    other = admin.livekit_api(livekit_settings(url=twirp.url, api_secret="another-secret-that-is-also-32-chars-long"))
    try:
        assert await sip_transfer(other, room="call-1", identity="sip_+447700900123")("tel:+441234567890") is False
    finally:
        await other.aclose()
    (path, request), *_ = twirp.requests
    assert path == "/twirp/livekit.SIP/TransferSIPParticipant"
    assert isinstance(request, api.TransferSIPParticipantRequest)
    assert (request.room_name, request.participant_identity, request.transfer_to) == (
        "call-1",
        "sip_+447700900123",
        "sip:desk@pbx.example.com",
    )
    assert len(twirp.errors) == 1  # the refused one
