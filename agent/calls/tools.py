"""The database side of the agent's tools: ticket requests and handoffs of one call.

``create_ticket`` writes a ``ticket.create`` outbox delivery for every enabled ticketing integration
(Freshdesk), in one transaction; the dispatcher files it, retrying until the helpdesk takes it. With no
ticketing integration it records an ``integration_runs`` row (action ``create_ticket``, status ``pending``)
for a person to file. Either way the ticket is queued, not yet confirmed, when the tool returns.
``transfer_to_human`` opens a ``handoffs`` row and marks the call as handed off. The pipeline records the
tool calls and results as call events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.orm import Session

from agent.calls.session import CallSession
from agent.calls.sink import Sessions
from control_api.db.models import Handoff, IntegrationRun
from control_api.integrations import outbox
from control_api.integrations.http import GuardedHttp
from control_api.integrations.secrets import SecretBox
from control_api.services import calls as call_service
from control_api.services import integrations as integration_service
from pipelines.contracts import HandoffRequest, TicketRequest
from pipelines.tools import ToolSpec

log = structlog.get_logger(__name__)


class TicketRecorder:
    """``pipelines.contracts.TicketHandler``: stores the request as a pending ``create_ticket`` run.

    Args:
        sessions: Database session factory.

    """

    def __init__(self, *, sessions: Sessions) -> None:
        self._sessions = sessions

    async def __call__(self, request: TicketRequest) -> str:
        """Queue ``request``; returns a reference the agent reads out (``T-`` and 6 characters)."""
        async with self._sessions() as session:
            # The request with the call's summary and the caller's details (one builder: the integrations service).
            payload = await integration_service.ticket_payload(
                session,
                subject=request.subject,
                description=request.description,
                priority=request.priority,
                call_id=request.call_id,
            )
            deliveries = await outbox.emit(session, "ticket.create", payload, call_id=request.call_id)
            if deliveries:
                await session.commit()
                reference = "T-" + deliveries[0].id.replace("-", "")[:6].upper()
                log.info("ticket_queued", call_id=request.call_id, deliveries=len(deliveries))
                return reference
            run = IntegrationRun(
                call_id=request.call_id,
                action="create_ticket",
                status="pending",
                request={
                    "subject": request.subject,
                    "description": request.description,
                    "priority": request.priority,
                },
            )
            session.add(run)
            await session.commit()
            reference = "T-" + run.id.replace("-", "")[:6].upper()
        log.info("ticket_requested", call_id=request.call_id, integration_run_id=run.id)
        return reference


class HandoffOpener:
    """``pipelines.contracts.HandoffHandler``: opens a ``handoffs`` row (status ``requested``).

    Args:
        sessions: Database session factory.
        call: The call being handed off (its outcome becomes ``handed_off``).

    """

    def __init__(self, *, sessions: Sessions, call: CallSession) -> None:
        self._sessions = sessions
        self._call = call

    async def __call__(self, request: HandoffRequest) -> str:
        """Hand the call over live when it has a handoff desk (docs/handoff.md); otherwise only open the row.

        Returns the handoff's id; raises when the persona's policy turns the tool off (the brain apologises).
        """
        live = self._call.handoff
        if live is not None:
            handoff_id = await live.request(request.reason, source="tool", speak=False)
            if handoff_id is None:
                raise RuntimeError("handoffs are off for this call")
            if live.returned():  # nobody available: the callback is recorded, the brain apologises
                raise RuntimeError("nobody is available to take the call")
            return handoff_id
        async with self._sessions() as session:
            handoff = Handoff(
                call_id=request.call_id, status="requested", reason=request.reason, summary=request.summary
            )
            session.add(handoff)
            await session.commit()
            handoff_id = handoff.id
            await call_service.add_event(
                session, request.call_id, kind="handoff", data={"handoff_id": handoff_id, "status": "requested"}
            )
        self._call.outcome_hint = "handed_off"
        log.info("handoff_requested", call_id=request.call_id, handoff_id=handoff_id)
        return handoff_id


class CustomApiCaller:
    """``pipelines.tools.CustomToolHandler``: the operator's custom API tools (Integration Studio) for calls.

    Keeps the enabled tools' specs (refreshed in the background when older than ``refresh_secs``, so building a
    call's pipeline never waits on the database, and at once when a custom API integration is changed through
    this process's API) and runs a tool through ``services.integrations.invoke_tool``: the SSRF-guarded client
    with the tool's own short timeout, a run recorded per call.

    Args:
        box: Decrypts the integrations' secrets.
        allowed_private_hosts: Hosts exempt from the SSRF rule (``integrations.allowed_private_hosts``).
        refresh_secs: How old the cached tool list may get.

    """

    def __init__(self, *, box: SecretBox, allowed_private_hosts: Collection[str], refresh_secs: float = 30.0) -> None:
        self._box = box
        self._http = GuardedHttp(allowed_private_hosts=allowed_private_hosts)
        self._refresh_secs = refresh_secs
        self._sessions: Sessions | None = None
        self._specs: tuple[ToolSpec, ...] = ()
        self._loaded_at = 0.0
        self._refreshing: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty = False

    def _after_commit(self, session: Session) -> None:
        # Runs inside SQLAlchemy's commit (possibly in a worker thread): only schedules the reload.
        if session.info.pop(integration_service.TOOLS_CHANGED, False) and self._loop is not None:
            self._loop.call_soon_threadsafe(self._reload_now)

    def _reload_now(self) -> None:
        self._dirty = True  # a reload already under way may have read before this commit: it runs once more
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh_quietly())

    async def refresh(self, sessions: Sessions | None = None) -> tuple[ToolSpec, ...]:
        """Load the enabled tools now (``sessions`` binds the database on the first call)."""
        self._sessions = sessions or self._sessions
        if self._sessions is None:
            return self._specs
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            event.listen(Session, "after_commit", self._after_commit)
        async with self._sessions() as session:
            tools = await integration_service.custom_tools(session)
        self._specs = tuple(
            ToolSpec(
                name=str(t["name"]),
                description=str(t["description"]),
                examples=tuple(t.get("examples") or ()),
                parameters=dict((t.get("parameters") or {}).get("properties") or {}),
                required=tuple((t.get("parameters") or {}).get("required") or ()),
            )
            for t in tools
        )
        self._loaded_at = time.monotonic()
        return self._specs

    async def _refresh_quietly(self) -> None:
        while True:
            self._dirty = False
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - the previous list stays in use
                log.warning("custom_tools_refresh_failed", error_type=type(exc).__name__)
                return
            if not self._dirty:
                return

    def snapshot(self) -> tuple[ToolSpec, ...]:
        """The enabled tools as last loaded; starts a background refresh when the list is stale."""
        stale = time.monotonic() - self._loaded_at > self._refresh_secs
        if stale and self._sessions is not None and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh_quietly())
        return self._specs

    async def __call__(self, call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Run the tool ``name`` for ``call_id``; returns ``ok``, ``status``, ``values``, ``say``, ``error``."""
        if self._sessions is None:
            return {"ok": False, "status": None, "values": {}, "say": None, "error": "Custom tools are not loaded."}
        toolkit = integration_service.Toolkit(box=self._box, http=self._http)
        async with self._sessions() as session:
            result = await integration_service.invoke_tool(
                session, toolkit, name=name, arguments=arguments, call_id=call_id
            )
        log.info("custom_tool_called", call_id=call_id, tool=name, ok=result.ok, status=result.status)
        return result.public()

    async def aclose(self) -> None:
        """Stop a refresh in progress, stop listening for changes and close the HTTP client."""
        if event.contains(Session, "after_commit", self._after_commit):
            event.remove(Session, "after_commit", self._after_commit)
        if self._refreshing is not None:
            self._refreshing.cancel()
        await self._http.aclose()
