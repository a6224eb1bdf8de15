"""``voxdesk serve`` as a real process: schema upgraded on start, ready on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(tmp_path: Path, extra_env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXDESK_")}
    env.update({"VOXDESK_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1", **extra_env})
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def _wait_ready(proc: subprocess.Popen[str], base: str, timeout: float = 240.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: httpx.Response | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"server exited with {proc.returncode}: {out[-3000:]}")
        try:
            last = httpx.get(f"{base}/health/ready", timeout=5)
            if last.status_code == 200:
                return last
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not ready in time: {last.text if last else 'no answer'}")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _docs_render_in_a_browser(base: str, tmp_path: Path) -> None:
    """The offline Swagger UI renders our OpenAPI 3.1 document, and nothing is fetched from outside."""
    from playwright.sync_api import sync_playwright

    outside: list[str] = []
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium"),
            executable_path="/usr/bin/chromium",
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = ctx.new_page()
            page.on("request", lambda r: None if r.url.startswith(base) else outside.append(r.url))
            page.goto(f"{base}/api/docs")
            page.wait_for_selector(".opblock", timeout=60_000)
            assert page.locator(".opblock").count() >= 3
            assert "Unable to render" not in page.content()
        finally:
            ctx.close()
    assert [u for u in outside if not u.startswith("data:")] == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_serve_upgrades_schema_and_becomes_ready(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    env = {}
    if backend == "postgresql":
        env["VOXDESK_DATABASE__URL"] = request.getfixturevalue("postgres_url")
    proc, base = _serve(tmp_path, env)
    try:
        ready = _wait_ready(proc, base)
        assert ready.json()["status"] == "ready"
        assert httpx.get(f"{base}/api/openapi.json", timeout=10).status_code == 200
        if backend == "sqlite":
            _docs_render_in_a_browser(base, tmp_path)
        missing = httpx.post(f"{base}/api/nothing", timeout=10)
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
    finally:
        _stop(proc)
    output = proc.stdout.read() if proc.stdout else ""
    # uvicorn re-raises SIGTERM after a graceful shutdown, so -15 is a clean exit.
    assert proc.returncode in (0, -signal.SIGTERM), output[-3000:]
    assert "Traceback" not in output
