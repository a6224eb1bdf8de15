"""Shared fixtures: settings on a temp data dir, the API app, real PostgreSQL and Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

import control_api.security
from config import Settings

# Passwords are hashed with argon2id as in production, at argon2's minimum cost (8 KiB, one pass) instead of the
# product's 64 MiB x 3 passes: most API tests sign four accounts up and in, and at the production cost that was a
# quarter of a second per hash or check on the CI machine, minutes over the suite. The cost is a parameter of the
# hash, not behaviour under test; hashes carry their parameters, so a server process at the production cost still
# verifies them (and, on login, upgrades them: ``needs_rehash``).
control_api.security._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
control_api.security._DUMMY_HASH = control_api.security._hasher.hash("voxdesk-timing-equaliser")

POSTGRES_URL = os.environ.get(
    "VOXDESK_TEST_POSTGRES_URL", "postgresql+psycopg://voxdesk:voxdesk@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("VOXDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings for a test: a private data dir, no .env file, test environment."""
    return Settings(_env_file=None, env="test", data_dir=tmp_path / "data", **overrides)  # type: ignore[call-arg, arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    from control_api.app import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@contextmanager
def fresh_postgres_database(prefix: str = "voxdesk_test") -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the real server, dropped afterwards; yields its SQLAlchemy URL.

    Fails, rather than skips, when the server is not up: ``./scripts/test`` starts it.
    """
    admin = make_url(POSTGRES_URL)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the real server (dropped afterwards)."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database on the real server, flushed before and after: 15, 14, ... one per pytest-xdist worker."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # unset without xdist
    url = REDIS_URL.rsplit("/", 1)[0] + f"/{15 - int(worker.removeprefix('gw') or 0) % 8}"
    r = redis.Redis.from_url(url)
    r.flushdb()
    try:
        yield url
    finally:
        r.flushdb()
        r.close()


@pytest.fixture
async def sqlite_engine(settings: Settings) -> AsyncIterator[object]:
    from control_api.db.engine import create_engine

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    yield engine
    await engine.dispose()
