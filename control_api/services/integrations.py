"""Integrations: create, edit, delete, test, runs and dead-letter retries (no HTTP types here).

Secrets are sealed with ``SecretBox`` before they reach the session and are never returned; an edit
replaces the secrets it names and keeps the others. A destination is checked against the SSRF rule
when it is saved (and again by the dispatcher at every send).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from config import Settings
from control_api.db.models import Call, CallTurn, Integration, IntegrationRun, OutboxDelivery, utcnow
from control_api.integrations import outbox
from control_api.integrations.custom_api import ToolResult
from control_api.integrations.errors import ConfigError, DestinationRefusedError, IntegrationError
from control_api.integrations.http import GuardedHttp
from control_api.integrations.notify import with_console_url
from control_api.integrations.registry import connector, custom_api
from control_api.integrations.secrets import SecretBox
from control_api.problems import ProblemError
from control_api.services.analytics import request_turns
from control_api.services.summary import summarize

# Set in ``Session.info`` by a change to a custom API integration: its commit tells listeners in this process
# (the voice server's tool list, ``agent.calls.tools.CustomApiCaller``) to reload the tools now.
TOOLS_CHANGED = "voxdesk.custom_tools_changed"


def _note_tools_change(session: AsyncSession, kind: str) -> None:
    if kind == custom_api().kind:
        session.sync_session.info[TOOLS_CHANGED] = True


@dataclass(frozen=True, slots=True)
class Toolkit:
    """What the service needs besides the session: the secret box and an SSRF-guarded HTTP client."""

    box: SecretBox
    http: GuardedHttp
    # Voxdesk's public base URL (links to calls in tickets and notifications; read per request, never stored).
    public_url: str | None = None


def console_base(settings: Settings) -> str:
    """Voxdesk's public base URL for links to calls: ``server.public_url``, else the bind address.

    Read from the settings in force at each use (the dispatcher asks at every delivery), never stored with an
    integration, so a changed public URL reaches the next ticket or notification.
    """
    server = settings.server
    return (server.public_url or f"http://{server.host}:{server.port}").rstrip("/")


def _problem(exc: IntegrationError) -> ProblemError:
    if isinstance(exc, DestinationRefusedError):
        return ProblemError(422, exc.message, type_="destination-refused")
    return ProblemError(422, exc.message, type_="invalid-integration")


def secret_names(integration: Integration, box: SecretBox) -> list[str]:
    """Names of the secrets set on ``integration`` (an undecryptable box reports none)."""
    try:
        return sorted(box.open(integration.secret))
    except ConfigError:
        return []


async def _validated(tools: Toolkit, kind: str, config: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
    try:
        handler = connector(kind)
        normalised = handler.check(config, secrets)
        await tools.http.check_destination(handler.destination(normalised))
    except IntegrationError as exc:
        raise _problem(exc) from None
    return normalised


async def list_all(session: AsyncSession) -> list[Integration]:
    """Every integration, by name."""
    return list((await session.execute(select(Integration).order_by(Integration.name))).scalars())


async def get(session: AsyncSession, integration_id: str) -> Integration:
    """The integration; 404 problem when absent."""
    integration = await session.get(Integration, integration_id)
    if integration is None:
        raise ProblemError(404, "No integration with this id.", type_="not-found")
    return integration


async def _flush_unique(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise ProblemError(409, "An integration with this name exists.", type_="conflict") from None


async def create(
    session: AsyncSession,
    tools: Toolkit,
    *,
    name: str,
    kind: str,
    config: dict[str, Any],
    secrets: dict[str, str],
    enabled: bool,
    created_by: str | None,
) -> Integration:
    """Validate and store a new integration (flushed, not committed: the caller audits and commits)."""
    normalised = await _validated(tools, kind, config, secrets)
    integration = Integration(
        kind=kind,
        name=name,
        enabled=enabled,
        config=normalised,
        secret=tools.box.seal(secrets),
        created_by=created_by,
    )
    session.add(integration)
    await _flush_unique(session)
    _note_tools_change(session, kind)
    return integration


async def update(
    session: AsyncSession,
    tools: Toolkit,
    integration_id: str,
    *,
    name: str | None = None,
    config: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    enabled: bool | None = None,
) -> tuple[Integration, list[str]]:
    """Apply an edit; returns the integration and the names of the changed fields (not committed)."""
    integration = await get(session, integration_id)
    changed: list[str] = []
    stored = dict(tools.box.open(integration.secret)) if secrets else None
    if config is not None or secrets:
        merged = {**(stored or tools.box.open(integration.secret)), **(secrets or {})}
        normalised = await _validated(tools, integration.kind, config or dict(integration.config), merged)
        if config is not None:
            integration.config = normalised
            changed.append("config")
        if secrets:
            integration.secret = tools.box.seal(merged)
            changed.append("secrets")
    if name is not None and name != integration.name:
        integration.name = name
        changed.append("name")
    if enabled is not None and enabled != integration.enabled:
        integration.enabled = enabled
        changed.append("enabled")
    if changed:
        integration.updated_at = utcnow()
        await _flush_unique(session)
        _note_tools_change(session, integration.kind)
    return integration, changed


async def delete(session: AsyncSession, integration_id: str) -> Integration:
    """Delete an integration with its pending deliveries; its runs are kept (not committed)."""
    integration = await get(session, integration_id)
    await session.delete(integration)
    await session.flush()
    _note_tools_change(session, integration.kind)
    return integration


async def test(session: AsyncSession, tools: Toolkit, integration_id: str) -> dict[str, Any]:
    """Send the kind's test request; returns ``ok``, ``status``, ``latency_ms`` and ``error``."""
    integration = await get(session, integration_id)
    try:
        config = with_console_url(integration.kind, dict(integration.config), tools.public_url)
        receipt = await connector(integration.kind).test(tools.http, config, tools.box.open(integration.secret))
    except IntegrationError as exc:
        return {"ok": False, "status": exc.status, "latency_ms": None, "error": exc.message}
    return {"ok": True, "status": receipt.status, "latency_ms": round(receipt.latency_ms, 2), "error": None}


async def runs(session: AsyncSession, integration_id: str, *, limit: int = 50) -> Sequence[IntegrationRun]:
    """The newest runs of an integration (404 when the integration does not exist)."""
    await get(session, integration_id)
    stmt = (
        select(IntegrationRun)
        .where(IntegrationRun.integration_id == integration_id)
        .order_by(IntegrationRun.created_at.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def deliveries(session: AsyncSession, *, status: str | None = None, limit: int = 50) -> list[OutboxDelivery]:
    """The newest outbox deliveries, optionally of one status."""
    stmt = select(OutboxDelivery).order_by(OutboxDelivery.created_at.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(OutboxDelivery.status == status)
    return list((await session.execute(stmt)).scalars())


async def ticket_payload(
    session: AsyncSession,
    *,
    subject: str,
    description: str,
    priority: str = "normal",
    call_id: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """The ``ticket.create`` payload: the request, the call's summary so far and the caller's details.

    The summary is the one extractive summary (``services.summary.summarize``) of the turns stored when the
    ticket is asked for; the caller's details come from the call unless given. The helpdesk connector writes
    them, with a link to the call in the console, into the ticket's description.
    """
    payload: dict[str, Any] = {
        "subject": subject,
        "description": description,
        "priority": priority,
        "call_id": call_id,
        "email": email,
        "phone": phone,
        "name": name,
    }
    if call_id is None:
        return payload
    call = await session.get(Call, call_id)
    if call is None:
        return payload
    payload["email"] = email or call.caller_email
    payload["phone"] = phone or call.caller_number
    payload["name"] = name or call.caller_name
    turns = (
        await session.execute(select(CallTurn).where(CallTurn.call_id == call_id).order_by(CallTurn.seq))
    ).scalars()
    requests = (await request_turns(session, [call_id])).get(call_id, set())
    payload["summary"] = summarize(list(turns), requests=requests).text
    return payload


async def queue_ticket(session: AsyncSession, request: dict[str, Any]) -> list[OutboxDelivery]:
    """Queue a ticket for every enabled ticketing integration (not committed); 409 when there is none."""
    call_id = request.get("call_id")
    if call_id is not None and await session.get(Call, call_id) is None:
        raise ProblemError(404, "No call with this id.", type_="not-found")
    payload = await ticket_payload(session, **request)
    queued = await outbox.emit(session, "ticket.create", payload, call_id=call_id)
    if not queued:
        raise ProblemError(409, "No ticketing integration is enabled.", type_="no-integration")
    return queued


async def retry(session: AsyncSession, delivery_id: str) -> OutboxDelivery:
    """Put a dead-lettered delivery back in the queue with a fresh set of attempts (not committed)."""
    delivery = await session.get(OutboxDelivery, delivery_id)
    if delivery is None:
        raise ProblemError(404, "No delivery with this id.", type_="not-found")
    if delivery.status != "dead":
        raise ProblemError(409, f"Only dead deliveries are retried; this one is {delivery.status}.", type_="conflict")
    delivery.status, delivery.attempts, delivery.next_attempt_at = "pending", 0, utcnow()
    delivery.locked_until = None
    await session.flush()
    return delivery


async def _call_context(session: AsyncSession, call_id: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A custom API's ``caller`` and ``call`` template variables."""
    if call_id is None:
        return {}, {}
    call = await session.get(Call, call_id)
    if call is None:
        raise ProblemError(404, "No call with this id.", type_="not-found")
    turns = (
        await session.execute(select(CallTurn).where(CallTurn.call_id == call_id).order_by(CallTurn.seq))
    ).scalars()
    caller = {"name": call.caller_name, "phone": call.caller_number, "email": call.caller_email}
    requests = (await request_turns(session, [call_id])).get(call_id, set())
    return caller, {"id": call.id, "summary": summarize(list(turns), requests=requests).text}


async def dry_run(
    session: AsyncSession,
    *,
    arguments: dict[str, Any],
    config: dict[str, Any] | None = None,
    integration_id: str | None = None,
    call_id: str | None = None,
) -> dict[str, Any]:
    """Render a custom API request without sending it (secrets masked); returns ``ok``/``request``/``error``/``tool``.

    ``config`` is an unsaved config (the Studio's live preview); ``integration_id`` uses the stored one.
    """
    handler = custom_api()
    if config is None:
        if integration_id is None:
            raise ProblemError(422, "Give config or an integration id.", type_="invalid-integration")
        integration = await get(session, integration_id)
        if integration.kind != handler.kind:
            raise ProblemError(409, "Only custom API integrations have a dry run.", type_="conflict")
        config = dict(integration.config)
    caller, call = await _call_context(session, call_id)
    try:
        normalised = handler.check(config, {})
        request = handler.render(normalised, None, arguments=arguments, caller=caller, call=call)
    except IntegrationError as exc:
        return {"ok": False, "request": None, "error": exc.message, "tool": None}
    return {"ok": True, "request": request.public(), "error": None, "tool": normalised["tool"]}


async def custom_tools(session: AsyncSession) -> list[dict[str, Any]]:
    """The enabled custom API tools as agents see them: ``name``, ``description``, ``parameters``, ``examples``."""
    rows = (
        await session.execute(
            select(Integration).where(Integration.kind == custom_api().kind, Integration.enabled.is_(True))
        )
    ).scalars()
    return [dict(row.config["tool"]) for row in rows if isinstance((row.config or {}).get("tool"), dict)]


async def invoke_tool(
    session: AsyncSession, tools: Toolkit, *, name: str, arguments: dict[str, Any], call_id: str | None
) -> ToolResult:
    """Call the enabled custom API tool ``name`` for a call and record the attempt as a run (committed).

    The request goes through the SSRF-guarded client with the tool's own short timeout; the result carries the
    mapped values and the sentence to speak. Unknown or disabled tools come back as ``ok=False``.
    """
    handler = custom_api()
    rows = (
        await session.execute(
            select(Integration).where(Integration.kind == handler.kind, Integration.enabled.is_(True))
        )
    ).scalars()
    integration = next((r for r in rows if (r.config or {}).get("tool", {}).get("name") == name), None)
    if integration is None:
        return ToolResult(ok=False, status=None, error=f"No enabled custom API tool named {name!r}.")
    caller, call = await _call_context(session, call_id)
    config = dict(integration.config)
    try:
        secrets = tools.box.open(integration.secret)
    except ConfigError as exc:
        return ToolResult(ok=False, status=None, error=exc.message)
    http = GuardedHttp(
        allowed_private_hosts=tools.http.allowed_private_hosts, timeout_secs=float(config.get("timeout_secs", 4.0))
    )
    try:
        result = await handler.call(http, config, secrets, arguments=arguments, caller=caller, call=call)
    finally:
        await http.aclose()
    session.add(
        IntegrationRun(
            integration_id=integration.id,
            call_id=call_id,
            action=f"tool:{name}"[:40],
            status="succeeded" if result.ok else "failed",
            attempts=1,
            request={"method": config.get("method"), "url": handler.destination(config), "tool": name},
            response={"status": result.status, "values": sorted(result.values)},
            response_status=result.status,
            latency_ms=result.latency_ms,
            error=result.error,
            finished_at=utcnow(),
        )
    )
    await session.commit()
    return result
