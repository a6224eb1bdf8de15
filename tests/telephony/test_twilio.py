"""Twilio Media Streams against ``voxdesk serve``: the signed webhook's TwiML, and a media stream client sending
Twilio's documented ``connected``/``start``/``media``/``stop`` events with a spoken question in base64 μ-law.

Twilio itself cannot be reached here: this client stands in for it and follows its documented contract
(https://www.twilio.com/docs/voice/media-streams/websocket-messages, and the request-signature algorithm
https://www.twilio.com/docs/usage/security#validating-requests, implemented here independently).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import websockets

from agent.transports.twilio import TwilioApi, dial_twiml
from tests.e2e.conftest import VoiceServer, start_server, stop_server
from tests.pipelines.conftest import whisper_model_dir
from tests.sip.conftest import ulaw_to_pcm
from tests.telephony.telnyx_standin import serve
from tests.telephony.twilio_standin import TwilioStandIn

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "twilio-test-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "2" * 32
TRANSFER_TO = "+15550199"
CALLER = "+15557654321"
CALL_SID = "CA" + "0" * 32
STREAM_SID = "MZ" + "1" * 32


def sign(url: str, params: dict[str, str] | None = None) -> str:
    """Twilio's documented signature: HMAC-SHA1 over the URL then each POST parameter (sorted), base64."""
    data = url
    for key in sorted(params or {}):
        data += key + (params or {})[key]
    return base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()


@pytest.fixture(scope="module")
def twilio_api() -> Iterator[tuple[TwilioStandIn, str]]:
    stand_in = TwilioStandIn(account_sid=ACCOUNT_SID, auth_token=TOKEN)
    server, base = serve(stand_in, base_path="")
    try:
        yield stand_in, base
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def twilio_server(
    tmp_path_factory: pytest.TempPathFactory, twilio_api: tuple[TwilioStandIn, str]
) -> Iterator[VoiceServer]:
    root = tmp_path_factory.mktemp("twilio-e2e")
    proc, server = start_server(
        root / "data",
        extra_env={
            "VOXDESK_TELEPHONY__SIP_PORT": "0",
            "VOXDESK_TELEPHONY__TWILIO_AUTH_TOKEN": TOKEN,
            "VOXDESK_TELEPHONY__TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "VOXDESK_TELEPHONY__TWILIO_API_URL": twilio_api[1],
            "VOXDESK_VOICE__SILENCE_TIMEOUT_SECS": "12",
            "VOXDESK_PIPELINE__ASR__BACKEND": "faster-whisper",
            "VOXDESK_PIPELINE__ASR__MODEL_PATH": str(whisper_model_dir()),
        },
    )
    try:
        yield server
    finally:
        stop_server(proc)


def test_webhook_answers_twiml_only_when_signed(twilio_server: VoiceServer) -> None:
    url = twilio_server.base_url + "/api/telephony/twilio/voice"
    form = {
        "CallSid": CALL_SID,
        "AccountSid": "AC" + "2" * 32,
        "From": CALLER,
        "To": "+15550100",
        "CallStatus": "ringing",
    }
    ok = httpx.post(url, data=form, headers={"X-Twilio-Signature": sign(url, form)})
    assert ok.status_code == 200, ok.text
    assert ok.headers["content-type"].startswith("application/xml")
    stream = re.search(r'<Connect><Stream url="([^"]+)">', ok.text)
    assert stream is not None and stream.group(1) == twilio_server.ws_url + "/api/telephony/twilio/stream"
    assert f'<Parameter name="from_number" value="{CALLER}"/>' in ok.text
    for headers in ({"X-Twilio-Signature": sign(url, {**form, "From": "+10000000000"})}, {}):
        bad = httpx.post(url, data=form, headers=headers)
        assert bad.status_code == 403
        assert bad.headers["content-type"].startswith("application/problem+json")


def _question_ulaw(tmp_path: Path) -> bytes:
    wav = tmp_path / "q.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", "How do I reset my password?", "-o", str(wav)], check=True)
    raw = subprocess.run(
        ["sox", str(wav), "-r", "8000", "-c", "1", "-e", "mu-law", "-t", "raw", "-"], check=True, capture_output=True
    ).stdout
    return b"\xff" * 8000 * 3 + raw + b"\xff" * 8000 * 14  # μ-law silence around the question


async def _media_call(server: VoiceServer, audio: bytes) -> list[dict[str, Any]]:
    url = server.ws_url + "/api/telephony/twilio/stream"
    received: list[dict[str, Any]] = []
    async with websockets.connect(url, additional_headers={"X-Twilio-Signature": sign(url)}) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        start = {
            "accountSid": "AC" + "2" * 32,
            "streamSid": STREAM_SID,
            "callSid": CALL_SID,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"from_number": CALLER, "to_number": "+15550100"},
        }
        await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "start": start, "streamSid": STREAM_SID}))

        async def listen() -> None:
            async for message in ws:
                received.append(json.loads(message))

        listener = asyncio.create_task(listen())
        # The server may end the call first: its silence timeout (12 s here) can run out during the trailing
        # silence when a loaded machine sends the frames slower than real time. That is a normal end of call.
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            for seq, offset in enumerate(range(0, len(audio), 160), start=2):
                media = {"track": "inbound", "chunk": str(seq - 1), "timestamp": str(offset // 8), "payload": ""}
                media["payload"] = base64.b64encode(audio[offset : offset + 160]).decode()
                await ws.send(
                    json.dumps({"event": "media", "sequenceNumber": str(seq), "media": media, "streamSid": STREAM_SID})
                )
                await asyncio.sleep(0.02)
            stop = {"callSid": CALL_SID}
            await ws.send(json.dumps({"event": "stop", "sequenceNumber": "0", "streamSid": STREAM_SID, "stop": stop}))
        await ws.close()
        listener.cancel()
    return received


def test_media_stream_call_is_answered(twilio_server: VoiceServer, tmp_path: Path) -> None:
    received = asyncio.run(asyncio.wait_for(_media_call(twilio_server, _question_ulaw(tmp_path)), timeout=90))
    media = [m for m in received if m.get("event") == "media"]
    assert media and all(m["streamSid"] == STREAM_SID for m in media)
    pcm = ulaw_to_pcm(b"".join(base64.b64decode(m["media"]["payload"]) for m in media))
    frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160).astype(np.float64)
    assert (np.sqrt((frames**2).mean(axis=1)) > 300).sum() > 150  # seconds of the agent's voice came back
    rows = twilio_server.query("SELECT id, channel, caller_number FROM calls WHERE channel = 'telephony'")
    assert len(rows) == 1 and rows[0][2] == CALLER
    _wait_ended(twilio_server, rows[0][0])
    turns = twilio_server.query("SELECT role, text FROM call_turns WHERE call_id = ? ORDER BY seq", rows[0][0])
    assert any(role == "caller" and "password" in text.lower() for role, text in turns), turns
    assert any(
        role == "agent" and ("password" in text.lower() or "reset link" in text.lower()) for role, text in turns[2:]
    ), turns


def test_media_stream_with_a_bad_signature_is_refused(twilio_server: VoiceServer) -> None:
    async def attempt() -> int | None:
        url = twilio_server.ws_url + "/api/telephony/twilio/stream"
        async with websockets.connect(url, additional_headers={"X-Twilio-Signature": "bm90IGl0"}) as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return ws.close_code

    assert asyncio.run(attempt()) == 4403


async def _keyed_call(
    server: VoiceServer, call_sid: str, *, frames: int, until: Callable[[], bool] | None = None
) -> None:
    """A stream of silence with a DTMF 0 (Twilio's documented ``dtmf`` event) 1.2 s in; ends after ``frames`` frames
    of 20 ms, or when ``until`` holds (then with Twilio's ``stop``, as when Twilio runs new TwiML).
    """
    url = server.ws_url + "/api/telephony/twilio/stream"
    async with websockets.connect(url, additional_headers={"X-Twilio-Signature": sign(url)}) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        start = {"streamSid": STREAM_SID, "callSid": call_sid, "tracks": ["inbound"], "customParameters": {}}
        opening = {"event": "start", "sequenceNumber": "1", "start": start, "streamSid": STREAM_SID}
        await ws.send(json.dumps(opening))
        silence = base64.b64encode(b"\xff" * 160).decode()
        for seq in range(2, frames):
            if seq == 60:
                dtmf = {"event": "dtmf", "streamSid": STREAM_SID, "sequenceNumber": str(seq)}
                await ws.send(json.dumps({**dtmf, "dtmf": {"track": "inbound_track", "digit": "0"}}))
            if until is not None and until():
                stop = {"event": "stop", "sequenceNumber": str(seq), "streamSid": STREAM_SID}
                await ws.send(json.dumps({**stop, "stop": {"callSid": call_sid}}))
                return
            media = {"track": "inbound", "chunk": str(seq), "timestamp": str(seq * 20), "payload": silence}
            await ws.send(json.dumps({"event": "media", "sequenceNumber": str(seq), "media": media}))
            await asyncio.sleep(0.02)


def test_dtmf_zero_over_the_stream_requests_a_person(twilio_server: VoiceServer) -> None:
    # Twilio's documented dtmf event (https://www.twilio.com/docs/voice/media-streams/websocket-messages#dtmf-message)
    # goes through the phone lines' one DTMF rule: the digit is stored, 0 asks for a person.
    call_sid = "CA" + "3" * 32
    asyncio.run(asyncio.wait_for(_keyed_call(twilio_server, call_sid, frames=200), timeout=60))
    rows = twilio_server.query("SELECT id FROM calls WHERE metadata LIKE ?", f"%{call_sid}%")
    assert len(rows) == 1
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not twilio_server.query(
        "SELECT source FROM handoffs WHERE call_id = ?", rows[0][0]
    ):
        time.sleep(0.2)  # the server (another process) records the handoff on its own time
    assert twilio_server.query("SELECT source FROM handoffs WHERE call_id = ?", rows[0][0]) == [("dtmf",)]
    events = twilio_server.query("SELECT data FROM call_events WHERE call_id = ? AND kind = 'dtmf'", rows[0][0])
    assert events == [('{"digit": "0"}',)]


def _wait_ended(server: VoiceServer, call_id: str) -> None:
    deadline = time.monotonic() + 30
    ended = "SELECT 1 FROM calls WHERE id = ? AND ended_at IS NULL"
    while time.monotonic() < deadline and server.query(ended, call_id):
        time.sleep(0.2)  # the server is another process: the call's end (and its last turns) lands on its own time


def _set_policy(server: VoiceServer, **changes: Any) -> dict[str, Any]:
    """Change the default persona's handoff policy; returns the previous one."""
    headers = {"Authorization": f"Bearer {server.token('supervisor')}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
        previous: dict[str, Any] = http.get("/api/handoffs/policies/default").json()
        put = http.put("/api/handoffs/policies/default", json={**previous, **changes})
        assert put.status_code == 200, put.text
    return previous


def test_a_persona_with_a_cold_transfer_dials_the_target_through_twilios_rest_api(
    twilio_server: VoiceServer, twilio_api: tuple[TwilioStandIn, str]
) -> None:
    stand_in, _ = twilio_api
    call_sid = "CA" + "4" * 32
    previous = _set_policy(twilio_server, cold_transfer_to=TRANSFER_TO)

    try:
        # Twilio runs the new TwiML once the transfer is sent: it stops the stream and dials the target.
        call = _keyed_call(twilio_server, call_sid, frames=1500, until=lambda: bool(stand_in.of(call_sid)))
        asyncio.run(asyncio.wait_for(call, timeout=60))
    finally:
        _set_policy(twilio_server, **previous)
    assert stand_in.violations == []
    [update] = stand_in.of(call_sid)  # the transfer, and no hang-up after it
    assert update == {"Twiml": dial_twiml(TRANSFER_TO)}
    assert f"<Dial><Number>{TRANSFER_TO}</Number></Dial>" in update["Twiml"]
    [(call_id,)] = twilio_server.query("SELECT id FROM calls WHERE metadata LIKE ?", f"%{call_sid}%")
    _wait_ended(twilio_server, call_id)
    assert twilio_server.query("SELECT end_reason FROM calls WHERE id = ?", call_id) == [("transferred",)]
    [(status, timeline)] = twilio_server.query("SELECT status, timeline FROM handoffs WHERE call_id = ?", call_id)
    assert status == "transferred" and [s["status"] for s in json.loads(timeline)] == ["cold_transfer", "transferred"]


def test_the_rest_client_follows_the_contract_and_takes_an_ended_call_as_done(
    twilio_api: tuple[TwilioStandIn, str],
) -> None:
    stand_in, base = twilio_api
    call_sid = "CA" + "5" * 32
    api = TwilioApi(base, ACCOUNT_SID, TOKEN)
    assert asyncio.run(api.update(call_sid, {"Twiml": dial_twiml("sip:desk@pbx.example.com")}, action="transfer"))
    assert stand_in.of(call_sid) == [{"Twiml": dial_twiml("sip:desk@pbx.example.com")}]
    assert "<Dial><Sip>sip:desk@pbx.example.com</Sip></Dial>" in dial_twiml("sip:desk@pbx.example.com")
    assert asyncio.run(api.update(call_sid, {"Status": "completed"}, action="hangup"))  # 404 20404: already ended
    assert not asyncio.run(TwilioApi(base, ACCOUNT_SID, "wrong-token").update(call_sid, {}, action="hangup"))
    assert len(stand_in.violations) == 1 and "Authenticate" in stand_in.violations[0]
    stand_in.violations.clear()
