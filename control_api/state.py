"""Process-wide state of the control plane, built once in the app's lifespan."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from config import Settings
from control_api.cache import Cache

# A readiness check raises (any exception) when its component is not ready; its name is reported.
ReadinessCheck = Callable[[], Awaitable[None]]


@dataclass
class AppState:
    """Engine, session factory, cache and readiness checks shared by every request."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    cache: Cache
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
