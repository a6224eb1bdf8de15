"""Integration schemas: create, update, public read, runs and deliveries.

Secrets go in (``secrets``) and never come out: the public form lists only which secret names are set.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

IntegrationType = Literal["webhook", "freshdesk", "slack", "email", "custom_api"]
DeliveryStatus = Literal["pending", "in_flight", "delivered", "dead"]


class IntegrationCreate(BaseModel):
    """A new integration."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="Unique display name.")
    type: IntegrationType = Field(description="Kind of system.")
    config: dict[str, Any] = Field(default_factory=dict, description="Kind-specific settings (not secret).")
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict, description="Kind-specific secrets: encrypted at rest, never returned."
    )
    enabled: bool = Field(default=True, description="Deliver events to it.")


class IntegrationUpdate(BaseModel):
    """An edit. Omitted fields keep their value; each secret given replaces the stored one."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    config: dict[str, Any] | None = None
    secrets: dict[str, SecretStr] | None = None
    enabled: bool | None = None


class IntegrationPublic(BaseModel):
    """A stored integration, without its secrets."""

    id: str
    name: str
    type: str
    config: dict[str, Any]
    enabled: bool
    secrets_set: list[str] = Field(description="Names of the secrets that are set (never their values).")
    failing_since: datetime | None = Field(
        default=None, description="Start of the current outage (a dead delivery or an open breaker); null: healthy."
    )
    created_at: datetime
    updated_at: datetime


class IntegrationsPublic(BaseModel):
    """A list of integrations."""

    data: list[IntegrationPublic]
    count: int


class IntegrationTestResult(BaseModel):
    """The outcome of a test request."""

    ok: bool
    status: int | None = None
    latency_ms: float | None = None
    error: str | None = None


class TicketCreate(BaseModel):
    """A ticket to file in the enabled ticketing integrations (queued in the outbox, filed by the dispatcher)."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=255)
    description: str = Field(min_length=1, max_length=20_000)
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    email: str | None = Field(default=None, max_length=320, description="Requester's e-mail.")
    phone: str | None = Field(default=None, max_length=64, description="Requester's phone number.")
    name: str | None = Field(default=None, max_length=200, description="Requester's name.")
    call_id: str | None = Field(default=None, max_length=36, description="The call the ticket is about.")


class IntegrationRunPublic(BaseModel):
    """One attempt to deliver to an integration (secrets redacted)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    integration_id: str | None
    delivery_id: str | None
    call_id: str | None
    action: str
    status: str
    attempts: int
    request: dict[str, Any]
    response_status: int | None
    latency_ms: float | None
    external_id: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class IntegrationRunsPublic(BaseModel):
    """Runs, newest first."""

    data: list[IntegrationRunPublic]
    count: int


class DeliveryPublic(BaseModel):
    """One outbox delivery."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    integration_id: str
    event: str
    call_id: str | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    external_id: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveriesPublic(BaseModel):
    """Deliveries, newest first."""

    data: list[DeliveryPublic]
    count: int


class DryRunRequest(BaseModel):
    """A custom API request to render without sending it: the (possibly unsaved) config and tool arguments."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] | None = Field(
        default=None, description="The custom API config (``POST /api/integrations/dry-run``); omitted: the stored one."
    )
    arguments: dict[str, Any] = Field(default_factory=dict, description="The tool's arguments.")
    call_id: str | None = Field(default=None, max_length=36, description="A call whose caller and summary to use.")


class RenderedRequestPublic(BaseModel):
    """A rendered request (secrets masked as ``‹secret NAME›``)."""

    method: str
    url: str
    headers: dict[str, str]
    body: str | None


class DryRunResult(BaseModel):
    """The outcome of a dry run: the request that would be sent, or why none could be."""

    ok: bool
    request: RenderedRequestPublic | None = None
    error: str | None = None
    tool: dict[str, Any] | None = Field(default=None, description="The tool as agents see it.")
