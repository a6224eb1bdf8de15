"""Dashboard and analytics endpoints at 100 000 seeded calls, on SQLite and PostgreSQL: p50/p95 per endpoint.

Seeds calls over the last 90 days (bulk inserts: each call with 4 transcript turns, about half of the agent
turns answered from the knowledge base, 2 latency events, some barge-ins, handoffs and a knowledge query),
starts the real API in-process, signs in as the admin and times each endpoint through HTTP (routing, auth, SQL
and JSON included). ``first_ms`` is each endpoint's first call. A running desk writes each call's outcome
(``call_outcomes``, the containment rule) in the post-call analysis job; the seeded history has none, so the
benchmark first runs the start-up catch-up (``analytics.catch_up_outcomes``, timed as ``catch_up``) that an
upgraded desk runs in the background, then measures. ``--no-catch-up`` measures the lazy path instead (the first
report over a window reads its transcripts). Prints one JSON document and writes it to ``--out``.

    .venv/bin/python -m benchmarks.api_analytics                      # both databases, 100 000 calls
    .venv/bin/python -m benchmarks.api_analytics --backend sqlite --calls 20000 --iterations 10

PostgreSQL: a temporary database is created on ``--postgres-url`` (default ``$VOXDESK_TEST_POSTGRES_URL``,
else the ``./scripts/services`` server) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from fastapi.testclient import TestClient
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from config import Settings
from control_api.app import create_app
from control_api.db.engine import create_engine, session_factory
from control_api.db.migrate import upgrade
from control_api.db.models import Call, CallEvent, CallTurn, Handoff, RagQuery
from control_api.services.analytics import catch_up_outcomes

DEFAULT_PG = os.environ.get("VOXDESK_TEST_POSTGRES_URL", "postgresql+psycopg://voxdesk:voxdesk@127.0.0.1:5432/postgres")
ENDPOINTS: list[tuple[str, str, dict[str, str]]] = [
    ("dashboard_stats", "/api/dashboard/stats", {}),
    ("analytics_calls_30d_by_day", "/api/analytics/calls", {"bucket": "day"}),
    ("analytics_calls_7d_by_hour", "/api/analytics/calls", {"bucket": "hour", "since": "{d7}"}),
    ("analytics_calls_90d_by_day", "/api/analytics/calls", {"bucket": "day", "since": "{d90}"}),
    ("analytics_sentiment_30d", "/api/analytics/sentiment", {}),
    ("analytics_performance_30d", "/api/analytics/performance", {}),
    ("analytics_performance_90d", "/api/analytics/performance", {"since": "{d90}"}),
    ("analytics_trends_30d_by_day", "/api/analytics/trends", {"bucket": "day"}),
    ("analytics_trends_90d_by_day", "/api/analytics/trends", {"bucket": "day", "since": "{d90}"}),
    ("calls_list_first_page", "/api/calls", {"limit": "50"}),
    ("calls_search_transcripts", "/api/calls", {"q": "refund", "limit": "50"}),
]
CHANNELS = ["webrtc", "sip", "telephony", "websocket"]
OUTCOMES = ["resolved"] * 6 + ["handed_off"] * 2 + ["abandoned", "failed"]
PHRASES = [
    "I want a refund for my order",
    "How do I reset my password",
    "This is terrible service, I am angry",
    "Thanks, that was really helpful",
    "Where is my parcel",
    "Can I change my delivery address",
]
BATCH = 5000


def _rows(n_calls: int, now: datetime, seed: int = 7) -> tuple[list[dict[str, Any]], ...]:
    rng = random.Random(seed)
    calls: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    queries: list[dict[str, Any]] = []
    handoffs: list[dict[str, Any]] = []
    numbers = [f"+9198{rng.randrange(10**8):08d}" for _ in range(max(1, n_calls // 3))]
    for i in range(n_calls):
        started = now - timedelta(seconds=rng.uniform(0, 90 * 86400))
        duration = int(rng.lognormvariate(11.5, 0.8))
        live = i < 20
        call_id = str(uuid.UUID(int=rng.getrandbits(128)))
        sentiment = round(rng.uniform(-1, 1), 4)
        calls.append(
            {
                "id": call_id,
                "channel": rng.choice(CHANNELS),
                "direction": "inbound",
                "status": "active" if live else "ended",
                "outcome": None if live else rng.choice(OUTCOMES),
                "caller_number": rng.choice(numbers),
                "started_at": started,
                "ended_at": None if live else started + timedelta(milliseconds=duration),
                "duration_ms": None if live else duration,
                "tags": [],
                "meta": {},
                "sentiment": sentiment,
                "sentiment_label": "positive" if sentiment >= 0.05 else "negative" if sentiment <= -0.05 else "neutral",
                "latency_p50_ms": 900.0,
                "latency_p95_ms": 1500.0,
            }
        )
        for seq in range(1, 5):
            caller = seq % 2 == 1
            turns.append(
                {
                    "call_id": call_id,
                    "seq": seq,
                    "role": "caller" if caller else "agent",
                    "text": rng.choice(PHRASES) if caller else "Let me help you with that.",
                    "ended_at": started + timedelta(seconds=5 * seq),
                    "interrupted": (not caller) and rng.random() < 0.1,
                    "asr_confidence": round(rng.uniform(0.5, 1.0), 3) if caller else None,
                    "sentiment": sentiment if caller else None,
                    "citations": [] if caller or rng.random() < 0.3 else ["chunk-1"],
                }
            )
        for turn in (2, 4):
            total = rng.lognormvariate(6.8, 0.35)
            events.append(
                {
                    "call_id": call_id,
                    "kind": "latency",
                    "turn_seq": turn,
                    "at": started + timedelta(seconds=5 * turn),
                    "total_ms": total,
                    "vad_ms": 200.0,
                    "asr_ms": total * 0.3,
                    "retrieval_ms": 15.0,
                    "llm_ms": total * 0.2,
                    "tts_ms": total * 0.2,
                    "data": {},
                }
            )
        if rng.random() < 0.2:
            stages = dict.fromkeys(("total_ms", "vad_ms", "asr_ms", "retrieval_ms", "llm_ms", "tts_ms"))
            events.append({"call_id": call_id, "kind": "barge_in", "turn_seq": 2, "at": started, "data": {}, **stages})
        queries.append(
            {"question": "q", "found": rng.random() < 0.8, "top_score": 0.5, "call_id": call_id, "created_at": started}
        )
        if calls[-1]["outcome"] == "handed_off":
            source = rng.choice(["phrase", "tool", "not_found", "sentiment"])
            handoffs.append(
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "call_id": call_id,
                    "source": source,
                    "status": "completed",
                    "requested_at": started + timedelta(seconds=30),
                }
            )
    return calls, turns, events, queries, handoffs


def seed(url: str, n_calls: int, now: datetime) -> dict[str, float]:
    """Migrate and bulk-insert the synthetic calls (a synchronous engine: executemany in batches)."""
    start = time.perf_counter()
    engine = create_engine(url)
    asyncio.run(_migrate(engine))
    calls, turns, events, queries, handoffs = _rows(n_calls, now)
    generated = time.perf_counter()
    sync_engine = create_sync_engine(url.replace("+aiosqlite", ""))
    with sync_engine.begin() as conn:
        tables = ((Call, calls), (CallTurn, turns), (CallEvent, events), (RagQuery, queries), (Handoff, handoffs))
        for model, rows in tables:
            for i in range(0, len(rows), BATCH):
                conn.execute(insert(model), rows[i : i + BATCH])
    inserted = time.perf_counter()
    with sync_engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    sync_engine.dispose()
    return {
        "generate_s": round(generated - start, 2),
        "insert_s": round(inserted - generated, 2),
        "rows": len(calls) + len(turns) + len(events) + len(queries) + len(handoffs),
    }


def catch_up(url: str) -> dict[str, float]:
    """Run the start-up outcome catch-up over the seeded history (what ``voxdesk serve`` does in the background)."""

    async def run() -> int:
        engine = create_engine(url)
        try:
            return await catch_up_outcomes(session_factory(engine))
        finally:
            await engine.dispose()

    start = time.perf_counter()
    written = asyncio.run(run())
    seconds = time.perf_counter() - start
    return {"calls": written, "seconds": round(seconds, 1), "calls_per_s": round(written / max(seconds, 1e-9))}


async def _migrate(engine: AsyncEngine) -> None:
    await upgrade(engine)
    await engine.dispose()


def measure(settings: Settings, iterations: int, now: datetime) -> dict[str, Any]:
    """Time every endpoint ``iterations`` times (after one warm-up call) through the HTTP API."""
    stamps = {"d7": (now - timedelta(days=7)).isoformat(), "d90": (now - timedelta(days=89)).isoformat()}
    results: dict[str, Any] = {}
    with TestClient(create_app(settings)) as client:
        password = "benchmark password 1"
        client.post("/api/auth/signup", json={"email": "bench@voxdesk.example", "password": password})
        for name, path, params in ENDPOINTS:
            # A fresh access token per endpoint: a slow run outlives one token's lifetime.
            token = client.post(
                "/api/auth/login", data={"username": "bench@voxdesk.example", "password": password}
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            query = {k: v.format(**stamps) for k, v in params.items()}
            t0 = time.perf_counter()
            warm = client.get(path, params=query, headers=headers)
            first_ms = (time.perf_counter() - t0) * 1000
            if warm.status_code != 200:
                raise RuntimeError(f"{name}: {warm.status_code} {warm.text[:300]}")
            samples = []
            for _ in range(iterations):
                t0 = time.perf_counter()
                response = client.get(path, params=query, headers=headers)
                samples.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200
            samples.sort()
            results[name] = {
                "p50_ms": round(statistics.median(samples), 1),
                "p95_ms": round(samples[min(len(samples) - 1, int(0.95 * len(samples)))], 1),
                "max_ms": round(samples[-1], 1),
                "first_ms": round(first_ms, 1),
                "n": iterations,
            }
    return results


def _settings(data_dir: Path, url: str) -> Settings:
    return Settings(
        _env_file=None,
        env="test",
        data_dir=data_dir,
        database={"url": url},
        rate_limits={"api": "1000000/minute", "login": "100/minute", "voice": "10/hour"},
    )


def run_backend(
    backend: str, *, n_calls: int, iterations: int, postgres_url: str, precompute: bool = True
) -> dict[str, Any]:
    """Seed and measure one database backend."""
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="voxdesk-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        drop: str | None = None
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{data_dir / 'bench.db'}"
        else:
            admin = make_url(postgres_url)
            name = f"voxdesk_bench_{uuid.uuid4().hex[:10]}"
            conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            drop = name
            url = admin.set(database=name).render_as_string(hide_password=False)
        try:
            seeding = seed(url, n_calls, now)
            caught_up = catch_up(url) if precompute else None
            endpoints = measure(_settings(data_dir, url), iterations, now)
        finally:
            if drop is not None:
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')
    return {"seed": seeding, "catch_up": caught_up, "endpoints": endpoints}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    parser.add_argument("--no-catch-up", action="store_true", help="measure the lazy path (no precomputed outcomes)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/api_analytics.json"))
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    report: dict[str, Any] = {
        "benchmark": "api_analytics",
        "calls": args.calls,
        "iterations": args.iterations,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "catch_up": not args.no_catch_up,
        "results": {},
    }
    for backend in backends:
        report["results"][backend] = run_backend(
            backend,
            n_calls=args.calls,
            iterations=args.iterations,
            postgres_url=args.postgres_url,
            precompute=not args.no_catch_up,
        )
    text = json.dumps(report, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
