"""Named moving-window limits, in memory and on a real Redis server."""

from __future__ import annotations

import pytest

from control_api.problems import ProblemError
from control_api.ratelimit import build_limiter, check, clear, close, hit

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_sixth_hit_is_refused_with_retry_after(backend: str, request: pytest.FixtureRequest) -> None:
    redis_url = request.getfixturevalue("redis_url") if backend == "redis" else None
    limiter = build_limiter({"login": "5/15minutes", "api": "100/minute"}, redis_url=redis_url)
    assert limiter.backend == backend
    try:
        for _ in range(5):
            await hit(limiter, "login", "account:a@example.com")
        with pytest.raises(ProblemError) as err:
            await hit(limiter, "login", "account:a@example.com")
        assert err.value.status == 429
        retry = int(err.value.headers["Retry-After"])
        assert 1 <= retry <= 900
        # Another key and another limit are independent.
        await hit(limiter, "login", "account:b@example.com")
        await hit(limiter, "api", "account:a@example.com")
        with pytest.raises(ProblemError):
            await check(limiter, "login", "account:a@example.com")
        await clear(limiter, "login", "account:a@example.com")
        await check(limiter, "login", "account:a@example.com")
    finally:
        await close(limiter)


async def test_redis_counters_are_shared_between_limiters(redis_url: str) -> None:
    first = build_limiter({"voice": "2/hour"}, redis_url=redis_url)
    second = build_limiter({"voice": "2/hour"}, redis_url=redis_url)
    try:
        await hit(first, "voice", "ip:203.0.113.9")
        await hit(second, "voice", "ip:203.0.113.9")
        with pytest.raises(ProblemError):
            await hit(first, "voice", "ip:203.0.113.9")
    finally:
        await close(first)
        await close(second)


def test_two_api_replicas_share_the_login_limit_through_redis(tmp_path: object, redis_url: str) -> None:
    from pathlib import Path

    from fastapi.testclient import TestClient

    from control_api.app import create_app
    from tests.control_api.conftest import api_settings

    base = Path(str(tmp_path))
    db = {"url": f"sqlite+aiosqlite:///{base / 'shared.db'}"}
    first = create_app(api_settings(base / "a", redis={"url": redis_url}, database=db))
    second = create_app(api_settings(base / "b", redis={"url": redis_url}, database=db))
    with TestClient(first) as a, TestClient(second) as b:
        a.post("/api/auth/signup", json={"email": "r@voxdesk.example", "password": "correct horse battery"})
        for i in range(5):
            replica = a if i % 2 else b
            bad = replica.post("/api/auth/login", data={"username": "r@voxdesk.example", "password": "wrong pass!"})
            assert bad.status_code == 401
        sixth = a.post("/api/auth/login", data={"username": "r@voxdesk.example", "password": "wrong pass!"})
        assert sixth.status_code == 429
        assert int(sixth.headers["retry-after"]) > 0
        assert b.get("/health/ready").json()["status"] == "ready"
