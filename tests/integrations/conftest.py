"""Fixtures: the API with fast delivery settings, signed-in users, and the stand-ins."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.control_api.conftest import Accounts, api_settings, sign_in_everyone
from tests.integrations.standins import FreshdeskStandIn, OrdersApi, WebhookReceiver

WEBHOOK_SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
FRESHDESK_KEY = "fd-test-key-9f8e7d"
FAST_DELIVERY: dict[str, Any] = {
    "allowed_private_hosts": "127.0.0.1",
    "delivery_timeout_secs": 2.0,
    "retry_initial_secs": 0.05,
    "retry_max_secs": 0.3,
    "poll_interval_secs": 0.05,
    "breaker_failures": 3,
    "breaker_reset_secs": 0.3,
}


def wait_for(predicate: Callable[[], Any], *, timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (tests wait on outcomes, not on clocks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def make_client(tmp_path: Path, **integrations: Any) -> TestClient:
    from control_api.app import create_app

    return TestClient(
        create_app(api_settings(tmp_path, integrations={**FAST_DELIVERY, **integrations})),
        raise_server_exceptions=False,
    )


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path) as test_client:
        yield test_client


@pytest.fixture
def accounts(client: TestClient) -> Accounts:
    return sign_in_everyone(client)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(WEBHOOK_SECRET)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def freshdesk() -> Iterator[FreshdeskStandIn]:
    server = FreshdeskStandIn(FRESHDESK_KEY)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def orders() -> Iterator[OrdersApi]:
    """The operator's order-status API stand-in (the custom API tool's far end), started for one test."""
    server = OrdersApi()
    server.start()
    try:
        yield server
    finally:
        server.stop()
