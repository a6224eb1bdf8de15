"""Warm handoff latency over loopback WebRTC: "I want a person" → hold message, and accept → two-way audio.

Starts ``voxdesk serve`` (temporary data dir, demo knowledge base), makes an ``agent`` account and sets it
available, then per trial: an aiortc caller (``benchmarks.voice.client.WebRTCCaller``) waits out the greeting and
says "I want to talk to a person"; the time from the last voiced frame it sent to the first voiced frame of the
agent's reply ("I'm connecting you ...") is the **hold-message latency**. The desk (an aiortc peer standing in for
the browser, same endpoint) then accepts through the API and joins the audio; from the accept request to the
moment both sides receive the other's speech (the caller hears speech-like audio, not the hold tones; the desk
hears the caller's voice) is the **accept-to-two-way latency**. Prints JSON with p50/p95 of both.

    python -m benchmarks.handoff --trials 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from benchmarks.voice.client import VOICED_RMS, SpeakerTrack, WebRTCCaller

RATE = 16000
FRAME = RATE // 50
# The caller's request for a person. Since the domain LM's interpolation with the general model (345eab7) the
# product's pocketsphinx hears "I want to talk to a person please" as "... percent please" (no trigger); this
# wording is still heard with "person" in it (measured 2026-12-04, docs/handoff.md).
ASK = "Can I talk to a person?"
CALLER_LINE = "My order number is one two three four."
HUMAN_LINE = "Hello, this is Sam from the support team. How can I help you today?"


def flite_pcm(text: str, *, voice: str = "slt") -> bytes:
    """16 kHz mono 16-bit PCM of ``text`` spoken by flite."""
    out = subprocess.run(["flite", "-voice", voice, "-t", text, "-o", "/dev/stdout"], check=True, capture_output=True)
    return out.stdout[44:]


def speechlike(samples: np.ndarray[Any, Any]) -> bool:
    """Whether 20 ms of 16 kHz audio is voiced speech rather than the hold tones.

    Speech carries its pitch and first formant below 350 Hz; the hold arpeggio's lowest note is G4 (392 Hz).
    """
    x = samples.astype(np.float32)
    if len(x) < FRAME or float(np.sqrt(np.mean(x * x))) < VOICED_RMS:
        return False
    spectrum = np.abs(np.fft.rfft(x[:FRAME] * np.hanning(FRAME))) ** 2
    freqs = np.fft.rfftfreq(FRAME, 1 / RATE)
    return float(spectrum[freqs < 350].sum() / max(1e-9, spectrum.sum())) > 0.2


def _mono16k(frame: av.AudioFrame, resampler: av.AudioResampler) -> np.ndarray[Any, Any]:
    return np.concatenate(
        [np.frombuffer(bytes(f.planes[0])[: f.samples * 2], dtype=np.int16) for f in resampler.resample(frame)]
        or [np.zeros(0, dtype=np.int16)]
    )


class SpectralLog:
    """Arrival time of every 20 ms received, whether voiced, whether speech-like."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, bool, bool]] = []
        self._pending = np.zeros(0, dtype=np.int16)

    def add(self, at: float, samples: np.ndarray[Any, Any]) -> None:
        self._pending = np.concatenate([self._pending, samples])
        while len(self._pending) >= FRAME:
            chunk, self._pending = self._pending[:FRAME], self._pending[FRAME:]
            rms = float(np.sqrt(np.mean(chunk.astype(np.float32) ** 2)))
            self.frames.append((at, rms >= VOICED_RMS, speechlike(chunk)))

    def tones_after(self, since: float, *, run: int = 25) -> float | None:
        """Start of the first ``run`` consecutive voiced, not speech-like frames (the hold audio) after ``since``."""
        count, start = 0, None
        for at, voiced, speech in self.frames:
            if at < since:
                continue
            if voiced and not speech:
                start = at if count == 0 else start
                count += 1
                if count >= run:
                    return start
            else:
                count = 0
        return None

    def first_speech_after(self, since: float, *, run: int = 3) -> float | None:
        """Start of the first ``run`` consecutive speech-like frames after ``since``."""
        count = 0
        for at, _, speech in self.frames:
            if at < since:
                continue
            count = count + 1 if speech else 0
            if count >= run:
                return at
        return None


class HandoffCaller(WebRTCCaller):
    """A WebRTC caller that also keeps what it hears as a :class:`SpectralLog` (speech or hold tones)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.spectra = SpectralLog()

    async def _read(self, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            now = time.monotonic()
            samples = _mono16k(frame, resampler)
            if len(samples):
                self.received.add(now, float(np.sqrt(np.mean(samples.astype(np.float32) ** 2))))
                self.spectra.add(now, samples)


class DeskPeer:
    """The human agent's audio as the desk's browser sends it: an aiortc peer on ``/api/handoffs/{id}/media``."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token
        self.pc = RTCPeerConnection()
        self.speaker = SpeakerTrack()
        self.spectra = SpectralLog()
        self._tasks: list[asyncio.Task[None]] = []

    async def join(self, handoff_id: str) -> None:
        """Offer, answer, start reading the caller's audio."""
        self.pc.addTransceiver(self.speaker, direction="sendrecv")

        @self.pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._tasks.append(asyncio.create_task(self._read(track)))

        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with httpx.AsyncClient(timeout=60) as http:
            answer = await http.post(
                f"{self.base_url}/api/handoffs/{handoff_id}/media",
                json={"sdp": self.pc.localDescription.sdp, "type": "offer"},
                headers={"Authorization": f"Bearer {self.token}"},
            )
        answer.raise_for_status()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer.json()["sdp"], type="answer"))

    async def _read(self, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.AudioFrame):
                self.spectra.add(time.monotonic(), _mono16k(frame, resampler))

    async def close(self) -> None:
        """Leave the call."""
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


async def wait_for(predicate: Any, *, within: float, step: float = 0.05) -> Any:
    """Poll ``predicate`` (an async or plain callable) until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(step)


async def queued_handoff(http: httpx.AsyncClient, call_id: str, *, within: float = 30.0) -> dict[str, Any] | None:
    """The handoff of ``call_id`` once it is queued (via the API, as the desk sees it)."""

    async def check() -> dict[str, Any] | None:
        items = (await http.get("/api/handoffs", params={"call_id": call_id})).json()["items"]
        return items[0] if items and items[0]["status"] != "requested" else None

    found: dict[str, Any] | None = await wait_for(check, within=within, step=0.2)
    return found


async def trial(base_url: str, token: str) -> dict[str, float | None]:
    """One call handed to the desk: the two latencies of this trial (seconds)."""
    caller = HandoffCaller(base_url)
    desk = DeskPeer(base_url, token)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as http:
        try:
            await caller.connect()
            start = time.monotonic()
            # The greeting plays first: ask once it is over.
            await caller.wait_quiet(since=start + 1.0, hold=0.8, within=30)
            done = caller.speaker.say(flite_pcm(ASK))
            await asyncio.wait_for(done.wait(), timeout=30)
            asked = caller.speaker.last_voiced_sent or time.monotonic()
            reply = await caller.received.wait(lambda: caller.received.first_voiced_after(asked), within=20)
            hold_latency = reply - asked if reply is not None else None
            assert caller.call_id is not None
            handoff = await queued_handoff(http, caller.call_id)
            if handoff is None or handoff["status"] != "queued":
                return {"hold_message_s": hold_latency, "accept_to_two_way_s": None}
            # A person accepts once the caller is on hold (the "connecting you" message has been played).
            on_hold = await wait_for(lambda: caller.spectra.tones_after(asked), within=20)
            if on_hold is None:
                return {"hold_message_s": hold_latency, "accept_to_two_way_s": None}
            # Both parties talk from here on; two-way audio is when each hears the other's speech.
            desk.speaker.say(flite_pcm(HUMAN_LINE) * 3)
            caller.speaker.say(flite_pcm(CALLER_LINE) * 3)
            clicked = time.monotonic()
            (await http.post(f"/api/handoffs/{handoff['id']}/accept")).raise_for_status()
            await desk.join(handoff["id"])
            heard_human = await wait_for(lambda: caller.spectra.first_speech_after(clicked), within=20)
            heard_caller = await wait_for(lambda: desk.spectra.first_speech_after(clicked), within=20)
            two_way = max(heard_human, heard_caller) - clicked if heard_human and heard_caller else None
            await http.post(
                f"/api/handoffs/{handoff['id']}/complete", json={"notes": "benchmark", "disposition": "resolved"}
            )
            return {"hold_message_s": hold_latency, "accept_to_two_way_s": two_way}
        finally:
            await desk.close()
            await caller.close()


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0] * 1000, 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1] * 1000, 1)


def make_agent(data_env: dict[str, str]) -> str:
    """A new ``agent`` account in the server's database; returns its bearer token."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.handoff", "token", f"bench-{time.monotonic_ns()}@example.com"],
        env=data_env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


async def _token(email: str) -> str:
    from config import load_settings
    from control_api.db.engine import create_engine, session_factory
    from control_api.rbac import Role
    from control_api.security import create_access_token
    from control_api.services.users import create_user

    settings = load_settings()
    engine = create_engine(settings.database_url)
    async with session_factory(engine)() as db:
        user = await create_user(db, email=email, password="correct-horse-battery", role=Role.AGENT)
    await engine.dispose()
    return create_access_token(
        subject=user.id, role=user.role, secret=settings.auth.secret_key.get_secret_value(), minutes=120
    )


async def run(trials: int, base_url: str, env: dict[str, str]) -> dict[str, Any]:
    """Run the trials against a started server."""
    token = make_agent(env)
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as http:
        (await http.put("/api/agents/me/presence", json={"status": "available"})).raise_for_status()
    results = [await trial(base_url, token) for _ in range(trials)]
    hold = [r["hold_message_s"] for r in results if r["hold_message_s"] is not None]
    two_way = [r["accept_to_two_way_s"] for r in results if r["accept_to_two_way_s"] is not None]
    return {
        "benchmark": "handoff",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "trials": trials,
        "hold_message_ms": {"p50": _pct(hold, 0.5), "p95": _pct(hold, 0.95), "measured": len(hold)},
        "accept_to_two_way_ms": {"p50": _pct(two_way, 0.5), "p95": _pct(two_way, 0.95), "measured": len(two_way)},
        "samples": results,
    }


def main() -> None:
    """Start a server, run the trials, print JSON."""
    if sys.argv[1:2] == ["token"]:
        print(asyncio.run(_token(sys.argv[2])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    from benchmarks.voice.server import start

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        server = start(
            data, extra_env={"VOXDESK_HANDOFF__ACCEPT_TIMEOUT_S": "120", "VOXDESK_RATE_LIMITS__API": "100000/minute"}
        )
        env = {**os.environ, "VOXDESK_ENV": "test", "VOXDESK_DATA_DIR": str(data)}
        env.pop("VOXDESK_DATABASE__URL", None)
        try:
            print(json.dumps(asyncio.run(run(args.trials, server.base_url, env)), indent=2))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
