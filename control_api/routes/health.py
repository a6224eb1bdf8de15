"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from control_api.deps import StateDep
from control_api.schemas.health import CheckResult, Liveness, Readiness
from control_api.state import AppState, ReadinessCheck

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 3.0


@router.get("/health/live", response_model=Liveness)
async def live() -> Liveness:
    """The process answers."""
    return Liveness()


async def _run_check(name: str, check: ReadinessCheck) -> CheckResult:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by name
        detail = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
        return CheckResult(name=name, ok=False, detail=detail, duration_ms=(time.perf_counter() - start) * 1000)
    return CheckResult(name=name, ok=True, duration_ms=(time.perf_counter() - start) * 1000)


def builtin_checks(state: AppState) -> dict[str, ReadinessCheck]:
    """Database and cache checks every deployment has."""

    async def database() -> None:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return {"database": database, f"cache:{state.cache.name}": state.cache.ping}


@router.get(
    "/health/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A check failed; the failing checks are named."}},
)
async def ready(state: StateDep) -> JSONResponse:
    """Ready to take traffic: database, cache and loaded models all answer."""
    checks = {**builtin_checks(state), **state.readiness}
    results = await asyncio.gather(*(_run_check(n, c) for n, c in checks.items()))
    ok = all(r.ok for r in results)
    body = Readiness(status="ready" if ok else "not ready", checks=list(results))
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus exposition of every metric in this process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
