"""Fixtures of the knowledge tests: the API with signed-in writer/reader tokens, demo documents, the model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config import Settings
from control_api.rbac import Role
from control_api.security import create_access_token
from control_api.services.users import create_user
from control_api.state import AppState
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo" / "knowledge"


def kb_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Test settings with a generous API rate limit."""
    extra: dict[str, Any] = {"rate_limits": {"api": "100000/minute", "login": "5/15minutes", "voice": "10/hour"}}
    extra.update(overrides)
    return make_settings(tmp_path, **extra)


@dataclass
class KB:
    """A running app with a token per role."""

    client: TestClient
    tokens: dict[str, str]

    def headers(self, role: str = "supervisor") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    @property
    def state(self) -> AppState:
        state: AppState = self.client.app.state.voxdesk  # type: ignore[attr-defined]
        return state

    def upload(self, *files: tuple[str, bytes], role: str = "supervisor") -> Any:
        return self.client.post(
            "/api/knowledge/upload",
            files=[("files", (name, data, "application/octet-stream")) for name, data in files],
            headers=self.headers(role),
        )

    def wait_settled(self, timeout_s: float = 120.0) -> list[dict[str, Any]]:
        """Poll until no document is pending or processing; return the documents."""
        deadline = time.monotonic() + timeout_s
        while True:
            docs = self.client.get("/api/knowledge/documents", params={"limit": 500}, headers=self.headers()).json()
            rows: list[dict[str, Any]] = docs["data"]
            if all(d["status"] in ("ready", "failed") for d in rows):
                return rows
            assert time.monotonic() < deadline, rows
            time.sleep(0.1)


def make_tokens(client: TestClient) -> dict[str, str]:
    state: AppState = client.app.state.voxdesk  # type: ignore[attr-defined]
    tokens: dict[str, str] = {}
    for role in Role:

        async def create(role: Role = role) -> str:
            async with state.sessions() as session:
                user = await create_user(
                    session, email=f"{role.value}@kb.example", password="correct-horse-battery", role=role
                )
                return user.id

        assert client.portal is not None
        user_id: str = client.portal.call(create)
        tokens[role.value] = create_access_token(
            subject=user_id, role=role.value, secret=state.settings.auth.secret_key.get_secret_value(), minutes=30
        )
    return tokens


def start(settings: Settings) -> Iterator[KB]:
    from control_api.app import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield KB(client=client, tokens=make_tokens(client))


def restart(settings: Settings, tokens: dict[str, str]) -> Iterator[KB]:
    """The app again on the same data (database, uploads, index), with the tokens of its first start."""
    from control_api.app import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield KB(client=client, tokens=tokens)


@pytest.fixture
def kb(tmp_path: Path) -> Iterator[KB]:
    yield from start(kb_settings(tmp_path))


def demo_files(*names: str) -> list[tuple[str, bytes]]:
    paths = [DEMO / n for n in names] if names else sorted(DEMO.iterdir())
    return [(p.name, p.read_bytes()) for p in paths]
