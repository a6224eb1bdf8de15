"""Model checks for ``voxdesk doctor`` (extended as stages are added)."""

from __future__ import annotations

from collections.abc import Callable

from config import Settings


async def check_models(settings: Settings, echo: Callable[[str], None]) -> bool:
    """Load each configured offline model once and report it; returns False on failure."""
    return True
