"""The contract of one kind of integration (one file per kind beside this one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from control_api.integrations.http import GuardedHttp


@dataclass(frozen=True, slots=True)
class Job:
    """One delivery as a connector sees it.

    Attributes:
        delivery_id: The outbox row (stable across retries: webhook ids, ticket tags).
        event: What happened (``call.started``, ``call.ended``, ``ticket.create``, ``integration.test``).
        payload: The event's data.
        config: The integration's config (validated by the connector's ``check``).
        secrets: The integration's decrypted secrets.
        prior_attempts: Attempts made before this one.
        ambiguous_before: An earlier attempt may have reached the system.
        created_at: When the event happened.

    """

    delivery_id: str
    event: str
    payload: dict[str, Any]
    config: dict[str, Any]
    secrets: dict[str, str]
    prior_attempts: int
    ambiguous_before: bool
    created_at: datetime


@dataclass(slots=True)
class Receipt:
    """What a successful delivery produced.

    Attributes:
        status: The HTTP status of the answer that settled it.
        latency_ms: Time spent in requests for this attempt.
        external_id: The system's id of what was created (a ticket id), if any.
        summary: A request summary for the run record: never secrets, never caller data.

    """

    status: int
    latency_ms: float
    external_id: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)


class Connector(Protocol):
    """One kind of integration."""

    kind: str
    # The secret names this kind needs; values are encrypted at rest and never returned.
    secret_fields: tuple[str, ...]

    def check(self, config: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
        """The normalised config; raises ``ConfigError`` when config or secrets are not valid."""
        ...

    def destination(self, config: dict[str, Any]) -> str:
        """The base URL requests go to (checked against the SSRF rule when saved)."""
        ...

    def subscribes(self, config: dict[str, Any], event: str) -> bool:
        """Whether an integration of this kind with ``config`` wants ``event``."""
        ...

    async def deliver(self, http: GuardedHttp, job: Job) -> Receipt:
        """Deliver ``job``; raises ``IntegrationError`` on failure."""
        ...

    async def test(self, http: GuardedHttp, config: dict[str, Any], secrets: dict[str, str]) -> Receipt:
        """Check the connection and credentials without creating anything lasting."""
        ...
