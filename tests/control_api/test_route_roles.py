"""Every route of the whole server against every role, from the table in ``tests/route_roles.py``.

Fails when a route has no entry (add one: the format is documented at the top of that file), when an entry
names a route that no longer exists, or when a role gets in where it should not (or is kept out where it
should get in).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount, WebSocketRoute
from starlette.websockets import WebSocketDisconnect

from tests.control_api.conftest import Accounts, api_settings, email_of, sign_in_everyone
from tests.route_roles import ROLES, ROUTE_ROLES, Access

pytestmark = pytest.mark.integration
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def server_routes(app: FastAPI) -> set[tuple[str, str]]:
    """``(METHOD, path)`` of every route; ``("WS", path)`` for WebSockets and ``("MOUNT", path)`` for mounts."""
    found: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = context.path or getattr(route, "path", "")
        if isinstance(route, WebSocketRoute | APIWebSocketRoute):
            found.add(("WS", path))
        elif isinstance(route, Mount):
            found.add(("MOUNT", path))
        else:
            found.update((m, path) for m in (context.methods or set()) - IGNORED_METHODS)
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, TestClient, Accounts]]:
    from agent.server import build_app

    app = build_app(api_settings(tmp_path_factory.mktemp("roles")))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield app, client, sign_in_everyone(client)


def test_every_route_has_an_entry_and_every_entry_a_route(server: tuple[FastAPI, TestClient, Accounts]) -> None:
    app = server[0]
    routes = server_routes(app)
    missing = sorted(routes - ROUTE_ROLES.keys())
    stale = sorted(ROUTE_ROLES.keys() - routes)
    hint = "\n".join(f'    ("{m}", "{p}"): Access(...),' for m, p in missing)
    assert not missing, f"routes without an entry in tests/route_roles.py (see its docstring):\n{hint}"
    assert not stale, f"entries in tests/route_roles.py naming no route: {stale}"


def _url(path: str, access: Access) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        return access.params.get(name, str(uuid.uuid4()))

    return re.sub(r"\{([^}]+)\}", fill, path)


def _call(client: TestClient, method: str, path: str, access: Access, headers: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {"headers": headers, "params": access.query}
    if method in {"POST", "PUT", "PATCH"}:
        if access.form is not None:
            kwargs["data"] = access.form
        else:
            kwargs["json"] = access.body if access.body is not None else {}
    return client.request(method, _url(path, access), **kwargs)


PROBED = sorted(k for k, v in ROUTE_ROLES.items() if v.probe and k[0] != "WS")
PROBED_WS = sorted(k for k, v in ROUTE_ROLES.items() if v.probe and k[0] == "WS")
# WebSocket close codes mirroring 401 and 403 (agent/transports/websocket.py).
WS_UNAUTHENTICATED, WS_FORBIDDEN = 4401, 4403


@pytest.mark.parametrize(("method", "path"), PROBED, ids=[f"{m} {p}" for m, p in PROBED])
def test_route_against_every_role(server: tuple[FastAPI, TestClient, Accounts], method: str, path: str) -> None:
    _, client, accounts = server
    access = ROUTE_ROLES[(method, path)]
    client.cookies.clear()
    outcomes: dict[str, int] = {}
    for role in (None, *ROLES):
        if role is None:
            headers: dict[str, str] = {}
        elif access.fresh_session:
            tokens = accounts.login(email_of(role)).json()
            headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        else:
            headers = accounts.headers(role)
        response = _call(client, method, path, access, headers)
        name = role or "anonymous"
        outcomes[name] = response.status_code
        assert response.status_code < 500, f"{method} {path} as {name}: {response.status_code} {response.text[:300]}"
        allowed = access.public if role is None else role in access.roles
        if allowed:
            assert response.status_code not in (401, 403), f"{method} {path}: {name} kept out: {outcomes}"
            if access.status is not None:
                assert response.status_code == access.status, f"{method} {path} as {name}: {outcomes}"
        elif role is None:
            assert response.status_code == 401, f"{method} {path}: anonymous let in: {outcomes}"
        else:
            assert response.status_code == 403, f"{method} {path}: {name} let in: {outcomes}"


def test_the_table_uses_known_roles() -> None:
    for key, access in ROUTE_ROLES.items():
        assert access.roles <= set(ROLES), key
        assert access.probe or access.note, f"{key}: say why it is not probed"


def _ws_outcome(client: TestClient, path: str, headers: dict[str, str]) -> int:
    """The close code the server ends the socket with (after a hangup when it let the caller in)."""
    code = 1000
    try:
        # The test client cancels an endpoint still winding its call down when the session closes; that
        # cancellation (a CancelledError out of the session's exit) is the test client's, not the route's.
        with (
            contextlib.suppress(concurrent.futures.CancelledError),
            client.websocket_connect(path, headers=headers) as ws,
        ):
            message = ws.receive()
            if message["type"] != "websocket.close":
                ws.send_json({"type": "hangup"})
                while message["type"] != "websocket.close":
                    message = ws.receive()
            code = int(message.get("code", 1000))
    except WebSocketDisconnect as closed:
        code = closed.code
    return code


@pytest.mark.parametrize(("method", "path"), PROBED_WS, ids=[f"{m} {p}" for m, p in PROBED_WS])
def test_websocket_route_against_every_role(
    server: tuple[FastAPI, TestClient, Accounts], method: str, path: str
) -> None:
    _, client, accounts = server
    access = ROUTE_ROLES[(method, path)]
    outcomes: dict[str, int] = {}
    for role in (None, *ROLES):
        headers = {} if role is None else accounts.headers(role)
        name = role or "anonymous"
        outcomes[name] = code = _ws_outcome(client, _url(path, access), headers)
        allowed = access.public if role is None else role in access.roles
        if allowed:
            assert code not in (WS_UNAUTHENTICATED, WS_FORBIDDEN), f"WS {path}: {name} kept out: {outcomes}"
        elif role is None:
            assert code == WS_UNAUTHENTICATED, f"WS {path}: anonymous let in: {outcomes}"
        else:
            assert code == WS_FORBIDDEN, f"WS {path}: {name} let in: {outcomes}"
