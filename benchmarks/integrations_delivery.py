"""Integration delivery figures: latency with the destination up, time to deliver after it returns.

Runs the real dispatcher on a SQLite database in a temporary directory against a local Standard Webhooks
receiver (aiohttp, loopback), and prints one JSON object:

- ``up``: for ``--events`` calls created one after another, the time from the commit that records the call
  (and its ``call.started`` delivery) to the signed request arriving at the receiver: p50/p95/max (ms), and
  the dispatcher's own HTTP latency per attempt (from the run records).
- ``outage``: the receiver is down for ``--outage-secs`` while ``--outage-events`` calls start, then comes
  back; the time from its return until every delivery arrived (ms), attempts used, duplicates seen.

Usage: ``.venv/bin/python benchmarks/integrations_delivery.py [--events 200] [--outage-secs 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from control_api.db.engine import create_engine, session_factory
from control_api.db.migrate import upgrade
from control_api.db.models import Integration, IntegrationRun, OutboxDelivery
from control_api.integrations.dispatcher import Dispatcher, RetryPolicy
from control_api.integrations.http import GuardedHttp
from control_api.integrations.secrets import SecretBox
from control_api.services import calls as call_service

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """Verifies signatures and stamps the arrival time of each call id."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.arrived: dict[str, float] = {}
        self.duplicates = 0
        self.changed = asyncio.Event()
        self._verifier = Webhook(SECRET)
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        event = self._verifier.verify(await request.read(), dict(request.headers))
        call_id = event["data"]["call_id"]
        if call_id in self.arrived:
            self.duplicates += 1
        self.arrived.setdefault(call_id, time.perf_counter())
        self.changed.set()
        return web.Response(status=204)

    async def until(self, call_ids: list[str]) -> None:
        """Return once every id in ``call_ids`` has arrived."""
        while True:
            self.changed.clear()
            if all(c in self.arrived for c in call_ids):
                return
            await self.changed.wait()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        await upgrade(engine)
        sessions = session_factory(engine)
        box = SecretBox("b" * 40)
        receiver = Receiver(_port())
        await receiver.start()
        async with sessions() as session:
            session.add(
                Integration(
                    kind="webhook",
                    name="bench",
                    config={"url": f"http://127.0.0.1:{receiver.port}/hook", "events": ["call.started"]},
                    secret=box.seal({"signing_secret": SECRET}),
                )
            )
            await session.commit()
        dispatcher = Dispatcher(
            sessions=sessions,
            box=box,
            http=GuardedHttp(allowed_private_hosts=["127.0.0.1"], timeout_secs=5),
            retry=RetryPolicy(max_attempts=50, initial_secs=args.retry_initial_secs, max_secs=args.retry_max_secs),
            poll_interval_secs=args.poll_interval_secs,
            breaker_failures=args.breaker_failures,
            breaker_reset_secs=args.breaker_reset_secs,
        )
        dispatcher.start()
        committed: dict[str, float] = {}
        for _ in range(args.events):
            async with sessions() as session:
                call = await call_service.create_call(session, channel="webrtc")
            committed[call.id] = time.perf_counter()
            await receiver.until([call.id])
        up_ms = [(receiver.arrived[c] - t) * 1000 for c, t in committed.items()]
        async with sessions() as session:
            http_ms = [float(v) for v in (await session.execute(select(IntegrationRun.latency_ms))).scalars() if v]

        await receiver.stop()
        outage_ids: list[str] = []
        down_at = time.perf_counter()
        for _ in range(args.outage_events):
            async with sessions() as session:
                outage_ids.append((await call_service.create_call(session, channel="webrtc")).id)
        await asyncio.sleep(max(0.0, args.outage_secs - (time.perf_counter() - down_at)))
        await receiver.start()
        back_at = time.perf_counter()
        await receiver.until(outage_ids)
        after_ms = [(receiver.arrived[c] - back_at) * 1000 for c in outage_ids]
        async with sessions() as session:
            attempts = (
                await session.execute(
                    select(func.max(OutboxDelivery.attempts)).where(OutboxDelivery.call_id.in_(outage_ids))
                )
            ).scalar_one()
        await dispatcher.stop()
        await receiver.stop()
        await engine.dispose()
    return {
        "database": "sqlite",
        "settings": {
            "poll_interval_secs": args.poll_interval_secs,
            "retry_initial_secs": args.retry_initial_secs,
            "retry_max_secs": args.retry_max_secs,
            "breaker_failures": args.breaker_failures,
            "breaker_reset_secs": args.breaker_reset_secs,
        },
        "up": {
            "events": args.events,
            "commit_to_receipt_ms": {"p50": _pct(up_ms, 0.5), "p95": _pct(up_ms, 0.95), "max": round(max(up_ms), 2)},
            "http_attempt_ms": {
                "p50": _pct(http_ms, 0.5),
                "p95": _pct(http_ms, 0.95),
                "mean": round(statistics.fmean(http_ms), 2),
            },
        },
        "outage": {
            "events": args.outage_events,
            "down_secs": args.outage_secs,
            "time_to_deliver_after_return_ms": {"p50": _pct(after_ms, 0.5), "max": round(max(after_ms), 2)},
            "max_attempts_used": attempts,
            "duplicates_seen": receiver.duplicates,
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--outage-events", type=int, default=20)
    parser.add_argument("--outage-secs", type=float, default=10.0)
    parser.add_argument("--poll-interval-secs", type=float, default=1.0)
    parser.add_argument("--retry-initial-secs", type=float, default=2.0)
    parser.add_argument("--retry-max-secs", type=float, default=600.0)
    parser.add_argument("--breaker-failures", type=int, default=5)
    parser.add_argument("--breaker-reset-secs", type=float, default=30.0)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
