"""Helpers for voice-side tests: accounts and tokens on a running TestClient app."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from control_api.rbac import Role
from control_api.security import create_access_token
from control_api.services.users import create_user
from control_api.state import AppState


def make_token(client: TestClient, role: Role, email: str | None = None) -> tuple[str, str]:
    """Create an account with ``role`` in the app's database; return (user id, bearer token)."""
    state: AppState = client.app.state.voxdesk  # type: ignore[attr-defined]

    async def create() -> str:
        async with state.sessions() as session:
            user = await create_user(
                session, email=email or f"{role.value}@example.com", password="correct-horse-battery", role=role
            )
            return user.id

    portal = client.portal
    assert portal is not None
    user_id: str = portal.call(create)
    token = create_access_token(
        subject=user_id,
        role=role.value,
        secret=state.settings.auth.secret_key.get_secret_value(),
        minutes=5,
    )
    return user_id, token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


TokenFactory = Callable[[Role], tuple[str, str]]
