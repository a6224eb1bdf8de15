"""Containment and outcome figures after a real call whose only question the knowledge base cannot answer.

The whole product runs (``python -m agent serve``, offline recogniser, extractive brain, flite voice, the demo
knowledge base); a WebSocket client speaks a question the documents never mention and hangs up after the
agent's reply. The voice side stores the call as ``resolved`` (the caller spoke, nobody was handed over); the
analytics must not count it as contained.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.e2e.conftest import VoiceServer, flite_pcm, silence, start_server, stop_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FRAME = 640  # 20 ms of 16 kHz 16-bit mono
OFF_TOPIC = "Can you recommend a good pizza recipe?"


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoiceServer]:
    """The whole product on a free port, demo knowledge base ingested."""
    proc, server = start_server(tmp_path_factory.mktemp("truthful") / "data")
    try:
        yield server
    finally:
        stop_server(proc)


async def _ask_and_hang_up(server: VoiceServer, token: str, question: str) -> list[dict[str, Any]]:
    """Speak ``question`` after the greeting; hang up once the agent has replied; the events received."""
    audio = silence(3.0) + flite_pcm(question) + silence(30.0)
    events: list[dict[str, Any]] = []
    replied = asyncio.Event()
    async with websockets.connect(
        f"{server.ws_url}/api/voice/stream", additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:

        async def speak() -> None:
            for i in range(0, len(audio), FRAME):
                if replied.is_set():
                    break
                await ws.send(audio[i : i + FRAME])
                await asyncio.sleep(0.02)  # real-time pacing: it is a live call
            await ws.send(json.dumps({"type": "hangup"}))

        speaker = asyncio.create_task(speak())
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    continue
                event = json.loads(message)
                events.append(event)
                finals = [e for e in events if e["type"] == "transcript" and e["final"]]
                if any(e["role"] == "caller" for e in finals) and finals[-1]["role"] == "agent":
                    replied.set()
                if event["type"] == "end":
                    break
        finally:
            speaker.cancel()
    return events


def test_a_call_with_an_unanswered_question_is_not_contained(product: VoiceServer) -> None:
    events = asyncio.run(asyncio.wait_for(_ask_and_hang_up(product, product.token("agent"), OFF_TOPIC), 120))
    call_id = events[0]["call_id"]
    finals = [e for e in events if e["type"] == "transcript" and e["final"]]
    assert any(e["role"] == "caller" for e in finals), events
    # The voice side's own record: the call ended normally and is stored as resolved.
    assert product.query("SELECT status, outcome FROM calls WHERE id = ?", call_id) == [("ended", "resolved")]
    # No agent turn cited the knowledge base: the question went unanswered.
    cited = product.query("SELECT citations FROM call_turns WHERE call_id = ? AND role = 'agent'", call_id)
    assert cited and all(json.loads(c) == [] for (c,) in cited), (cited, finals)

    headers = {"Authorization": f"Bearer {product.token('supervisor')}"}
    with httpx.Client(base_url=product.base_url, headers=headers, timeout=30) as api:
        outcome = api.get(f"/api/analytics/calls/{call_id}/outcome")
        assert outcome.status_code == 200, outcome.text
        assert outcome.json() == {"call_id": call_id, "outcome": "unanswered", "questions": 1, "unanswered": 1}
        stats = api.get("/api/dashboard/stats").json()
        assert stats["ended_today"] == 1
        assert stats["contained_today"] == 0
        assert stats["unanswered_today"] == 1
        assert stats["containment_rate"] == 0.0
        report = api.get("/api/analytics/calls", params={"bucket": "day"}).json()
        assert report["by_outcome"] == {"unanswered": 1}
        trends = api.get("/api/analytics/trends", params={"bucket": "day"}).json()
        assert sum(day["unanswered"] for day in trends["unanswered"]) == 1
        assert sum(day["queries_not_found"] for day in trends["unanswered"]) >= 1  # the spoken query was logged
