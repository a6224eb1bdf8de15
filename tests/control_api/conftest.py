"""Fixtures of the control-plane tests: a real SMTP server, the API with signed-in users of every role."""

from __future__ import annotations

import email
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from config import Settings
from tests.conftest import make_settings

PASSWORD = "correct horse battery"
ROLES = ("admin", "supervisor", "agent", "viewer")


class _Inbox:
    """aiosmtpd handler keeping every delivered message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m["To"] == address]

    def token(self, address: str) -> str:
        """The token in the newest message to ``address``."""
        body = str(self.to(address)[-1].get_payload(decode=True), "utf-8")
        found = re.search(r"token: (\S+)", body)
        assert found, body
        return found.group(1)


@dataclass
class SMTPServer:
    host: str
    port: int
    inbox: _Inbox


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    inbox = _Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SMTPServer("127.0.0.1", port, inbox)
    finally:
        controller.stop()


def api_settings(tmp_path: Path, smtp: SMTPServer | None = None, **overrides: Any) -> Settings:
    """Test settings with a generous API limit (the login limit stays at its default)."""
    extra: dict[str, Any] = {"rate_limits": {"api": "100000/minute", "login": "5/15minutes", "voice": "10/hour"}}
    if smtp is not None:
        extra["smtp"] = {"host": smtp.host, "port": smtp.port, "sender": "desk@voxdesk.example"}
    extra.update(overrides)
    return make_settings(tmp_path, **extra)


@dataclass
class Accounts:
    """One signed-in user per role, plus helpers."""

    client: TestClient
    ids: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]['access_token']}"}

    def login(self, email_address: str, password: str = PASSWORD, **form: str) -> Any:
        return self.client.post("/api/auth/login", data={"username": email_address, "password": password, **form})


def email_of(role: str) -> str:
    return f"{role}@voxdesk.example"


def sign_in_everyone(client: TestClient) -> Accounts:
    """The first sign-up is the admin; the admin creates one account of every other role; all sign in."""
    accounts = Accounts(client)
    r = client.post("/api/auth/signup", json={"email": email_of("admin"), "password": PASSWORD, "full_name": "Ada"})
    assert r.status_code == 201, r.text
    accounts.ids["admin"] = r.json()["id"]
    accounts.tokens["admin"] = accounts.login(email_of("admin")).json()
    for role in ROLES[1:]:
        r = client.post(
            "/api/users",
            json={"email": email_of(role), "role": role, "password": PASSWORD},
            headers=accounts.headers("admin"),
        )
        assert r.status_code == 201, r.text
        accounts.ids[role] = r.json()["id"]
        login = accounts.login(email_of(role))
        assert login.status_code == 200, login.text
        accounts.tokens[role] = login.json()
    return accounts


@pytest.fixture
def api(tmp_path: Path, smtp_server: SMTPServer) -> Iterator[TestClient]:
    from control_api.app import create_app

    with TestClient(create_app(api_settings(tmp_path, smtp_server)), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def accounts(api: TestClient) -> Accounts:
    return sign_in_everyone(api)
