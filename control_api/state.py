"""Process-wide state of the control plane, built once in the app's lifespan."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from config import Settings
from config.settings import RateLimitSettings
from control_api.cache import Cache
from control_api.ratelimit import RateLimiter, build_limiter

if TYPE_CHECKING:
    from control_api.services.knowledge import KnowledgeService


def _default_limiter() -> RateLimiter:
    # The settings' own defaults: every named limit a route may ask for exists even before the lifespan runs.
    return build_limiter(RateLimitSettings().model_dump())


# A readiness check raises (any exception) when its component is not ready; its name is reported.
ReadinessCheck = Callable[[], Awaitable[None]]


@dataclass
class AppState:
    """Engine, session factory, cache, rate limiter and readiness checks shared by every request."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    cache: Cache
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    # Built in the lifespan from ``settings.rate_limits`` (Redis when ``settings.redis.url`` is set).
    limiter: RateLimiter = field(default_factory=_default_limiter)
    # The knowledge base (embedder, store, retriever, ingestion worker); None until started or if it failed.
    knowledge: KnowledgeService | None = None
