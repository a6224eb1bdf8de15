"""Handoffs of SIP calls on the real server: sipp as the phone, headless Chromium as the human agent's desk.

One server for the module with its SIP endpoint on a free UDP port and Whisper tiny.en as the recogniser (phone
audio is 8 kHz; see tests/sip/conftest.py).

- Warm handoff: sipp calls and streams a flite voice (μ-law RTP) saying it wants a person, then a line about its
  order, again and again; the desk (a Chromium signed in as an ``agent``, another flite voice as its microphone)
  gets the briefing and accepts. The phone's received RTP, from the accept on, is recognised as the human's words;
  what the desk received as the caller's. The desk completes the call, the server hangs the phone up (BYE). The
  stored call has the AI's, the caller's and the human's turns and the handoff's timeline.
- Cold transfer: the persona's policy names ``cold_transfer_to``; the caller asks for a person and the server
  REFERs the phone there (``Refer-To`` checked), the phone reports the transfer done (NOTIFY sipfrag 200) and is
  hung up; the timeline says ``cold_transfer`` (to whom) and ``transferred``.
- A cold transfer the far end reports failed (NOTIFY sipfrag 486) ends that handoff ``failed`` and the call goes
  the warm way (a second handoff whose timeline starts ``transfer_failed``, then ``queued``).
- A WebRTC caller under the same policy cannot be transferred: told so, it goes the warm way
  (``cold_transfer_unavailable`` first in the timeline, then queued).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import sync_playwright

from benchmarks.handoff import ASK, HandoffCaller, flite_pcm, queued_handoff
from tests.e2e.conftest import CHROMIUM, VoiceServer, chromium_args, mic_wav, start_server, stop_server, write_wav
from tests.handoff.ear import WhisperEar
from tests.handoff.test_handoff_e2e import HUMAN_LINE, PASSWORD, _account, _pcm_from, _wait
from tests.pipelines.conftest import whisper_model_dir
from tests.sip.conftest import DIALLED, RtpCapture, SippRun, SipServer, free_udp_port, run_sipp, ulaw_to_pcm

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCENARIOS = Path(__file__).parent / "scenarios"
CALLER_LINE = "My order number is one two three four."
TRANSFER_TO = "sip:+15557654321@pbx.example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SipServer]:
    root = tmp_path_factory.mktemp("handoff-sip")
    sip_port = free_udp_port()
    # Its own RTP range: other servers on this machine (the SIP tests) take the default one from its start.
    rtp_low = min(free_udp_port(), 64_000) & ~1
    proc, running = start_server(
        root / "data",
        extra_env={
            "VOXDESK_TELEPHONY__SIP_PORT": str(sip_port),
            "VOXDESK_TELEPHONY__RTP_PORT_MIN": str(rtp_low),
            "VOXDESK_TELEPHONY__RTP_PORT_MAX": str(rtp_low + 100),
            "VOXDESK_TELEPHONY__ROUTES": json.dumps({DIALLED: "default"}),
            "VOXDESK_VOICE__SILENCE_TIMEOUT_SECS": "60",
            "VOXDESK_HANDOFF__ACCEPT_TIMEOUT_S": "30",
            "VOXDESK_RATE_LIMITS__VOICE": "1000/hour",
            "VOXDESK_RATE_LIMITS__API": "100000/minute",
            "VOXDESK_PIPELINE__ASR__BACKEND": "faster-whisper",
            "VOXDESK_PIPELINE__ASR__MODEL_PATH": str(whisper_model_dir()),
        },
    )
    try:
        yield SipServer(voice=running, sip_port=sip_port)
    finally:
        stop_server(proc)


@pytest.fixture
def capture() -> Iterator[RtpCapture]:
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    rtp = RtpCapture(sock)
    thread = threading.Thread(target=rtp.run, daemon=True)
    thread.start()
    yield rtp
    rtp.close()
    thread.join(timeout=2)


def caller_ulaw(directory: Path, parts: list[tuple[str, float | str]]) -> Path:
    """``parts`` (``("silence", secs)``, ``("say", text)``) as the headerless 8 kHz μ-law sipp streams."""
    pcm = b"".join(
        b"\0\0" * int(16000 * float(v)) if kind == "silence" else flite_pcm(str(v), voice="rms") for kind, v in parts
    )
    wav = write_wav(directory / "caller.wav", pcm, rate=16000)
    out = directory / "caller.ulaw"
    subprocess.run(
        ["sox", str(wav), "-r", "8000", "-c", "1", "-e", "mu-law", "-t", "raw", str(out)], check=True, timeout=60
    )
    return out


def sipp(server: SipServer, scenario: str, workdir: Path, *, rtp_port: int, timeout_s: float) -> SippRun:
    """``run_sipp`` with a scenario of this directory (copied into ``workdir``: an absolute path replaces theirs)."""
    copy = workdir / f"{scenario}.xml"
    shutil.copy(SCENARIOS / f"{scenario}.xml", copy)
    return run_sipp(server, str(copy.with_suffix("")), workdir, rtp_port=rtp_port, timeout_s=timeout_s)


def _handoff_of(server: VoiceServer, call_id: str) -> tuple[str, list[dict[str, Any]]]:
    status, timeline = server.query("SELECT status, timeline FROM handoffs WHERE call_id = ?", call_id)[-1]
    return status, json.loads(timeline)


def _last_sip_call(server: VoiceServer) -> tuple[str, str, str | None]:
    rows = server.query("SELECT id, status, end_reason FROM calls WHERE channel = 'sip' ORDER BY started_at")
    return rows[-1]


def test_sip_caller_asks_for_a_person_and_the_desk_takes_the_call(
    server: SipServer, capture: RtpCapture, tmp_path: Path
) -> None:
    voice = server.voice
    caller_ulaw(
        tmp_path,
        [("silence", 4.0), ("say", ASK), ("silence", 8.0)] + [("say", CALLER_LINE), ("silence", 1.5)] * 16,
    )
    desk_mic = mic_wav(tmp_path / "desk.wav", [("say", HUMAN_LINE), ("silence", 1.0)] * 8)
    email, _ = _account(voice, "agent")
    ear = WhisperEar()
    with (
        sync_playwright() as playwright,
        tempfile.TemporaryDirectory() as profile,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        desk_ctx = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=chromium_args(desk_mic)
        )
        try:
            desk = desk_ctx.pages[0] if desk_ctx.pages else desk_ctx.new_page()
            desk.goto(f"{voice.base_url}/console#/desk?test=1")
            desk.fill("input[name=email]", email)
            desk.fill("input[name=password]", PASSWORD)
            desk.click("button[type=submit]")
            desk.click("#desk-available")
            _wait(desk, voice, "() => document.querySelector('#desk-presence').textContent === 'available'", "presence")
            _wait(desk, voice, "() => window.voxdeskDesk.feed === 'open'", "the desk's live feed")

            phone = pool.submit(sipp, server, "sip_handoff", tmp_path, rtp_port=capture.port, timeout_s=150)
            _wait(desk, voice, "() => document.querySelector('.desk-offer .briefing-summary') !== null", "the offer")
            summary = desk.inner_text(".desk-offer .briefing-summary")
            assert "person" in summary.lower(), summary
            call_id, status, _ = _last_sip_call(voice)
            assert status == "active"

            heard_from = len(capture.payloads)  # what the phone receives from the accept on
            desk.click(".desk-offer .desk-accept")
            _wait(desk, voice, "() => window.voxdeskDesk.audioUp === true", "the desk's audio")
            _wait(
                desk,
                voice,
                "() => window.voxdeskDesk.transcript.some(t => t.role === 'human')",
                "the human's first transcribed turn",
                timeout=45_000,
            )
            time.sleep(4.0)  # a few more lines each way
            phone_pcm = ulaw_to_pcm(b"".join(capture.payloads[heard_from:]))
            desk_pcm = np.frombuffer(_pcm_from(desk, "voxdeskDesk"), dtype=np.int16)

            desk.fill("#desk-notes", "Order status given over the phone.")
            desk.select_option("#desk-disposition", "resolved")
            desk.click("#desk-complete")
            _wait(desk, voice, "() => window.voxdeskDesk.completed !== undefined", "completion")
            run = phone.result(timeout=120)  # the server's BYE ends sipp's scenario
        finally:
            desk_ctx.close()
    assert run.returncode == 0, run.stdout

    # The phone heard the human (the desk's microphone through the call, as 8 kHz PCMU); the desk heard the phone.
    heard_by_phone = ear.words(phone_pcm, 8000)
    heard_by_desk = ear.words(desk_pcm, 16000)
    # Not "team" or "help": the AI's own hold message says those.
    assert heard_by_phone & {"sam", "support", "today", "hello"}, heard_by_phone
    assert heard_by_desk & {"order", "number", "one", "two", "three", "four"}, heard_by_desk

    turns = voice.query("SELECT role, text FROM call_turns WHERE call_id = ? ORDER BY seq", call_id)
    roles = [role for role, _ in turns]
    assert "agent" in roles and "caller" in roles and "human" in roles, turns
    assert roles.index("agent") < roles.index("human")  # the AI's part, then the human's, in one transcript
    status, timeline = _handoff_of(voice, call_id)
    steps = [s["status"] for s in timeline]
    assert status == "completed", steps
    for step in ("queued", "offered", "accepted", "audio_connected", "completed"):
        assert step in steps, steps
    assert voice.query("SELECT end_reason, notes, disposition FROM calls WHERE id = ?", call_id)[0] == (
        "handoff_completed",
        "Order status given over the phone.",
        "resolved",
    )


def _set_policy(server: VoiceServer, token: str, **changes: Any) -> dict[str, Any]:
    """Change the default persona's policy; returns the previous one."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
        previous: dict[str, Any] = http.get("/api/handoffs/policies/default").json()
        put = http.put("/api/handoffs/policies/default", json={**previous, **changes})
        assert put.status_code == 200, put.text
    return previous


def test_a_persona_with_a_cold_transfer_refers_the_sip_caller(
    server: SipServer, capture: RtpCapture, tmp_path: Path
) -> None:
    voice = server.voice
    _, supervisor = _account(voice, "supervisor")
    previous = _set_policy(voice, supervisor, cold_transfer_to=TRANSFER_TO)
    try:
        caller_ulaw(tmp_path, [("silence", 4.0), ("say", ASK), ("silence", 12.0)])
        run = sipp(server, "sip_refer", tmp_path, rtp_port=capture.port, timeout_s=120)
    finally:
        _set_policy(voice, supervisor, **previous)
    assert run.returncode == 0, run.stdout
    refer = next(m for m in run.messages.split("\n\n") if "REFER sip:" in m)
    assert f"Refer-To: <{TRANSFER_TO}>" in refer, refer
    call_id, status, end_reason = _last_sip_call(voice)
    assert (status, end_reason) == ("ended", "transferred")
    handoff_status, timeline = _handoff_of(voice, call_id)
    assert handoff_status == "transferred", timeline
    assert [s["status"] for s in timeline] == ["cold_transfer", "transferred"], timeline
    assert timeline[0]["to"] == TRANSFER_TO and timeline[0]["source"] == "phrase"
    # The caller was told before the phone was asked to dial (the agent's voice reached the phone).
    assert len(capture.payloads) > 100


def test_a_failed_cold_transfer_goes_the_warm_way(server: SipServer, capture: RtpCapture, tmp_path: Path) -> None:
    voice = server.voice
    _, supervisor = _account(voice, "supervisor")
    previous = _set_policy(voice, supervisor, cold_transfer_to=TRANSFER_TO)
    try:
        caller_ulaw(tmp_path, [("silence", 4.0), ("say", ASK), ("silence", 12.0)])
        run = sipp(server, "sip_refer_busy", tmp_path, rtp_port=capture.port, timeout_s=120)
    finally:
        _set_policy(voice, supervisor, **previous)
    assert run.returncode == 0, run.stdout
    call_id, _, end_reason = _last_sip_call(voice)
    assert end_reason == "caller_hangup"
    rows = voice.query("SELECT status, timeline FROM handoffs WHERE call_id = ? ORDER BY requested_at", call_id)
    assert len(rows) == 2, rows
    (cold_status, cold_timeline), (_, warm_timeline) = [(status, json.loads(t)) for status, t in rows]
    assert cold_status == "failed"
    assert [s["status"] for s in cold_timeline] == ["cold_transfer", "failed"], cold_timeline
    assert cold_timeline[1]["status_code"] == 486 and cold_timeline[1]["sent"] is True
    warm = [s["status"] for s in warm_timeline]
    assert warm[:2] == ["transfer_failed", "queued"], warm_timeline
    assert warm_timeline[0]["to"] == TRANSFER_TO


def test_a_webrtc_caller_cannot_be_cold_transferred_and_goes_the_warm_way(server: SipServer) -> None:
    voice = server.voice
    _, supervisor = _account(voice, "supervisor")
    _, agent = _account(voice, "agent")
    previous = _set_policy(voice, supervisor, cold_transfer_to=TRANSFER_TO)

    async def scenario() -> dict[str, Any] | None:
        headers = {"Authorization": f"Bearer {agent}"}
        async with httpx.AsyncClient(base_url=voice.base_url, headers=headers, timeout=30) as http:
            (await http.put("/api/agents/me/presence", json={"status": "available"})).raise_for_status()
            caller = HandoffCaller(voice.base_url)
            try:
                await caller.connect()
                await caller.wait_quiet(since=time.monotonic() + 1.0, hold=0.8, within=30)
                done = caller.speaker.say(flite_pcm(ASK))
                await asyncio.wait_for(done.wait(), timeout=30)
                assert caller.call_id is not None
                queued = await queued_handoff(http, caller.call_id)
                if queued is None:
                    return None
                detail: dict[str, Any] = (await http.get(f"/api/handoffs/{queued['id']}")).json()
                return detail
            finally:
                await caller.close()
                await http.put("/api/agents/me/presence", json={"status": "away"})

    try:
        detail = asyncio.run(asyncio.wait_for(scenario(), timeout=120))
    finally:
        _set_policy(voice, supervisor, **previous)
    assert detail is not None and detail["status"] == "queued", detail
    steps = [s["status"] for s in detail["timeline"]]
    assert steps[:3] == ["cold_transfer_unavailable", "queued", "offered"], steps
    assert detail["timeline"][0]["to"] == TRANSFER_TO and detail["timeline"][0]["channel"] == "webrtc"
