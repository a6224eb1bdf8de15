"""Voice benchmark over loopback WebRTC with the offline stack; prints one JSON object.

    .venv/bin/python -m benchmarks.voice_webrtc [--questions 8] [--barge-ins 6] [--levels 1,2,4,8,12,16]

It starts ``python -m agent serve`` on a temp data dir (demo knowledge base ingested), then, as scripted aiortc
callers speaking flite questions from ``benchmarks/kb/questions.jsonl``:

- **latency**: voice-to-voice per turn as the caller hears it (last voiced 20 ms frame sent → first voiced frame
  of the answer received), p50/p95, plus the server's own per-turn stage split from the ``call_events`` it stored
  (VAD stop / ASR / retrieval / LLM / TTS);
- **barge-in**: the caller starts speaking over an answer; reaction = speech onset sent → agent audio quiet
  (first ≥ 250 ms unvoiced run), p50/p95; a trial where the agent was already silent at the onset (its answer
  ended or paused just before) is not timed;
- **concurrency**: N simultaneous callers for each level; the most calls carried with p95 latency ≤ 1 s.

``--chromium-smoke`` also makes one call from headless Chromium through ``/call`` and reports its latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from benchmarks.voice.client import VOICED_RMS, WebRTCCaller
from benchmarks.voice.cpu import children_cpu_secs, process_cpu_secs
from benchmarks.voice.server import REPO, RunningServer, start

QUESTIONS = REPO / "benchmarks" / "kb" / "questions.jsonl"
INTERRUPTION = "Sorry, can I ask something else?"
TARGETS = {"latency_p50_ms": 500, "latency_p95_ms": 800, "barge_in_p95_ms": 300, "concurrent_calls": 8}


def flite(text: str, voice: str = "slt") -> bytes:
    wav = subprocess.run(["flite", "-voice", voice, "-t", text, "-o", "/dev/stdout"], check=True, capture_output=True)
    return wav.stdout[44:]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1], 1)


def load_questions(n: int) -> list[str]:
    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    short = [r["question"] for r in rows if len(r["question"].split()) <= 10]
    return short[:n]


async def _await_greeting(caller: WebRTCCaller) -> None:
    started = await caller.received.wait(lambda: caller.received.first_voiced_after(0.0), within=30)
    if started:
        await caller.wait_quiet(since=started, hold=0.8, within=30)


async def ask(caller: WebRTCCaller, pcm: bytes, *, answer_timeout: float = 20.0) -> float | None:
    """Say ``pcm``; return the voice-to-voice latency in ms (None: no answer), after the answer has ended."""
    done = caller.speaker.say(pcm)
    await done.wait()
    sent = caller.speaker.last_voiced_sent
    if sent is None:
        return None
    onset = await caller.received.wait(lambda: caller.received.first_voiced_after(sent), within=answer_timeout)
    if onset is None:
        return None
    await caller.wait_quiet(since=onset, hold=1.0, within=60)
    return float(onset - sent) * 1000


async def barge_in(caller: WebRTCCaller, question: bytes, interruption: bytes) -> float | None:
    """Interrupt the answer to ``question`` one second in; return speech onset → agent quiet in ms."""
    done = caller.speaker.say(question)
    await done.wait()
    sent = caller.speaker.last_voiced_sent
    if sent is None:
        return None
    onset = await caller.received.wait(lambda: caller.received.first_voiced_after(sent), within=20)
    if onset is None:
        return None
    # Still talking a second later? (Short answers are over before they can be interrupted: skip those.)
    await asyncio.sleep(1.0)
    recent = [r for t, r in caller.received.frames if t >= time.monotonic() - 0.2]
    if not recent or max(recent) < VOICED_RMS:
        await caller.wait_quiet(since=onset, hold=1.0, within=30)
        return None
    said = caller.speaker.say(interruption)
    spoke = await caller.received.wait(lambda: caller.speaker.first_voiced_sent, within=5)
    if spoke is None:
        return None
    quiet = await caller.received.wait(lambda: caller.received.quiet_from(spoke, hold=0.25), within=10)
    # The agent must be heard as the caller starts: an answer that ended, or paused between clauses, just
    # before is no barge-in to time (its "reaction" would be ~0 ms).
    at_onset = [r for t, r in caller.received.frames if spoke - 0.1 <= t <= spoke]
    audible = bool(at_onset) and max(at_onset) >= VOICED_RMS
    await said.wait()
    # Let the agent answer the interruption, and finish.
    after = caller.speaker.last_voiced_sent or spoke
    reply = await caller.received.wait(lambda: caller.received.first_voiced_after(after), within=15)
    if reply is not None:
        await caller.wait_quiet(since=reply, hold=1.0, within=60)
    return None if quiet is None or not audible else (quiet - spoke) * 1000


async def one_caller(
    base_url: str, questions: list[bytes], *, delay: float = 0.0
) -> tuple[str | None, list[float], int]:
    await asyncio.sleep(delay)  # staggered arrivals
    caller = WebRTCCaller(base_url)
    latencies: list[float] = []
    missed = 0
    try:
        await caller.connect()
        await _await_greeting(caller)
        for pcm in questions:
            latency = await ask(caller, pcm)
            if latency is None:
                missed += 1
            else:
                latencies.append(latency)
    finally:
        await caller.close()
    return caller.call_id, latencies, missed


def stage_split(data_dir: Path, call_ids: list[str]) -> dict[str, Any]:
    marks = ",".join("?" * len(call_ids))
    with sqlite3.connect(data_dir / "voxdesk.db") as db:
        rows = db.execute(
            f"SELECT total_ms, vad_ms, asr_ms, retrieval_ms, llm_ms, tts_ms FROM call_events "
            f"WHERE kind = 'latency' AND call_id IN ({marks})",
            call_ids,
        ).fetchall()
    names = ["total_ms", "vad_ms", "asr_ms", "retrieval_ms", "llm_ms", "tts_ms"]
    split: dict[str, Any] = {"turns": len(rows)}
    for i, name in enumerate(names):
        values = [float(r[i]) for r in rows if r[i] is not None]
        split[name] = {"p50": pct(values, 0.5), "p95": pct(values, 0.95)}
    return split


def chromium_smoke(base_url: str, question: str, workdir: Path) -> dict[str, Any]:
    import numpy as np
    from playwright.sync_api import sync_playwright

    pcm16 = np.frombuffer(b"\0\0" * 16000 * 4 + flite(question) + b"\0\0" * 16000 * 30, dtype=np.int16)
    pcm48 = np.interp(np.arange(len(pcm16) * 3) / 3.0, np.arange(len(pcm16)), pcm16).astype(np.int16)
    import wave

    wav = workdir / "smoke48k.wav"
    with wave.open(str(wav), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(48000)
        handle.writeframes(pcm48.tobytes())
    args = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}", "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path="/usr/bin/chromium", headless=True, args=args
        )
        page = context.new_page()
        page.goto(base_url + "/call?test=1")
        page.click("#call")
        page.wait_for_function("() => window.voxdeskCall.latencies.length >= 1", timeout=90_000)
        result: dict[str, Any] = page.evaluate(
            "() => ({turns: window.voxdeskCall.turns.map(t => [t.role, t.text]),"
            " latencies: window.voxdeskCall.latencies})"
        )
        page.click("#hangup")
        context.close()
    return result


@dataclass(frozen=True)
class ExistingServer:
    """Where the benchmark calls, where the server's SQLite database lives, and its process (when started here)."""

    base_url: str
    data_dir: Path
    pid: int | None = None


class CpuMeter:
    """Cores used by the server process, by its worker processes, and by this (caller) process."""

    def __init__(self, server_pid: int | None) -> None:
        self._pid = server_pid
        self._t0 = self._s0 = self._c0 = 0.0
        self._w0: dict[int, float] = {}

    def start(self) -> None:
        self._t0, self._c0 = time.monotonic(), time.process_time()
        self._s0 = (process_cpu_secs(self._pid) or 0.0) if self._pid else 0.0
        self._w0 = children_cpu_secs(self._pid) if self._pid else {}

    def stop(self) -> dict[str, float | None]:
        wall = max(1e-6, time.monotonic() - self._t0)
        server = process_cpu_secs(self._pid) if self._pid else None
        workers = children_cpu_secs(self._pid) if self._pid else {}
        return {
            "server_cores": None if server is None else round((server - self._s0) / wall, 2),
            "server_workers_cores": round(sum(v - self._w0.get(k, 0.0) for k, v in workers.items()) / wall, 2),
            "callers_cores": round((time.process_time() - self._c0) / wall, 2),
        }


async def run(args: argparse.Namespace, server: ExistingServer) -> dict[str, Any]:
    texts = load_questions(args.questions)
    pcms = [flite(t) for t in texts]
    interruption = flite(INTERRUPTION)
    out: dict[str, Any] = {}

    # One call: latency per turn, then barge-in trials.
    caller = WebRTCCaller(server.base_url)
    single_latencies: list[float] = []
    missed = 0
    reactions: list[float] = []
    try:
        await caller.connect()
        await _await_greeting(caller)
        for pcm in pcms:
            latency = await ask(caller, pcm)
            if latency is None:
                missed += 1
            else:
                single_latencies.append(latency)
        for i in range(args.barge_ins):
            reaction = await barge_in(caller, pcms[i % len(pcms)], interruption)
            if reaction is not None:
                reactions.append(reaction)
    finally:
        await caller.close()
    assert caller.call_id is not None
    out["latency"] = {
        "turns": len(single_latencies),
        "unanswered": missed,
        "p50_ms": pct(single_latencies, 0.5),
        "p95_ms": pct(single_latencies, 0.95),
        "max_ms": round(max(single_latencies), 1) if single_latencies else None,
        "server_stage_split_ms": stage_split(server.data_dir, [caller.call_id]),
    }
    out["barge_in"] = {
        "trials": args.barge_ins,
        "measured": len(reactions),
        "p50_ms": pct(reactions, 0.5),
        "p95_ms": pct(reactions, 0.95),
        "values_ms": [round(r, 1) for r in reactions],
    }

    # Concurrency levels.
    levels: list[dict[str, Any]] = []
    carried = levels_done = 0
    for level in args.levels:
        rng = random.Random(level)
        cpu = CpuMeter(server.pid)
        cpu.start()
        results = await asyncio.gather(
            *(one_caller(server.base_url, pcms[: args.per_call], delay=rng.uniform(0, 2.0)) for _ in range(level)),
            return_exceptions=True,
        )
        cpu_used = cpu.stop()
        latencies = [x for r in results if not isinstance(r, BaseException) for x in r[1]]
        failed = sum(1 for r in results if isinstance(r, BaseException))
        unanswered = sum(r[2] for r in results if not isinstance(r, BaseException))
        call_ids = [r[0] for r in results if not isinstance(r, BaseException) and r[0]]
        p95 = pct(latencies, 0.95)
        ok = p95 is not None and p95 <= 1000 and failed == 0 and unanswered == 0
        levels.append(
            {
                "calls": level,
                "turns": len(latencies),
                "unanswered": unanswered,
                "failed_calls": failed,
                "p50_ms": pct(latencies, 0.5),
                "p95_ms": p95,
                "server_stage_split_ms": stage_split(server.data_dir, call_ids) if call_ids else None,
                "cpu": cpu_used,
                "ok": ok,
            }
        )
        if ok and carried == levels_done:
            carried = level
        levels_done = level
        if not ok and not args.all_levels:
            break
    out["concurrency"] = {"levels": levels, "max_calls_p95_le_1s": carried}
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=8, help="Questions asked in the single-call phase.")
    parser.add_argument("--barge-ins", type=int, default=6, help="Barge-in trials.")
    parser.add_argument("--per-call", type=int, default=3, help="Questions per caller in the concurrency phase.")
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4, 8, 12, 16])
    parser.add_argument("--all-levels", action="store_true", help="Measure every level, past the first over 1 s.")
    parser.add_argument("--chromium-smoke", action="store_true", help="Also make one call from headless Chromium.")
    parser.add_argument("--server-url", help="Use a running server (its SQLite data dir: --data-dir).")
    parser.add_argument("--data-dir", type=Path, help="Data dir of the server given with --server-url.")
    args = parser.parse_args()
    started = time.monotonic()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        server: RunningServer | None = None
        if args.server_url:
            target = ExistingServer(base_url=args.server_url.rstrip("/"), data_dir=args.data_dir or Path("data"))
        else:
            server = start(Path(tmp) / "data")
            target = ExistingServer(base_url=server.base_url, data_dir=server.data_dir, pid=server.process.pid)
        try:
            # uvloop, like the server: the scripted callers share the machine, so they should cost little.
            result = uvloop.run(run(args, target))
            if args.chromium_smoke:
                result["chromium_smoke"] = chromium_smoke(target.base_url, load_questions(1)[0], Path(tmp))
        finally:
            if server is not None:
                server.stop()
    report = {
        "benchmark": "voice_webrtc",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": load_at_start,
        },
        "stack": "pocketsphinx (domain LM) + extractive brain + flite slt, Silero VAD, SmallWebRTC over loopback",
        "targets": TARGETS,
        **result,
        "wall_s": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
