"""Warm handoff end to end on the real server: a caller asks for a person, a human agent's desk takes the call.

One server for the module (``VOXDESK_HANDOFF__ACCEPT_TIMEOUT_S=8``, ``WAITING_ALERT_S=3``).

- The browser path: headless Chromium as the caller (the caller page, a flite voice as microphone) and a second
  Chromium signed in to the console's desk as an ``agent`` (another flite voice as microphone). The desk chimes
  and shows the briefing, the agent accepts, and the test recognises (Whisper tiny.en, ``tests/handoff/ear.py``)
  what each side received after the accept: the caller hears the human's words, the desk hears the caller's. The
  stored call has the AI's turns, the caller's, the human's (role ``human``), and the handoff's timeline.
- The timeout path (an aiortc caller): nobody accepts; the timeline's recorded times put the AI back within a
  second of the timeout (and exactly one timeout after the queueing), the caller hears the AI's voice again after
  it, and a callback request is stored with the briefing.
- The cancel path: the caller hangs up while queued; the handoff ends ``abandoned`` and the desk's feed says so.
"""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from agent.calls.handoff import REQUEST_LEFT, RETURN_REASONS
from benchmarks.handoff import ASK, HandoffCaller, flite_pcm, queued_handoff, wait_for
from tests.e2e.conftest import (
    CHROMIUM,
    VoiceServer,
    chromium_args,
    mic_wav,
    mint_token,
    start_server,
    stop_server,
)
from tests.handoff.ear import WhisperEar

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ACCEPT_TIMEOUT_S = 8.0
CALLER_LINE = "My order number is one two three four."
HUMAN_LINE = "Hello, this is Sam from the support team. How can I help you today?"
PASSWORD = "correct-horse-battery"
LAST_BYTES = 12 * 16000 * 2  # 12 s of 16 kHz 16-bit audio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoiceServer]:
    root = tmp_path_factory.mktemp("handoff-e2e")
    proc, running = start_server(
        root / "data",
        extra_env={
            "VOXDESK_HANDOFF__ACCEPT_TIMEOUT_S": str(ACCEPT_TIMEOUT_S),
            "VOXDESK_HANDOFF__WAITING_ALERT_S": "3",
            "VOXDESK_RATE_LIMITS__VOICE": "1000/hour",
            "VOXDESK_RATE_LIMITS__API": "100000/minute",  # the tests poll the API
        },
    )
    try:
        yield running
    finally:
        stop_server(proc)


def _account(server: VoiceServer, role: str = "agent") -> tuple[str, str]:
    """A fresh account: its e-mail and a bearer token (password ``PASSWORD``)."""
    email = f"{role}-{time.monotonic_ns()}@example.com"
    return email, mint_token(server.env, email, role)


def _pcm_from(page: Page, state: str, since_epoch_ms: float | None = None) -> bytes:
    """What ``window[state]`` received (16 kHz PCM), from ``since_epoch_ms`` on when it keeps arrival times."""
    pcm = np.frombuffer(base64.b64decode(page.evaluate(f"() => window.{state}.receivedPcm()")), dtype=np.int16)
    if since_epoch_ms is None:
        return pcm.tobytes()
    origin = page.evaluate("() => performance.timeOrigin")
    blocks: list[dict[str, float]] = page.evaluate(f"() => window.{state}.rx")
    per_block = len(pcm) // max(1, len(blocks))
    first = next((i for i, b in enumerate(blocks) if origin + b["t"] >= since_epoch_ms), len(blocks))
    return pcm[first * per_block :].tobytes()


def _wait(page: Page, server: VoiceServer, js: str, what: str, timeout: float = 60_000) -> None:
    try:
        page.wait_for_function(js, timeout=timeout)
    except PlaywrightTimeoutError:
        tail = server.log_path.read_text(errors="replace")[-4000:]
        raise AssertionError(f"timed out waiting for {what}\nserver log:\n{tail}") from None


def test_with_nobody_available_the_ai_says_so_and_promises_no_call_back(server: VoiceServer) -> None:
    """First in the module: no desk is available yet. A browser caller (no number to call back) asks for a person:
    the AI never says "please hold", apologises, and leaves the request with the team instead of promising a call.
    """

    async def scenario() -> tuple[str, list[str]]:
        caller = HandoffCaller(server.base_url)
        try:
            await _ask_for_a_person(caller)
            call_id = caller.call_id
            assert call_id is not None

            def agent_turns() -> list[str] | None:
                rows = server.query("SELECT text FROM call_turns WHERE call_id = ? AND role = 'agent'", call_id)
                texts = [str(r[0]) for r in rows]
                return texts if any(RETURN_REASONS["no_agents"] in t for t in texts) else None

            return call_id, await wait_for(agent_turns, within=45, step=0.3) or []
        finally:
            await caller.close()

    call_id, said = asyncio.run(asyncio.wait_for(scenario(), timeout=120))
    heard = server.query("SELECT text FROM call_turns WHERE call_id = ? AND role = 'caller'", call_id)
    assert said, f"the AI never said that nobody is available; the caller was heard as {heard}"
    assert not any("hold" in t.lower() for t in said), said
    assert any(REQUEST_LEFT in t for t in said) and not any("call you back" in t for t in said), said
    (status,) = server.query("SELECT status FROM handoffs WHERE call_id = ?", call_id)[0]
    assert status == "no_agents"
    rows = server.query("SELECT reason, phone FROM callback_requests WHERE call_id = ?", call_id)
    assert rows == [("no_agents", None)], rows


def test_caller_asks_for_a_person_and_the_desk_takes_the_call(server: VoiceServer, tmp_path: Path) -> None:
    caller_mic = mic_wav(
        tmp_path / "caller.wav",
        [("silence", 6.0), ("say", ASK), ("silence", 6.0)] + [("say", CALLER_LINE), ("silence", 1.5)] * 8,
    )
    desk_mic = mic_wav(tmp_path / "desk.wav", [("say", HUMAN_LINE), ("silence", 1.0)] * 6)
    email, _ = _account(server, "agent")
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as p1, tempfile.TemporaryDirectory() as p2:
        desk_ctx = playwright.chromium.launch_persistent_context(
            p1, executable_path=CHROMIUM, headless=True, args=chromium_args(desk_mic)
        )
        caller_ctx = playwright.chromium.launch_persistent_context(
            p2, executable_path=CHROMIUM, headless=True, args=chromium_args(caller_mic)
        )
        try:
            desk = desk_ctx.pages[0] if desk_ctx.pages else desk_ctx.new_page()
            desk.goto(f"{server.base_url}/console#/desk?test=1")
            desk.fill("input[name=email]", email)
            desk.fill("input[name=password]", PASSWORD)
            desk.click("button[type=submit]")
            desk.click("#desk-available")
            _wait(
                desk, server, "() => document.querySelector('#desk-presence').textContent === 'available'", "presence"
            )
            _wait(desk, server, "() => window.voxdeskDesk.feed === 'open'", "the desk's live feed")

            caller = caller_ctx.pages[0] if caller_ctx.pages else caller_ctx.new_page()
            caller.goto(f"{server.base_url}/call?test=1")
            caller.click("#call")
            caller.wait_for_function("() => window.voxdeskCall.callId !== null")
            call_id = caller.evaluate("() => window.voxdeskCall.callId")

            # The desk rings with the briefing: the summary names the caller's request.
            _wait(desk, server, "() => document.querySelector('.desk-offer .briefing-summary') !== null", "the offer")
            summary = desk.inner_text(".desk-offer .briefing-summary")
            assert "person" in summary.lower(), summary
            accepted_at = time.time() * 1000
            desk.click(".desk-offer .desk-accept")
            _wait(desk, server, "() => window.voxdeskDesk.audioUp === true", "the desk's audio")
            _wait(
                desk,
                server,
                "() => window.voxdeskDesk.transcript.some(t => t.role === 'human')",
                "the human's first transcribed turn",
                timeout=45_000,
            )
            time.sleep(4.0)  # a few more lines each way

            # Each side received the other's speech.
            # The last seconds only: each side's line repeats, and a long buffer is slow to decode on a busy machine.
            ear = WhisperEar()
            heard_by_caller = ear.words(_pcm_from(caller, "voxdeskCall", accepted_at)[-LAST_BYTES:])
            heard_by_desk = ear.words(_pcm_from(desk, "voxdeskDesk")[-LAST_BYTES:])
            assert heard_by_caller & {"sam", "support", "team", "help", "today", "hello"}, heard_by_caller
            assert heard_by_desk & {"order", "number", "one", "two", "three", "four"}, heard_by_desk

            desk.fill("#desk-notes", "Gave the order status.")
            desk.select_option("#desk-disposition", "resolved")
            desk.click("#desk-complete")
            _wait(desk, server, "() => window.voxdeskDesk.completed !== undefined", "completion")
            _wait(caller, server, "() => window.voxdeskCall.ended !== null", "the call's end", timeout=20_000)

            # The call page shows the handoff's timeline.
            desk.goto(f"{server.base_url}/console#/calls/{call_id}")
            desk.wait_for_selector(".call-handoff li[data-status=accepted]", timeout=20_000)
        finally:
            caller_ctx.close()
            desk_ctx.close()

    roles = [r for (r,) in server.query("SELECT role FROM call_turns WHERE call_id = ? ORDER BY seq", call_id)]
    assert "agent" in roles and "caller" in roles and "human" in roles, roles
    status, timeline, disposition = server.query(
        "SELECT status, timeline, disposition FROM handoffs WHERE call_id = ?", call_id
    )[0]
    steps = [s["status"] for s in json.loads(timeline)]
    assert status == "completed" and disposition == "resolved"
    for step in ("queued", "offered", "accepted", "audio_connected", "completed"):
        assert step in steps, steps
    assert server.query("SELECT agent_user_id IS NOT NULL, notes FROM calls WHERE id = ?", call_id)[0] == (
        1,
        "Gave the order status.",
    )


async def _available_agent(server: VoiceServer) -> str:
    _, token = _account(server, "agent")
    async with httpx.AsyncClient(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}) as http:
        (await http.put("/api/agents/me/presence", json={"status": "available"})).raise_for_status()
    return token


async def _ask_for_a_person(caller: HandoffCaller) -> None:
    await caller.connect()
    await caller.wait_quiet(since=time.monotonic() + 1.0, hold=0.8, within=30)
    done = caller.speaker.say(flite_pcm(ASK))
    await asyncio.wait_for(done.wait(), timeout=30)


def test_nobody_accepts_the_ai_comes_back_and_a_callback_is_recorded(server: VoiceServer) -> None:
    async def scenario() -> tuple[str, float, float | None]:
        token = await _available_agent(server)
        caller = HandoffCaller(server.base_url)
        try:
            await _ask_for_a_person(caller)
            assert caller.call_id is not None
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as http:
                handoff = await queued_handoff(http, caller.call_id)
                assert handoff is not None and handoff["status"] == "queued", handoff

                async def timed_out() -> dict[str, Any] | None:
                    detail = (await http.get(f"/api/handoffs/{handoff['id']}")).json()
                    return detail if detail["status"] == "timed_out" else None

                detail = await wait_for(timed_out, within=ACCEPT_TIMEOUT_S + 10, step=0.2)
            assert detail is not None
            at = next(s["at"] for s in detail["timeline"] if s["status"] == "timed_out")
            # The server's wall clock to this process's monotonic clock (same machine).
            timeout_mono = datetime.fromisoformat(at).timestamp() - (time.time() - time.monotonic())
            back = await wait_for(lambda: caller.spectra.first_speech_after(timeout_mono - 2.0), within=10)
            return handoff["id"], timeout_mono, back
        finally:
            await caller.close()

    handoff_id, timeout_at, back = asyncio.run(asyncio.wait_for(scenario(), timeout=120))
    assert back is not None, "the AI never spoke again"
    # The AI speaks again because of the timeout, not before it. How soon is a figure for a quiet machine (about
    # 0.1-0.3 s here; benchmarks, not tests, measure speed): the bound only catches a return that waits for
    # something else (another turn, the silence timeout) on a machine shared with other work.
    assert -0.2 < back - timeout_at < 3.0, back - timeout_at
    rows = server.query("SELECT reason, briefing, phone FROM callback_requests WHERE handoff_id = ?", handoff_id)
    assert len(rows) == 1 and rows[0][0] == "timed_out"
    assert "person" in json.loads(rows[0][1])["summary"]
    timeline = json.loads(server.query("SELECT timeline FROM handoffs WHERE id = ?", handoff_id)[0][0])
    steps = [s["status"] for s in timeline]
    assert steps[:2] == ["queued", "offered"] and "waiting" in steps and "ai_returned" in steps, steps
    # The bound, on the server's recorded times: the AI is back within a second of the timeout (the
    # ai_returned step is written with the callback request, just before the apology is queued to the caller).
    at = {s["status"]: datetime.fromisoformat(s["at"]) for s in timeline}
    assert timedelta(0) <= at["ai_returned"] - at["timed_out"] < timedelta(seconds=1), timeline
    queued_for = (at["timed_out"] - at["queued"]).total_seconds()
    assert ACCEPT_TIMEOUT_S <= queued_for < ACCEPT_TIMEOUT_S + 1, timeline


def test_caller_hangs_up_while_queued_the_handoff_is_abandoned(server: VoiceServer) -> None:
    async def scenario() -> tuple[str, list[dict[str, Any]]]:
        token = await _available_agent(server)
        caller = HandoffCaller(server.base_url)
        headers = {"Authorization": f"Bearer {token}"}
        feed: list[dict[str, Any]] = []
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
            try:
                await _ask_for_a_person(caller)
                assert caller.call_id is not None
                handoff = await queued_handoff(http, caller.call_id)
                assert handoff is not None and handoff["status"] == "queued", handoff

                async def listen() -> None:
                    async with http.stream("GET", "/api/handoffs/events") as stream:
                        async for line in stream.aiter_lines():
                            if line.startswith("data: "):
                                event = json.loads(line[6:])
                                feed.append(event)
                                if event.get("id") == handoff["id"] and event.get("status") == "abandoned":
                                    return

                listener = asyncio.create_task(listen())
                await asyncio.sleep(0.5)
            finally:
                await caller.close()  # the caller hangs up
            await asyncio.wait_for(listener, timeout=15)
            queued = (await http.get("/api/handoffs", params={"status": "queued"})).json()["items"]
            assert handoff["id"] not in [h["id"] for h in queued]
        return handoff["id"], feed

    handoff_id, feed = asyncio.run(asyncio.wait_for(scenario(), timeout=90))
    assert any(e.get("id") == handoff_id and e.get("status") == "abandoned" for e in feed)
    assert server.query("SELECT status FROM handoffs WHERE id = ?", handoff_id)[0][0] == "abandoned"
    assert not server.query("SELECT id FROM callback_requests WHERE handoff_id = ?", handoff_id)


OFF_TOPIC = "Can you recommend a good pizza recipe?"


def _handoff_after(
    server: VoiceServer, policy: dict[str, Any], line: str, *, within: float = 20
) -> dict[str, Any] | None:
    """Set the default persona's policy, call, say ``line``; the call's handoff once queued (None: none)."""
    _, supervisor = _account(server, "supervisor")

    async def scenario() -> dict[str, Any] | None:
        headers = {"Authorization": f"Bearer {supervisor}"}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
            default = (await http.get("/api/handoffs/policies/default")).json()
            put = await http.put("/api/handoffs/policies/default", json={**default, **policy})
            assert put.status_code == 200, put.text
            await _available_agent(server)
            caller = HandoffCaller(server.base_url)
            try:
                await caller.connect()
                await caller.wait_quiet(since=time.monotonic() + 1.0, hold=0.8, within=30)
                done = caller.speaker.say(flite_pcm(line))
                await asyncio.wait_for(done.wait(), timeout=30)
                assert caller.call_id is not None
                return await queued_handoff(http, caller.call_id, within=within)
            finally:
                await caller.close()
                await http.put("/api/handoffs/policies/default", json=default)

    return asyncio.run(asyncio.wait_for(scenario(), timeout=120))


def test_a_not_found_answer_hands_over_when_the_policy_says_one_is_enough(server: VoiceServer) -> None:
    handoff = _handoff_after(server, {"phrase_trigger": False, "not_found_threshold": 1}, OFF_TOPIC)
    assert handoff is not None and handoff["source"] == "not_found", handoff


def test_with_its_triggers_off_a_request_for_a_person_is_not_handed_over(server: VoiceServer) -> None:
    # Phrases off: the extractive brain's transfer_to_human tool would hand over; with it off too, nothing does.
    # The request in the words the domain LM holds (pocketsphinx heard ASK as "can i died to a person" on one box).
    off = {"phrase_trigger": False, "tool_trigger": False, "not_found_trigger": False, "sentiment_trigger": False}
    assert _handoff_after(server, off, "I want to talk to a human.", within=12) is None
    refused = [
        json.loads(data)
        for (data,) in server.query("SELECT data FROM call_events WHERE kind = 'tool_result' ORDER BY id")
    ]
    assert {"tool": "transfer_to_human", "ok": False, "error": "RuntimeError"} in refused, refused
