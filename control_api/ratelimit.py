"""Named rate limits over the `limits` library (moving window), in memory or in Redis.

One ``RateLimiter`` is built in the app's lifespan (``build_limiter``) and kept on ``AppState``.
Callers name a limit (``api``, ``login``, ``voice`` from ``settings.rate_limits``) and a key (a user
id, ``ip:<addr>``, ``account:<email>``); ``hit`` counts one request and raises 429 problem JSON with
``Retry-After`` when the window is full.

Example:
    >>> await hit(state.limiter, "voice", f"user:{user.id}")

"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from control_api.problems import ProblemError

KEY_PREFIX = "voxdesk-limits"


@dataclass
class RateLimiter:
    """A moving-window limiter with its storage and named limits.

    Attributes:
        strategy: The `limits` moving-window strategy over ``storage``.
        storage: Memory (one process) or Redis (shared by every replica).
        items: Parsed limits by name.
        backend: ``memory`` or ``redis`` (reported in logs and health).

    """

    strategy: MovingWindowRateLimiter
    storage: Storage
    items: dict[str, RateLimitItem] = field(default_factory=dict)
    backend: str = "memory"

    def item(self, name: str) -> RateLimitItem:
        """The limit called ``name``; ``KeyError`` when it is not configured."""
        return self.items[name]


def build_limiter(limits: Mapping[str, str], *, redis_url: str | None = None) -> RateLimiter:
    """Build a limiter for the named ``limits`` (``{"api": "100/minute", ...}``).

    Args:
        limits: Limit strings in the `limits` notation, by name.
        redis_url: ``redis://...`` to share counters between processes; None keeps them in memory.

    """
    storage: Storage
    if redis_url:
        uri = redis_url if redis_url.startswith("async+") else "async+" + redis_url
        storage = RedisStorage(uri, implementation="redispy", key_prefix=KEY_PREFIX)
        backend = "redis"
    else:
        storage = MemoryStorage()
        backend = "memory"
    return RateLimiter(
        strategy=MovingWindowRateLimiter(storage),
        storage=storage,
        items={name: parse(value) for name, value in limits.items()},
        backend=backend,
    )


async def retry_after(limiter: RateLimiter, name: str, key: str) -> int:
    """Seconds until one more request under ``name``/``key`` would be allowed (at least 1)."""
    stats = await limiter.strategy.get_window_stats(limiter.item(name), name, key)
    return max(1, math.ceil(stats.reset_time - time.time()))


async def check(limiter: RateLimiter, name: str, key: str) -> None:
    """Raise 429 when ``name``/``key`` is exhausted, without counting a request."""
    if not await limiter.strategy.test(limiter.item(name), name, key):
        await _refuse(limiter, name, key)


async def hit(limiter: RateLimiter, name: str, key: str) -> None:
    """Count one request under limit ``name`` for ``key``; raise 429 problem JSON when over the limit."""
    if not await limiter.strategy.hit(limiter.item(name), name, key):
        await _refuse(limiter, name, key)


async def clear(limiter: RateLimiter, name: str, key: str) -> None:
    """Forget the requests counted under ``name``/``key`` (e.g. after an admin unlocks an account)."""
    await limiter.strategy.clear(limiter.item(name), name, key)


async def _refuse(limiter: RateLimiter, name: str, key: str) -> None:
    wait = await retry_after(limiter, name, key)
    item = limiter.item(name)
    raise ProblemError(
        429,
        f"Too many requests: the {name} limit is {item.amount} per {item.get_expiry()} seconds. Retry in {wait} s.",
        type_="rate-limited",
        headers={"Retry-After": str(wait)},
        extra={"limit": name, "retry_after": wait},
    )


async def close(limiter: RateLimiter) -> None:
    """Release the storage's connections (Redis); a no-op in memory."""
    if isinstance(limiter.storage, RedisStorage):
        bridge = getattr(limiter.storage, "bridge", None)
        storage = getattr(bridge, "storage", None)
        aclose = getattr(storage, "aclose", None)
        if aclose is not None:
            await aclose()
