"""The API shell: health, metrics, offline docs and problem JSON for every error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel

from config import Settings
from control_api.app import create_app

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


class _Body(BaseModel):
    name: str
    count: int


_echo = APIRouter()


@_echo.post("/api/_test/echo")
async def _echo_route(body: _Body) -> _Body:
    return body


@_echo.get("/api/_test/boom")
async def _boom() -> None:
    raise RuntimeError("secret internals: SELECT * FROM users")


@pytest.fixture
def echo_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, routers=[_echo]), raise_server_exceptions=False) as c:
        yield c


def test_live_and_ready(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert {c["name"] for c in body["checks"]} >= {"database", "cache:memory"}


def test_ready_names_the_failing_check(settings: Settings) -> None:
    async def broken() -> None:
        raise ConnectionError("model not loaded")

    with TestClient(create_app(settings, readiness_checks={"models": broken})) as c:
        r = c.get("/health/ready")
    assert r.status_code == 503
    failing = [ch for ch in r.json()["checks"] if not ch["ok"]]
    assert [ch["name"] for ch in failing] == ["models"]
    assert "model not loaded" in failing[0]["detail"]


def test_ready_with_redis_cache(tmp_path, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import make_settings

    with TestClient(create_app(make_settings(tmp_path, redis={"url": redis_url}))) as c:
        r = c.get("/health/ready")
    assert r.status_code == 200
    assert "cache:redis" in {ch["name"] for ch in r.json()["checks"]}


def test_ready_fails_when_redis_is_down(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import make_settings

    with TestClient(create_app(make_settings(tmp_path, redis={"url": "redis://127.0.0.1:1/0"}))) as c:
        r = c.get("/health/ready")
    assert r.status_code == 503
    assert [ch["name"] for ch in r.json()["checks"] if not ch["ok"]] == ["cache:redis"]


def test_metrics_are_prometheus(client: TestClient) -> None:
    client.get("/health/live")
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert 'voxdesk_http_requests_total{method="GET",route="/health/live",status="200"}' in r.text


def test_openapi_and_offline_docs(client: TestClient) -> None:
    spec = client.get("/api/openapi.json")
    assert spec.status_code == 200
    assert spec.json()["info"]["title"] == "Voxdesk"
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert "/api/docs-assets/swagger-ui-bundle.js" in page.text
    asset = client.get("/api/docs-assets/swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert len(asset.content) > 100_000


def test_unknown_route_is_404_problem(client: TestClient) -> None:
    r = client.post("/api/nothing")
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert body["type"].startswith("https://")
    assert body["instance"] == "/api/nothing"
    assert r.headers["x-request-id"] == body["request_id"]


def test_wrong_method_is_405_problem(client: TestClient) -> None:
    r = client.delete("/health/live")
    assert r.status_code == 405
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["status"] == 405


def test_malformed_json_is_422_problem(echo_client: TestClient) -> None:
    r = echo_client.post("/api/_test/echo", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["errors"]
    wrong = echo_client.post("/api/_test/echo", json={"name": "x", "count": "many"})
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["loc"] == ["body", "count"]


def test_oversized_body_is_413_problem(settings: Settings) -> None:
    settings.server.max_body_bytes = 2048
    with TestClient(create_app(settings, routers=[_echo])) as c:
        r = c.post(
            "/api/_test/echo",
            content=b'{"name": "' + b"x" * 5000 + b'", "count": 1}',
            headers={"content-type": "application/json"},
        )
    assert r.status_code == 413
    assert r.headers["content-type"] == PROBLEM


def test_internal_errors_leak_nothing(echo_client: TestClient) -> None:
    r = echo_client.get("/api/_test/boom")
    assert r.status_code == 500
    assert r.headers["content-type"] == PROBLEM
    assert "SELECT" not in r.text
    assert "secret internals" not in r.text


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    for path in ("/health/live", "/api/openapi.json", "/api/no-such-route", "/api/docs"):
        response = client.get(path)
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "no-referrer", path
    assert client.get("/health/live").headers["content-security-policy"].startswith("default-src 'none'")
