"""A small key-value cache: in-memory by default, Redis when ``VOXDESK_REDIS__URL`` is set."""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio as aioredis


class Cache(Protocol):
    """What the rest of the code needs from a cache."""

    name: str

    async def get(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""

    async def set(self, key: str, value: str, *, ttl_seconds: float | None = None) -> None:
        """Store ``value`` under ``key``, optionally expiring."""

    async def delete(self, key: str) -> None:
        """Remove ``key``."""

    async def ping(self) -> None:
        """Raise when the cache cannot be reached."""

    async def close(self) -> None:
        """Release connections."""


class MemoryCache:
    """Process-local cache with per-key expiry (single-process deployments and tests)."""

    name = "memory"

    def __init__(self) -> None:
        self._data: dict[str, tuple[str, float | None]] = {}

    async def get(self, key: str) -> str | None:
        """The value stored under ``key``, or None when absent or expired."""
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires < time.monotonic():
            self._data.pop(key, None)
            return None
        return value

    async def set(self, key: str, value: str, *, ttl_seconds: float | None = None) -> None:
        """Store ``value`` under ``key``."""
        expires = time.monotonic() + ttl_seconds if ttl_seconds is not None else None
        self._data[key] = (value, expires)

    async def delete(self, key: str) -> None:
        """Remove ``key``."""
        self._data.pop(key, None)

    async def ping(self) -> None:
        """Always reachable."""

    async def close(self) -> None:
        """Nothing to release."""


class RedisCache:
    """Redis-backed cache shared by every API replica."""

    name = "redis"

    def __init__(self, url: str, *, prefix: str = "voxdesk:") -> None:
        self._redis = aioredis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2)
        self._prefix = prefix

    async def get(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        value = await self._redis.get(self._prefix + key)
        return None if value is None else str(value)

    async def set(self, key: str, value: str, *, ttl_seconds: float | None = None) -> None:
        """Store ``value`` under ``key``."""
        px = int(ttl_seconds * 1000) if ttl_seconds is not None else None
        await self._redis.set(self._prefix + key, value, px=px)

    async def delete(self, key: str) -> None:
        """Remove ``key``."""
        await self._redis.delete(self._prefix + key)

    async def ping(self) -> None:
        """Raise when Redis cannot be reached."""
        await self._redis.ping()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()  # type: ignore[attr-defined]  # redis 8 has aclose; stubs lag


def create_cache(redis_url: str | None) -> Cache:
    """Redis when a URL is configured, otherwise in-memory."""
    return RedisCache(redis_url) if redis_url else MemoryCache()
