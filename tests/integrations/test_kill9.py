"""kill -9 while a ticket request is on the wire to Freshdesk, start again: exactly one ticket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.control_api.conftest import PASSWORD
from tests.integrations.conftest import FRESHDESK_KEY, wait_for
from tests.integrations.standins import FreshdeskStandIn, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXDESK_")}
    env.update(
        {
            "VOXDESK_ENV": "test",
            "VOXDESK_DATA_DIR": str(data_dir),
            "VOXDESK_RATE_LIMITS__API": "100000/minute",
            "VOXDESK_INTEGRATIONS__ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
            "VOXDESK_INTEGRATIONS__DELIVERY_TIMEOUT_SECS": "2",
            "VOXDESK_INTEGRATIONS__RETRY_INITIAL_SECS": "0.05",
            "VOXDESK_INTEGRATIONS__RETRY_MAX_SECS": "0.3",
            "VOXDESK_INTEGRATIONS__POLL_INTERVAL_SECS": "0.05",
            "HF_HUB_OFFLINE": "1",
        }
    )
    return env


def _serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.integrations.serve_child", str(port)], cwd=ROOT, env=_env(data_dir)
    )

    def live() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(live, timeout=120, what="the API process")
    return child


def _login(api: httpx.Client) -> None:
    r = api.post("/api/auth/login", data={"username": "admin@voxdesk.example", "password": PASSWORD})
    assert r.status_code == 200, r.text
    api.headers["Authorization"] = "Bearer " + r.json()["access_token"]


def _deliveries(api: httpx.Client) -> list[dict[str, Any]]:
    return list(api.get("/api/integrations/deliveries").json()["data"])


def test_kill_9_mid_send_then_restart_files_one_ticket(tmp_path: Path, freshdesk: FreshdeskStandIn) -> None:
    data_dir, port = tmp_path / "data", free_port()
    freshdesk.hang_after_create = 120.0  # Freshdesk stores the ticket; its answer never comes before the kill
    child = _serve(data_dir, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            signup = {"email": "admin@voxdesk.example", "password": PASSWORD, "full_name": "Ada"}
            assert api.post("/api/auth/signup", json=signup).status_code == 201
            _login(api)
            integration = {
                "name": "helpdesk",
                "type": "freshdesk",
                "config": {"base_url": freshdesk.url},
                "secrets": {"api_key": FRESHDESK_KEY},
            }
            assert api.post("/api/integrations", json=integration).status_code == 201
            ticket = {"subject": "Refund", "description": "Refund for order 42.", "email": "known@caller.example"}
            r = api.post("/api/integrations/freshdesk/create-ticket", json=ticket)
            assert r.status_code == 202, r.text
            wait_for(lambda: freshdesk.tickets, what="the ticket request reaching Freshdesk")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        assert child.returncode == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    freshdesk.hang_after_create = 0.0
    child = _serve(data_dir, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            _login(api)
            [delivery] = wait_for(
                lambda: [d for d in _deliveries(api) if d["status"] == "delivered"], timeout=60, what="delivery"
            )
        assert len(freshdesk.tickets) == 1
        assert delivery["external_id"] == str(freshdesk.tickets[0]["id"])
        assert ("GET", "/api/v2/search/tickets") in freshdesk.requests
        assert [m for m, p in freshdesk.requests if p == "/api/v2/tickets"] == ["POST"]
    finally:
        child.terminate()
        child.wait(30)
