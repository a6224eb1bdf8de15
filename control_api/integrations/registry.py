"""The one lookup from an integration's stored ``kind`` to its connector."""

from __future__ import annotations

from control_api.integrations.base import Connector
from control_api.integrations.custom_api import CustomApiConnector
from control_api.integrations.email import EmailConnector
from control_api.integrations.errors import ConfigError
from control_api.integrations.freshdesk import FreshdeskConnector
from control_api.integrations.slack import SlackConnector
from control_api.integrations.webhook import WebhookConnector

CONNECTORS: dict[str, Connector] = {
    c.kind: c
    for c in (WebhookConnector(), FreshdeskConnector(), SlackConnector(), EmailConnector(), CustomApiConnector())
}
KINDS = tuple(CONNECTORS)


def connector(kind: str) -> Connector:
    """The connector of ``kind``.

    Raises:
        ConfigError: No connector of that kind.

    """
    try:
        return CONNECTORS[kind]
    except KeyError:
        raise ConfigError(f"Unknown integration type {kind!r}; known: {', '.join(KINDS)}.") from None


def custom_api() -> CustomApiConnector:
    """The custom API connector (it has calls the other kinds lack: render, call)."""
    handler = CONNECTORS["custom_api"]
    assert isinstance(handler, CustomApiConnector)
    return handler
