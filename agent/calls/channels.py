"""Where a call's live events go: the caller's client (data channel, WebSocket text frames) or nowhere."""

from __future__ import annotations

from typing import Any, Protocol


class ClientChannel(Protocol):
    """Where live call events go to the caller's client (data channel, WebSocket text frames)."""

    async def send(self, event: dict[str, Any]) -> None:
        """Send one JSON-able event; must not raise."""
        ...


class NullChannel:
    """A channel that drops every event (calls without a live client view)."""

    async def send(self, event: dict[str, Any]) -> None:
        """Drop ``event``."""
        del event
