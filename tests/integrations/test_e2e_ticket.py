"""End to end: a caller over ``WS /api/voice/stream`` asks for a ticket; Freshdesk gets exactly one, with the summary.

The whole product runs (``python -m agent serve`` in a subprocess, demo knowledge base); the caller is flite
speech paced in real time. The Freshdesk stand-in (tests/integrations/standins.py) checks every request against
the v2 contract. The caller first asks a question the knowledge base answers, then asks for a ticket; the
ticket's description must hold the call's extractive summary (the answered question) and a link to the call.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.e2e.conftest import VoiceServer, flite_pcm, silence, start_server, stop_server
from tests.integrations.conftest import FRESHDESK_KEY
from tests.integrations.standins import FreshdeskStandIn

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FRAME = 640  # 20 ms of 16 kHz 16-bit mono
QUESTION = "How do I reset my password?"
TICKET = "Please create a support ticket for me."


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VoiceServer, FreshdeskStandIn]]:
    freshdesk = FreshdeskStandIn(FRESHDESK_KEY)
    freshdesk.start()
    root = tmp_path_factory.mktemp("integrations-e2e")
    proc, server = start_server(
        root / "data",
        extra_env={
            "VOXDESK_INTEGRATIONS__ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
            "VOXDESK_SERVER__PUBLIC_URL": "https://desk.acme.example",
        },
    )
    try:
        yield server, freshdesk
    finally:
        stop_server(proc)
        freshdesk.stop()


async def _speak_until(ws: Any, pcm: bytes, done: asyncio.Event) -> None:
    for i in range(0, len(pcm), FRAME):
        if done.is_set():
            return
        await ws.send(pcm[i : i + FRAME])
        await asyncio.sleep(0.02)  # real-time pacing: it is a live call


async def _call(server: VoiceServer, token: str) -> list[dict[str, Any]]:
    """Ask a question, then for a ticket; hang up once the agent has answered both."""
    events: list[dict[str, Any]] = []
    answered = [asyncio.Event(), asyncio.Event()]

    def agent_finals_after_caller() -> int:
        count, waiting = 0, False
        for e in events:
            if e["type"] == "transcript" and e["final"]:
                if e["role"] == "caller":
                    waiting = True
                elif e["role"] == "agent" and waiting:
                    count, waiting = count + 1, False
        return count

    async with websockets.connect(
        f"{server.ws_url}/api/voice/stream", additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:

        async def caller() -> None:
            await _speak_until(ws, silence(3.0) + flite_pcm(QUESTION) + silence(30.0), answered[0])
            await _speak_until(ws, silence(1.0) + flite_pcm(TICKET) + silence(30.0), answered[1])
            await ws.send(json.dumps({"type": "hangup"}))

        speaker = asyncio.create_task(caller())
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    continue
                events.append(json.loads(message))
                done = agent_finals_after_caller()
                for n in range(min(done, 2)):
                    answered[n].set()
                if events[-1]["type"] == "end":
                    break
        finally:
            speaker.cancel()
    return events


def test_a_caller_asks_for_a_ticket_and_freshdesk_gets_one_with_the_summary(
    stack: tuple[VoiceServer, FreshdeskStandIn],
) -> None:
    server, freshdesk = stack
    admin = {"Authorization": f"Bearer {server.token('admin')}"}
    body = {
        "name": "helpdesk",
        "type": "freshdesk",
        "config": {"base_url": freshdesk.url, "fallback_email": "calls@acme.example"},
        "secrets": {"api_key": FRESHDESK_KEY},
    }
    r = httpx.post(server.base_url + "/api/integrations", json=body, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["config"]["console_url"] == "https://desk.acme.example"

    events = asyncio.run(asyncio.wait_for(_call(server, server.token("agent")), timeout=180))
    call_id = events[0]["call_id"]
    finals = [(e["role"], e["text"]) for e in events if e["type"] == "transcript" and e["final"]]
    log = server.log_path.read_text()[-3000:]
    assert any("ticket" in text.lower() for role, text in finals if role == "agent"), f"{finals}\n{log}"

    deadline = time.monotonic() + 30
    while not freshdesk.tickets and time.monotonic() < deadline:
        time.sleep(0.1)  # the server's dispatcher sends it: wait on the outcome
    time.sleep(1.0)  # a second ticket, if one were (wrongly) coming, would have arrived by now
    assert len(freshdesk.tickets) == 1, freshdesk.tickets
    assert freshdesk.violations == []
    [ticket] = freshdesk.tickets
    description = ticket["description"]
    assert "<b>Call summary:</b> The caller asked" in description, description
    assert "password" in description.split("<b>Call summary:</b>", 1)[1].lower(), description
    assert f'href="https://desk.acme.example/console#/calls/{call_id}"' in description
    assert ticket["email"] == "calls@acme.example" and ticket["source"] == 3
    rows = server.query("SELECT status, external_id FROM outbox WHERE call_id = ? AND event = 'ticket.create'", call_id)
    assert rows == [("delivered", str(ticket["id"]))]
