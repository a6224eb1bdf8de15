"""Integrations: list, create, edit, delete, test, runs, and retries of dead-lettered deliveries.

Admins manage integrations (they hold the secrets); supervisors see them, their runs and deliveries, and
retry dead-lettered ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from control_api.db.models import Integration, User
from control_api.deps import ActorDep, SessionDep, StateDep, require
from control_api.integrations.http import GuardedHttp
from control_api.integrations.secrets import SecretBox, box_from_settings
from control_api.problems import ProblemError
from control_api.rbac import Permission
from control_api.schemas.integrations import (
    DeliveriesPublic,
    DeliveryPublic,
    DryRunRequest,
    DryRunResult,
    IntegrationCreate,
    IntegrationPublic,
    IntegrationRunPublic,
    IntegrationRunsPublic,
    IntegrationsPublic,
    IntegrationTestResult,
    IntegrationUpdate,
    TicketCreate,
)
from control_api.services import audit
from control_api.services import integrations as service

router = APIRouter(prefix="/api/integrations", tags=["integrations"])
Manager = Annotated[User, Depends(require(Permission.INTEGRATIONS_MANAGE))]
Operator = Annotated[User, Depends(require(Permission.INTEGRATIONS_OPERATE))]


def secret_box(state: StateDep) -> SecretBox:
    """The secret box keyed from ``integrations.secret_key`` (and the previous keys)."""
    return box_from_settings(state.settings.integrations)


def public_url(state: StateDep) -> str:
    """Voxdesk's public base URL (``server.public_url``, else the bind address) for links to calls."""
    return service.console_base(state.settings)


async def toolkit(state: StateDep) -> AsyncIterator[service.Toolkit]:
    """The secret box and an SSRF-guarded HTTP client for one request."""
    section = state.settings.integrations
    http = GuardedHttp(allowed_private_hosts=section.allowed_private_hosts, timeout_secs=section.delivery_timeout_secs)
    try:
        yield service.Toolkit(box=secret_box(state), http=http, public_url=public_url(state))
    finally:
        await http.aclose()


ToolkitDep = Annotated[service.Toolkit, Depends(toolkit)]
BoxDep = Annotated[SecretBox, Depends(secret_box)]


def _public(integration: Integration, box: SecretBox) -> IntegrationPublic:
    return IntegrationPublic(
        id=integration.id,
        name=integration.name,
        type=integration.kind,
        config=dict(integration.config or {}),
        enabled=integration.enabled,
        secrets_set=service.secret_names(integration, box),
        failing_since=integration.failing_since,
        created_at=integration.created_at,
        updated_at=integration.updated_at,
    )


@router.get("", response_model=IntegrationsPublic)
async def list_integrations(session: SessionDep, box: BoxDep, user: Operator) -> IntegrationsPublic:
    """Every integration (secrets are never returned: only which are set)."""
    del user
    rows = await service.list_all(session)
    return IntegrationsPublic(data=[_public(i, box) for i in rows], count=len(rows))


@router.post("", response_model=IntegrationPublic, status_code=201)
async def create_integration(
    body: IntegrationCreate, session: SessionDep, tools: ToolkitDep, actor: ActorDep, user: Manager
) -> IntegrationPublic:
    """Create an integration; its destination must pass the SSRF rule."""
    integration = await service.create(
        session,
        tools,
        name=body.name,
        kind=body.type,
        config=body.config,
        secrets={k: v.get_secret_value() for k, v in body.secrets.items()},
        enabled=body.enabled,
        created_by=user.id,
    )
    await audit.record(
        session,
        actor,
        "integrations.create",
        target_type="integration",
        target_id=integration.id,
        detail={"name": integration.name, "type": integration.kind, "secrets": sorted(body.secrets)},
    )
    return _public(integration, tools.box)


@router.put("/{integration_id}", response_model=IntegrationPublic)
async def update_integration(
    integration_id: str,
    body: IntegrationUpdate,
    session: SessionDep,
    tools: ToolkitDep,
    actor: ActorDep,
    user: Manager,
) -> IntegrationPublic:
    """Edit an integration; each secret given replaces the stored one (secrets are never returned)."""
    del user
    integration, changed = await service.update(
        session,
        tools,
        integration_id,
        name=body.name,
        config=body.config,
        secrets={k: v.get_secret_value() for k, v in body.secrets.items()} if body.secrets else None,
        enabled=body.enabled,
    )
    if changed:
        await audit.record(
            session,
            actor,
            "integrations.update",
            target_type="integration",
            target_id=integration.id,
            detail={"fields": changed, "secrets": sorted(body.secrets or {})},
        )
    return _public(integration, tools.box)


@router.delete("/{integration_id}", status_code=204, response_class=Response)
async def delete_integration(integration_id: str, session: SessionDep, actor: ActorDep, user: Manager) -> Response:
    """Delete an integration and its undelivered deliveries (its runs are kept)."""
    del user
    integration = await service.delete(session, integration_id)
    await audit.record(
        session,
        actor,
        "integrations.delete",
        target_type="integration",
        target_id=integration_id,
        detail={"name": integration.name, "type": integration.kind},
    )
    return Response(status_code=204)


@router.post("/{integration_id}/test", response_model=IntegrationTestResult)
async def test_integration(
    integration_id: str, session: SessionDep, tools: ToolkitDep, actor: ActorDep, user: Manager
) -> IntegrationTestResult:
    """Send the kind's test request (a signed test event, a credentials check)."""
    del user
    result = await service.test(session, tools, integration_id)
    await audit.record(
        session,
        actor,
        "integrations.test",
        target_type="integration",
        target_id=integration_id,
        outcome="success" if result["ok"] else "failure",
        detail={"status": result["status"]},
    )
    return IntegrationTestResult(**result)


@router.post("/dry-run", response_model=DryRunResult)
async def dry_run_config(body: DryRunRequest, session: SessionDep, user: Manager) -> DryRunResult:
    """Render a custom API request from an unsaved config without sending it (the Studio's live preview).

    Secrets are shown as ``‹secret NAME›``; nothing is sent and nothing is stored.
    """
    del user
    if body.config is None:
        raise ProblemError(
            422, "config is required here (or use /api/integrations/{id}/dry-run).", type_="validation-error"
        )
    result = await service.dry_run(session, arguments=body.arguments, config=body.config, call_id=body.call_id)
    return DryRunResult.model_validate(result)


@router.post("/{integration_id}/dry-run", response_model=DryRunResult)
async def dry_run_stored(integration_id: str, body: DryRunRequest, session: SessionDep, user: Manager) -> DryRunResult:
    """Render a stored custom API's request for the given arguments without sending it (secrets masked)."""
    del user
    result = await service.dry_run(
        session, arguments=body.arguments, config=body.config, integration_id=integration_id, call_id=body.call_id
    )
    return DryRunResult.model_validate(result)


@router.post("/freshdesk/create-ticket", response_model=DeliveriesPublic, status_code=202)
async def create_ticket(body: TicketCreate, session: SessionDep, actor: ActorDep, user: Operator) -> DeliveriesPublic:
    """Queue a ticket for the enabled ticketing integrations; 202: it is filed (and retried) by the outbox."""
    del user
    queued = await service.queue_ticket(session, body.model_dump())
    await audit.record(
        session,
        actor,
        "integrations.ticket_queue",
        target_type="outbox_delivery",
        target_id=queued[0].id,
        detail={"deliveries": [d.id for d in queued], "call_id": body.call_id},
    )
    return DeliveriesPublic(data=[DeliveryPublic.model_validate(d) for d in queued], count=len(queued))


@router.get("/deliveries", response_model=DeliveriesPublic)
async def list_deliveries(
    session: SessionDep,
    user: Operator,
    status: Annotated[Literal["pending", "in_flight", "delivered", "dead"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveriesPublic:
    """Outbox deliveries, newest first (``status=dead``: the dead-letter queue)."""
    del user
    rows = await service.deliveries(session, status=status, limit=limit)
    return DeliveriesPublic(data=[DeliveryPublic.model_validate(d) for d in rows], count=len(rows))


@router.post("/deliveries/{delivery_id}/retry", response_model=DeliveryPublic)
async def retry_delivery(delivery_id: str, session: SessionDep, actor: ActorDep, user: Operator) -> DeliveryPublic:
    """Queue a dead-lettered delivery again with a fresh set of attempts."""
    del user
    delivery = await service.retry(session, delivery_id)
    await audit.record(
        session,
        actor,
        "integrations.delivery_retry",
        target_type="outbox_delivery",
        target_id=delivery.id,
        detail={"integration_id": delivery.integration_id, "event": delivery.event},
    )
    return DeliveryPublic.model_validate(delivery)


@router.get("/{integration_id}/runs", response_model=IntegrationRunsPublic)
async def list_runs(
    integration_id: str,
    session: SessionDep,
    user: Operator,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> IntegrationRunsPublic:
    """The newest attempts of an integration: request summary, status, latency, attempts, error."""
    del user
    rows = await service.runs(session, integration_id, limit=limit)
    return IntegrationRunsPublic(data=[IntegrationRunPublic.model_validate(r) for r in rows], count=len(rows))
