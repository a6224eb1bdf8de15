"""One real server (``python -m agent serve``, offline models, demo KB) shared by the analysis tests.

The recogniser runs on its general language model here (``domain_lm`` off): the questions these tests ask are
deliberately outside the knowledge base, whose own vocabulary is all a domain model could recognise.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets

from tests.e2e.conftest import VoiceServer, flite_pcm, silence, start_server, stop_server

FRAME = 640  # 20 ms of 16 kHz 16-bit mono


@dataclass
class Desk:
    """The running server and an admin token for its API."""

    server: VoiceServer
    admin: str

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the API as the admin."""
        headers = {"Authorization": f"Bearer {self.admin}"}
        return httpx.request(method, self.server.base_url + path, headers=headers, timeout=180, **kwargs)

    def analysis(self, call_id: str, *, timeout_s: float = 60.0, after_runs: int = 0) -> dict[str, Any]:
        """Wait for the call's analysis to be done (more than ``after_runs`` runs) and return it."""
        deadline = time.monotonic() + timeout_s
        while True:
            response = self.api("GET", f"/api/calls/{call_id}/analysis")
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                if body["status"] == "done" and body["runs"] > after_runs:
                    return body
                assert body["status"] != "failed", body
            assert time.monotonic() < deadline, f"no analysis for {call_id}: {response.status_code} {response.text}"
            time.sleep(0.5)  # polling another process's job queue: nothing to await here


async def _call(server: VoiceServer, token: str, questions: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """Place one WebSocket call asking ``questions`` in turn (each after the previous answer), then hang up."""
    events: list[dict[str, Any]] = []
    url = f"{server.ws_url}/api/voice/stream"
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:

        async def speak() -> None:
            await _send(ws, silence(2.5))
            for number, question in enumerate(questions, start=1):
                await _send(ws, flite_pcm(question))
                for _ in range(int(25 / 0.02)):  # silence until the agent has answered this question (≤ 25 s)
                    if answers(number):
                        break
                    await ws.send(silence(0.02))
                    await asyncio.sleep(0.02)
                await _send(ws, silence(1.0))
            await ws.send(json.dumps({"type": "hangup"}))

        def answers(number: int) -> bool:
            """Whether the caller's ``number``-th question has been heard and answered by a final agent turn."""
            finals = [e["role"] for e in events if e["type"] == "transcript" and e["final"]]
            return finals.count("caller") >= number and finals[-1] == "agent"

        speaker = asyncio.create_task(speak())
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    continue
                event = json.loads(message)
                events.append(event)
                if event["type"] == "end":
                    break
        finally:
            speaker.cancel()
    return str(events[0]["call_id"]), events


async def _send(ws: Any, pcm: bytes) -> None:
    for i in range(0, len(pcm), FRAME):  # real-time pacing: it is a live call
        await ws.send(pcm[i : i + FRAME])
        await asyncio.sleep(0.02)


CallResult = tuple[str, list[dict[str, Any]]]  # a call's id and the events its client got


def place_call(desk: Desk, questions: list[str]) -> CallResult:
    """One real call over ``WS /api/voice/stream``; returns its id and the events the client got."""
    return asyncio.run(asyncio.wait_for(_call(desk.server, desk.server.token("agent"), questions), timeout=180))


def place_calls(desk: Desk, scripts: list[list[str]]) -> list[CallResult]:
    """Real calls at the same time, one per list of questions (as callers ring a desk), in ``scripts``' order."""

    async def all_calls() -> list[CallResult]:
        token = desk.server.token("agent")
        return list(await asyncio.gather(*(_call(desk.server, token, questions) for questions in scripts)))

    return asyncio.run(asyncio.wait_for(all_calls(), timeout=240))


@pytest.fixture(scope="session")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """The whole product on a free port: demo KB, analysis due half a second after a call ends."""
    root = tmp_path_factory.mktemp("analysis-e2e")
    proc, server = start_server(
        root / "data",
        extra_env={
            "VOXDESK_PIPELINE__ASR__DOMAIN_LM": "false",
            "VOXDESK_ANALYSIS__DELAY_SECS": "0.5",
            "VOXDESK_ANALYSIS__POLL_INTERVAL_SECS": "0.5",
        },
    )
    try:
        yield Desk(server=server, admin=server.token("admin"))
    finally:
        stop_server(proc)
