"""``WS /api/voice/stream`` end to end: a Python client speaks a flite question and hears the answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from tests.e2e.conftest import VoiceServer, flite_pcm, silence

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FRAME = 640  # 20 ms of 16 kHz 16-bit mono
QUESTION = "How do I reset my password?"


async def _call(server: VoiceServer, token: str) -> tuple[list[dict[str, Any]], list[int]]:
    """The events the client got, and beside each the bytes of agent audio received before it."""
    audio = silence(3.0) + flite_pcm(QUESTION) + silence(30.0)
    events: list[dict[str, Any]] = []
    received = 0
    received_at: list[int] = []
    answered = asyncio.Event()
    url = f"{server.ws_url}/api/voice/stream"
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:

        async def speak() -> None:
            # Real-time pacing of the caller's audio (it is a live call), until the agent has answered.
            for i in range(0, len(audio), FRAME):
                if answered.is_set():
                    break
                await ws.send(audio[i : i + FRAME])
                await asyncio.sleep(0.02)
            await ws.send(json.dumps({"type": "hangup"}))

        speaker = asyncio.create_task(speak())
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    assert len(message) % 2 == 0
                    received += len(message)
                    continue
                event = json.loads(message)
                events.append(event)
                received_at.append(received)
                finals = [e for e in events if e["type"] == "transcript" and e["final"]]
                if any(e["role"] == "caller" for e in finals) and finals[-1]["role"] == "agent":
                    answered.set()
                if event["type"] == "end":
                    break
        finally:
            speaker.cancel()
    return events, received_at


def test_ws_call_answers_from_the_knowledge_base(voice_server: VoiceServer) -> None:
    events, received_at = asyncio.run(asyncio.wait_for(_call(voice_server, voice_server.token("agent")), timeout=120))
    assert events[0]["type"] == "call"
    call_id = events[0]["call_id"]
    assert events[-1] == {"type": "end", "reason": "caller_hangup"}
    finals = [e for e in events if e["type"] == "transcript" and e["final"]]
    caller = [e["text"] for e in finals if e["role"] == "caller"]
    agent = [e["text"] for e in finals if e["role"] == "agent"]
    assert any("password" in text for text in caller), caller
    assert agent, f"no final agent turn; events: {events}\nserver log:\n{voice_server.log_path.read_text()[-3000:]}"
    answer = agent[-1].lower()
    assert "password" in answer or "reset link" in answer, agent
    assert any(e["type"] == "latency" for e in events)
    # At least the greeting and the answer came back as audio (16 kHz, 16-bit: 32 000 bytes a second).
    assert received_at[-1] > 32_000 * 3

    # Live captions: the answer's text came piece by piece (interim agent transcripts) before its final turn,
    # each once its audio had been played.
    def transcripts(role: str, *, final: bool) -> list[int]:
        kinds = [(e["type"], e.get("role"), e.get("final")) for e in events]
        return [i for i, kind in enumerate(kinds) if kind == ("transcript", role, final)]

    asked = transcripts("caller", final=True)[0]
    answered = next(i for i in transcripts("agent", final=True) if i > asked)
    captions = [i for i in transcripts("agent", final=False) if asked < i < answered]
    assert captions, f"no agent captions before the answer; events: {events}"
    assert " ".join(events[i]["text"].strip() for i in captions) == events[answered]["text"]
    assert received_at[captions[0]] - received_at[asked] > 32_000 * 0.5  # the first clause's audio came first
    rows = voice_server.query("SELECT channel, status, end_reason FROM calls WHERE id = ?", call_id)
    assert rows == [("websocket", "ended", "caller_hangup")]
    stored = voice_server.query("SELECT role, text FROM call_turns WHERE call_id = ? ORDER BY seq", call_id)
    assert [r for r, _ in stored].count("caller") >= 1
    assert stored[-1][1] == agent[-1] or any(text == agent[-1] for _, text in stored)
