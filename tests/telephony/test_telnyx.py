"""Telnyx media streams against ``voxdesk serve``: Ed25519-signed Call Control webhooks answered and streamed
through a local stand-in of Telnyx's Call Control API (``telnyx_standin``: every command checked against the
documented contract), then a media client speaking Telnyx's documented WebSocket events (``connected``,
``start``, ``media`` with base64 μ-law, ``dtmf``, ``stop``) with a spoken question.

Telnyx cannot be reached here: the webhooks are signed in this file with a key pair made for the run, the way
Telnyx documents it (https://developers.telnyx.com/docs/development/api-fundamentals/webhooks: Ed25519 over
``"{telnyx-timestamp}|{raw body}"``), and the stream events follow
https://developers.telnyx.com/docs/voice/programmable-voice/media-streaming.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.e2e.conftest import VoiceServer, start_server, stop_server
from tests.pipelines.conftest import whisper_model_dir
from tests.sip.conftest import ulaw_to_pcm
from tests.telephony.telnyx_standin import TelnyxStandIn, serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

API_KEY = "KEY0123456789ABCDEF_telnyx_test"
CALLER = "+15557650001"
DIALLED = "+15550100"
SIGNING_KEY = Ed25519PrivateKey.generate()
PUBLIC_KEY = base64.b64encode(SIGNING_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def _event(event_type: str, call_control_id: str) -> bytes:
    """A Call Control webhook body as Telnyx documents it."""
    payload = {
        "call_control_id": call_control_id,
        "call_leg_id": str(uuid.uuid4()),
        "call_session_id": str(uuid.uuid4()),
        "connection_id": "1494404757140276705",
        "client_state": None,
        "from": CALLER,
        "to": DIALLED,
        "direction": "incoming",
        "state": "parked" if event_type == "call.initiated" else "answered",
    }
    data = {
        "record_type": "event",
        "event_type": event_type,
        "id": str(uuid.uuid4()),
        "occurred_at": "2026-12-04T21:00:00.000000Z",
        "payload": payload,
    }
    return json.dumps({"data": data, "meta": {"attempt": 1, "delivered_to": "voxdesk"}}).encode()


def _signed(body: bytes, *, key: Ed25519PrivateKey = SIGNING_KEY, at: int | None = None) -> dict[str, str]:
    timestamp = str(at if at is not None else int(time.time()))
    signature = key.sign(timestamp.encode() + b"|" + body)
    return {
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "telnyx-timestamp": timestamp,
        "content-type": "application/json",
    }


@pytest.fixture(scope="module")
def telnyx_api() -> Iterator[tuple[TelnyxStandIn, str]]:
    stand_in = TelnyxStandIn(api_key=API_KEY)
    server, base = serve(stand_in)
    try:
        yield stand_in, base
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def telnyx_server(
    tmp_path_factory: pytest.TempPathFactory, telnyx_api: tuple[TelnyxStandIn, str]
) -> Iterator[VoiceServer]:
    root = tmp_path_factory.mktemp("telnyx-e2e")
    proc, server = start_server(
        root / "data",
        extra_env={
            "VOXDESK_TELEPHONY__SIP_PORT": "0",
            "VOXDESK_TELEPHONY__TELNYX_API_KEY": API_KEY,
            "VOXDESK_TELEPHONY__TELNYX_PUBLIC_KEY": PUBLIC_KEY,
            "VOXDESK_TELEPHONY__TELNYX_API_URL": telnyx_api[1],
            "VOXDESK_VOICE__SILENCE_TIMEOUT_SECS": "15",
            "VOXDESK_PIPELINE__ASR__BACKEND": "faster-whisper",
            "VOXDESK_PIPELINE__ASR__MODEL_PATH": str(whisper_model_dir()),
        },
    )
    try:
        yield server
    finally:
        stop_server(proc)


def _wait_for(predicate: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)  # another process (the server) acts on its own time: nothing to await
    raise AssertionError("condition not met in time")


def _answer_call(server: VoiceServer, stand_in: TelnyxStandIn) -> tuple[str, str]:
    """Place a call through the webhooks: answered, then streamed. Returns its call_control_id and stream URL."""
    ccid = "v3:" + uuid.uuid4().hex
    stand_in.known_calls.add(ccid)
    url = server.base_url + "/api/telephony/telnyx/webhook"
    initiated = _event("call.initiated", ccid)
    assert httpx.post(url, content=initiated, headers=_signed(initiated)).status_code == 200
    _wait_for(lambda: "answer" in stand_in.actions(ccid))
    answered = _event("call.answered", ccid)
    assert httpx.post(url, content=answered, headers=_signed(answered)).status_code == 200
    _wait_for(lambda: "streaming_start" in stand_in.actions(ccid))
    start = stand_in.body(ccid, "streaming_start")
    assert start["stream_url"].startswith(server.ws_url + "/api/telephony/telnyx/stream?token=")
    assert (start["stream_bidirectional_mode"], start["stream_bidirectional_codec"]) == ("rtp", "PCMU")
    return ccid, start["stream_url"]


def test_webhooks_need_telnyx_signature(telnyx_server: VoiceServer, telnyx_api: tuple[TelnyxStandIn, str]) -> None:
    stand_in = telnyx_api[0]
    ccid = "v3:" + uuid.uuid4().hex
    stand_in.known_calls.add(ccid)
    url = telnyx_server.base_url + "/api/telephony/telnyx/webhook"
    body = _event("call.initiated", ccid)
    tampered = body.replace(CALLER.encode(), b"+15550000001")
    refused = [
        (body, {"content-type": "application/json"}),  # unsigned
        (body, _signed(body, key=Ed25519PrivateKey.generate())),  # signed with another key
        (body, _signed(body, at=int(time.time()) - 3600)),  # replayed an hour later
        (tampered, _signed(body)),  # signed, then the body changed
    ]
    for sent, headers in refused:
        response = httpx.post(url, content=sent, headers=headers)
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    time.sleep(1)
    assert stand_in.actions(ccid) == []  # nothing unsigned reached Telnyx's API
    ok = httpx.post(url, content=body, headers=_signed(body))
    assert ok.status_code == 200
    _wait_for(lambda: stand_in.actions(ccid) == ["answer"])
    assert stand_in.violations == []


def _question_ulaw(tmp_path: Path) -> bytes:
    wav = tmp_path / "q.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", "How do I reset my password?", "-o", str(wav)], check=True)
    raw = subprocess.run(
        ["sox", str(wav), "-r", "8000", "-c", "1", "-e", "mu-law", "-t", "raw", "-"], check=True, capture_output=True
    ).stdout
    return b"\xff" * 8000 * 3 + raw


async def _media_call(
    stream_url: str, ccid: str, audio: bytes, *, dtmf: str | None = None, silence_s: float = 60.0
) -> tuple[list[dict[str, Any]], int | None]:
    """Speak ``audio`` then silence until the server ends the call (or ``silence_s`` passes)."""
    stream_id = str(uuid.uuid4())
    received: list[dict[str, Any]] = []
    async with websockets.connect(stream_url) as ws:

        async def listen() -> None:
            with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                async for message in ws:
                    received.append(json.loads(message))

        start = {
            "user_id": str(uuid.uuid4()),
            "call_control_id": ccid,
            "client_state": None,
            "from": CALLER,
            "to": DIALLED,
            "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
        }

        listener = asyncio.create_task(listen())
        audio = audio + b"\xff" * int(8000 * silence_s)
        # The server may close the socket at any point (a refused token, the end of the call).
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            await ws.send(json.dumps({"event": "connected", "version": "1.0.0"}))
            opening = {"event": "start", "sequence_number": "1", "start": start, "stream_id": stream_id}
            await ws.send(json.dumps(opening))
            for seq, offset in enumerate(range(0, len(audio), 160), start=2):
                if dtmf is not None and seq == 50:
                    digit = {"digit": dtmf}
                    event = {"event": "dtmf", "stream_id": stream_id, "sequence_number": str(seq), "dtmf": digit}
                    await ws.send(json.dumps(event))
                media = {
                    "track": "inbound",
                    "chunk": str(seq - 1),
                    "timestamp": str(offset // 8),
                    "payload": base64.b64encode(audio[offset : offset + 160]).decode(),
                }
                await ws.send(
                    json.dumps({"event": "media", "sequence_number": str(seq), "media": media, "stream_id": stream_id})
                )
                await asyncio.sleep(0.02)
            stop = {"user_id": start["user_id"], "call_control_id": ccid}
            await ws.send(json.dumps({"event": "stop", "sequence_number": "0", "stop": stop, "stream_id": stream_id}))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listener, timeout=5)
        listener.cancel()
    return received, ws.close_code


def test_media_stream_call_is_answered_then_hung_up_over_rest(
    telnyx_server: VoiceServer, telnyx_api: tuple[TelnyxStandIn, str], tmp_path: Path
) -> None:
    stand_in = telnyx_api[0]
    ccid, stream_url = _answer_call(telnyx_server, stand_in)
    received, _code = asyncio.run(
        asyncio.wait_for(_media_call(stream_url, ccid, _question_ulaw(tmp_path)), timeout=150)
    )
    media = [m for m in received if m.get("event") == "media"]
    pcm = ulaw_to_pcm(b"".join(base64.b64decode(m["media"]["payload"]) for m in media))
    frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160).astype(np.float64)
    assert (np.sqrt((frames**2).mean(axis=1)) > 300).sum() > 150  # seconds of the agent's voice came back
    rows = telnyx_server.query(
        "SELECT id, caller_number, end_reason FROM calls WHERE channel = 'telephony' AND metadata LIKE ?", f"%{ccid}%"
    )
    assert len(rows) == 1 and rows[0][1] == CALLER
    # Nobody spoke after the answer: the silence timeout ended the call, and the call was hung up through REST
    # (closing the stream alone leaves a Telnyx call up).
    assert rows[0][2] == "silence_timeout"
    _wait_for(lambda: "hangup" in stand_in.actions(ccid))
    turns = telnyx_server.query("SELECT role, text FROM call_turns WHERE call_id = ? ORDER BY seq", rows[0][0])
    assert any(role == "caller" and "password" in text.lower() for role, text in turns), turns
    assert any(
        role == "agent" and ("password" in text.lower() or "reset link" in text.lower()) for role, text in turns[2:]
    ), turns
    assert CALLER not in telnyx_server.log_path.read_text()
    assert stand_in.violations == []


def test_dtmf_zero_over_the_stream_requests_a_person(
    telnyx_server: VoiceServer, telnyx_api: tuple[TelnyxStandIn, str]
) -> None:
    stand_in = telnyx_api[0]
    ccid, stream_url = _answer_call(telnyx_server, stand_in)
    asyncio.run(asyncio.wait_for(_media_call(stream_url, ccid, b"", dtmf="0", silence_s=4), timeout=60))
    rows = telnyx_server.query("SELECT id FROM calls WHERE metadata LIKE ?", f"%{ccid}%")
    assert len(rows) == 1
    call_id = rows[0][0]
    _wait_for(lambda: telnyx_server.query("SELECT source FROM handoffs WHERE call_id = ?", call_id))
    assert telnyx_server.query("SELECT source FROM handoffs WHERE call_id = ?", call_id) == [("dtmf",)]
    events = telnyx_server.query("SELECT data FROM call_events WHERE call_id = ? AND kind = 'dtmf'", call_id)
    assert events == [('{"digit": "0"}',)]
    # The caller's stop ended it: no REST hang-up for a call the caller already left.
    _wait_for(lambda: telnyx_server.query("SELECT status FROM calls WHERE id = ?", call_id) == [("ended",)])
    assert "hangup" not in stand_in.actions(ccid)


def test_stream_token_must_match_the_call(telnyx_server: VoiceServer, telnyx_api: tuple[TelnyxStandIn, str]) -> None:
    stand_in = telnyx_api[0]
    ccid, stream_url = _answer_call(telnyx_server, stand_in)
    other = "v3:" + uuid.uuid4().hex  # a start frame naming another call than the token was made for
    received, code = asyncio.run(asyncio.wait_for(_media_call(stream_url, other, b"", silence_s=1), timeout=30))
    assert code == 4403 and not [m for m in received if m.get("event") == "media"]
    _received, code = asyncio.run(
        asyncio.wait_for(_media_call(stream_url.split("?")[0], ccid, b"", silence_s=1), timeout=30)
    )
    assert code == 4403


def test_call_control_commands_follow_telnyx_contract(telnyx_api: tuple[TelnyxStandIn, str]) -> None:
    # Voxdesk's own client (agent.transports.telnyx.TelnyxApi) against the stand-in: transfer, then hang-up of a
    # call already gone (Telnyx answers 422 with code 90018: counted as done), and a key Telnyx would refuse.
    from agent.transports.telnyx import TelnyxApi

    stand_in, base = telnyx_api
    ccid = "v3:" + uuid.uuid4().hex
    stand_in.known_calls.add(ccid)
    api = TelnyxApi(base, API_KEY)
    assert asyncio.run(api.command(ccid, "transfer", {"to": "+15550199"}))
    assert stand_in.body(ccid, "transfer")["to"] == "+15550199"
    assert asyncio.run(api.command(ccid, "hangup"))  # already ended by the transfer: 90018
    assert stand_in.actions(ccid) == ["transfer"]
    assert stand_in.violations == []
    assert not asyncio.run(TelnyxApi(base, "wrong-key").command(ccid, "hangup"))
    assert len(stand_in.violations) == 1 and "Authorization must be Bearer" in stand_in.violations[0]
    stand_in.violations.clear()
