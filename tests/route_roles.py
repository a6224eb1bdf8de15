"""The route × role matrix: who may call every route of the server.

``tests/control_api/test_route_roles.py`` walks ``app.routes`` of the full server (``agent.server.build_app``)
and FAILS when a route has no entry here, or an entry has no route. For every entry it then calls the
route as anonymous and as each role (admin, supervisor, agent, viewer) and checks:

- a role in ``roles`` is let through: the answer is neither 401 nor 403 (usually 200/201/204, or 404/422
  for the placeholder ids and the default body; set ``status`` to pin the exact code for allowed roles);
- a role not in ``roles`` gets 403;
- anonymous gets 401, unless ``public=True`` (then anonymous is let through like an allowed role).

HOW TO ADD AN ENTRY (one line per route, keyed by method and the path template exactly as FastAPI has it):

    ("GET", "/api/things"): Access(STAFF),                       # admin, supervisor, agent, viewer
    ("POST", "/api/things"): Access(MANAGERS),                   # admin + supervisor
    ("DELETE", "/api/things/{thing_id}"): Access(ADMIN),
    ("POST", "/api/public/hook"): Access(EVERYONE, public=True),
    ("WS", "/api/things/live"): Access(STAFF),                   # WebSocket: probed with each role's token

Path parameters are filled with a random UUID (override with ``params={"name": "value"}``). POST/PUT/PATCH send
``body`` as JSON (default ``{}``), or ``form`` as a form when given. WebSocket routes are probed too: each role
connects with its bearer token; anonymous must be closed with 4401, a role not let in with 4403, and an allowed
role must get past authentication (its first message, or a close code other than 4401/4403). ``probe=False`` only
checks that the entry exists (mounts, streams that need a live call): say why in ``note``. Object-level
rules (an agent sees only their own calls: BOLA) are not this table's job; they have their own tests.
Mounted sub-applications are listed as ``("MOUNT", "/path")``; WebSocket routes as ``("WS", "/path")``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES: tuple[str, ...] = ("admin", "supervisor", "agent", "viewer")
EVERYONE: frozenset[str] = frozenset(ROLES)
STAFF = EVERYONE
ADMIN: frozenset[str] = frozenset({"admin"})
MANAGERS: frozenset[str] = frozenset({"admin", "supervisor"})
# Calls: supervisors and admins see all, agents see the calls they took (object-level check in the service).
CALL_READERS: frozenset[str] = frozenset({"admin", "supervisor", "agent"})
ANALYTICS: frozenset[str] = frozenset({"admin", "supervisor", "viewer"})
KNOWLEDGE_READERS: frozenset[str] = frozenset({"admin", "supervisor", "agent"})  # viewers: dashboards only
HANDOFF_TAKERS: frozenset[str] = frozenset({"admin", "supervisor", "agent"})


@dataclass(frozen=True)
class Access:
    """Who may call one route, and how the matrix test calls it.

    Attributes:
        roles: Roles let through (never 401/403).
        public: Anonymous callers are let through too.
        status: Exact status expected for allowed roles with the default request (None: anything but 401/403).
        params: Path parameter values (default: a random UUID for each).
        body: JSON body for POST/PUT/PATCH (default ``{}``).
        form: Form fields sent instead of a JSON body.
        query: Query string parameters.
        probe: False: do not call the route (WebSocket, mount, live stream); ``note`` says why.
        fresh_session: Sign in anew before each call (the route ends the session, e.g. logout).
        note: Why the entry is special.

    """

    roles: frozenset[str]
    public: bool = False
    status: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    form: dict[str, str] | None = None
    query: dict[str, str] = field(default_factory=dict)
    probe: bool = True
    fresh_session: bool = False
    note: str = ""


ROUTE_ROLES: dict[tuple[str, str], Access] = {
    # --- foundation: health, metrics, docs ---
    ("GET", "/health/live"): Access(EVERYONE, public=True, status=200),
    ("GET", "/health/ready"): Access(EVERYONE, public=True, status=200),
    ("GET", "/metrics"): Access(EVERYONE, public=True, status=200),
    ("GET", "/api/docs"): Access(EVERYONE, public=True, status=200),
    ("GET", "/api/openapi.json"): Access(EVERYONE, public=True, status=200),
    ("MOUNT", "/api/docs-assets"): Access(EVERYONE, public=True, probe=False, note="static Swagger UI files"),
    # --- control plane: accounts and sessions ---
    ("POST", "/api/auth/signup"): Access(EVERYONE, public=True, status=422, note="empty body"),
    ("POST", "/api/auth/login"): Access(EVERYONE, public=True, status=422, note="empty form"),
    ("POST", "/api/auth/refresh"): Access(EVERYONE, public=True, status=422),
    ("POST", "/api/auth/logout"): Access(EVERYONE, status=204, fresh_session=True),
    ("GET", "/api/auth/me"): Access(EVERYONE, status=200),
    ("POST", "/api/auth/reset-password"): Access(EVERYONE, public=True, status=422),
    ("GET", "/api/users"): Access(ADMIN, status=200),
    ("POST", "/api/users"): Access(ADMIN, status=422),
    # Everyone may read and edit their own account (tests/control_api/test_auth.py); another's: admins only.
    ("GET", "/api/users/{user_id}"): Access(ADMIN, status=404),
    ("PATCH", "/api/users/{user_id}"): Access(ADMIN, status=404),
    ("POST", "/api/users/{user_id}/deactivate"): Access(ADMIN, status=404),
    ("GET", "/api/audit"): Access(ADMIN, status=200),
    # --- calls (agents: only the calls they took; BOLA tests in tests/control_api/test_calls.py) ---
    ("GET", "/api/calls"): Access(CALL_READERS, status=200),
    ("GET", "/api/calls/export.csv"): Access(MANAGERS, status=200),
    ("POST", "/api/calls"): Access(MANAGERS, status=422),
    ("GET", "/api/calls/{call_id}"): Access(CALL_READERS, status=404),
    ("PUT", "/api/calls/{call_id}"): Access(CALL_READERS, status=404),
    ("GET", "/api/calls/{call_id}/transcript"): Access(CALL_READERS, status=404),
    ("GET", "/api/calls/{call_id}/recording"): Access(CALL_READERS, status=404),
    # --- dashboards and analytics ---
    ("GET", "/api/dashboard/stats"): Access(ANALYTICS, status=200),
    ("GET", "/api/analytics/calls"): Access(ANALYTICS, status=200),
    ("GET", "/api/analytics/sentiment"): Access(ANALYTICS, status=200),
    ("GET", "/api/analytics/performance"): Access(ANALYTICS, status=200),
    ("GET", "/api/analytics/trends"): Access(ANALYTICS, status=200),
    ("GET", "/api/analytics/calls/{call_id}/outcome"): Access(CALL_READERS, status=404),
    # --- post-call analysis, knowledge gaps, SOPs (issue 20; tests/analysis) ---
    ("GET", "/api/calls/{call_id}/analysis"): Access(CALL_READERS, status=404),
    ("POST", "/api/calls/{call_id}/analysis"): Access(MANAGERS, status=404),
    ("GET", "/api/analysis/fields"): Access(MANAGERS, status=200),
    ("POST", "/api/analysis/fields"): Access(MANAGERS, status=422, note="empty body"),
    ("DELETE", "/api/analysis/fields/{field_id}"): Access(MANAGERS, status=404),
    ("GET", "/api/learning/gaps"): Access(MANAGERS, status=200),
    ("GET", "/api/learning/gaps/{gap_id}"): Access(MANAGERS, status=404),
    ("POST", "/api/learning/gaps/{gap_id}/approve"): Access(MANAGERS, status=422, note="empty body"),
    ("POST", "/api/learning/gaps/{gap_id}/dismiss"): Access(MANAGERS, status=404),
    ("GET", "/api/sops"): Access(MANAGERS, status=200),
    ("POST", "/api/sops"): Access(MANAGERS, status=422, note="neither gap_id nor topic"),
    ("GET", "/api/sops/{sop_id}"): Access(MANAGERS, status=404),
    ("PUT", "/api/sops/{sop_id}"): Access(MANAGERS, status=404),
    ("POST", "/api/sops/{sop_id}/approve"): Access(MANAGERS, status=404),
    # --- personal data and incidents ---
    ("GET", "/api/privacy/consents"): Access(ADMIN, status=200),
    ("POST", "/api/privacy/consents"): Access(ADMIN, status=422),
    ("GET", "/api/privacy/requests"): Access(ADMIN, status=200),
    ("POST", "/api/privacy/requests"): Access(ADMIN, status=422),
    ("GET", "/api/privacy/requests/{request_id}"): Access(ADMIN, status=404),
    ("POST", "/api/privacy/requests/{request_id}/execute"): Access(ADMIN, status=404),
    ("POST", "/api/privacy/requests/{request_id}/reject"): Access(ADMIN, status=422),
    ("GET", "/api/privacy/retention"): Access(ADMIN, status=200),
    ("POST", "/api/privacy/retention/purge"): Access(ADMIN, status=200),
    ("GET", "/api/incidents"): Access(ADMIN, status=200),
    ("POST", "/api/incidents"): Access(ADMIN, status=422),
    ("GET", "/api/incidents/{incident_id}"): Access(ADMIN, status=404),
    ("PATCH", "/api/incidents/{incident_id}"): Access(ADMIN, status=404),
    # --- handoffs and the desk (issue 19; object-level rules in tests/handoff/test_handoff_api.py) ---
    ("GET", "/api/handoffs"): Access(CALL_READERS, status=200),
    ("GET", "/api/handoffs/events"): Access(CALL_READERS, probe=False, note="an endless event stream"),
    ("GET", "/api/handoffs/callbacks"): Access(HANDOFF_TAKERS, status=200),
    ("GET", "/api/handoffs/callbacks/assignees"): Access(MANAGERS, status=200),
    ("POST", "/api/handoffs/callbacks/{callback_id}/claim"): Access(HANDOFF_TAKERS, status=404),
    ("POST", "/api/handoffs/callbacks/{callback_id}/complete"): Access(HANDOFF_TAKERS, status=422, note="empty body"),
    ("POST", "/api/handoffs/callbacks/{callback_id}/release"): Access(HANDOFF_TAKERS, status=404),
    ("POST", "/api/handoffs/callbacks/{callback_id}/reassign"): Access(MANAGERS, status=422, note="empty body"),
    ("GET", "/api/handoffs/policies/{persona_name}"): Access(MANAGERS, status=200, params={"persona_name": "default"}),
    ("PUT", "/api/handoffs/policies/{persona_name}"): Access(MANAGERS, status=200, params={"persona_name": "default"}),
    ("GET", "/api/handoffs/{handoff_id}"): Access(CALL_READERS, status=404),
    ("POST", "/api/handoffs/{handoff_id}/accept"): Access(CALL_READERS, status=404),
    ("POST", "/api/handoffs/{handoff_id}/decline"): Access(CALL_READERS, status=404),
    ("POST", "/api/handoffs/{handoff_id}/media"): Access(CALL_READERS, status=422, note="empty body"),
    ("POST", "/api/handoffs/{handoff_id}/complete"): Access(CALL_READERS, status=422, note="empty body"),
    ("PUT", "/api/agents/me/presence"): Access(CALL_READERS, status=422, note="empty body"),
    ("GET", "/api/agents/presence"): Access(MANAGERS, status=200),
    # --- web console (control_api/console): public page and files; its data comes from the API routes ---
    ("GET", "/"): Access(EVERYONE, public=True, note="redirects to /console"),
    ("GET", "/console"): Access(EVERYONE, public=True, status=200),
    ("GET", "/console/reset-password"): Access(EVERYONE, public=True, status=200),
    ("GET", "/console/static/{asset_path:path}"): Access(
        EVERYONE, public=True, status=200, params={"asset_path": "app.js"}
    ),
    ("GET", "/api/system/configuration"): Access(ANALYTICS, status=200),
    ("GET", "/console/vendor/{name}"): Access(EVERYONE, public=True, status=200, params={"name": "plotly.min.js"}),
    # --- knowledge base and RAG (tests/knowledge/test_api.py) ---
    ("POST", "/api/knowledge/upload"): Access(MANAGERS, status=422, note="no files: validation error"),
    ("POST", "/api/knowledge/import-url"): Access(MANAGERS, status=422, note="empty body"),
    ("POST", "/api/knowledge/process"): Access(MANAGERS, status=202, note="no ids: requeues failed documents"),
    ("GET", "/api/knowledge/status/{document_id}"): Access(KNOWLEDGE_READERS, status=404),
    ("GET", "/api/knowledge/documents"): Access(KNOWLEDGE_READERS, status=200),
    ("GET", "/api/knowledge/calibration"): Access(KNOWLEDGE_READERS, status=200),
    ("DELETE", "/api/knowledge/documents/{document_id}"): Access(MANAGERS, status=404),
    ("POST", "/api/rag/query"): Access(KNOWLEDGE_READERS, status=422, note="empty body"),
    ("GET", "/api/rag/context"): Access(KNOWLEDGE_READERS, status=422, note="no question"),
    ("GET", "/api/rag/unanswered"): Access(KNOWLEDGE_READERS, status=200),
    # --- integrations (tests/integrations/): admins configure, supervisors watch and retry dead deliveries ---
    ("GET", "/api/integrations"): Access(MANAGERS, status=200),
    ("POST", "/api/integrations"): Access(ADMIN, status=422, note="empty body"),
    ("PUT", "/api/integrations/{integration_id}"): Access(ADMIN, status=404),
    ("DELETE", "/api/integrations/{integration_id}"): Access(ADMIN, status=404),
    ("POST", "/api/integrations/{integration_id}/test"): Access(ADMIN, status=404),
    ("GET", "/api/integrations/{integration_id}/runs"): Access(MANAGERS, status=404),
    ("GET", "/api/integrations/deliveries"): Access(MANAGERS, status=200),
    ("POST", "/api/integrations/freshdesk/create-ticket"): Access(MANAGERS, status=422, note="empty body"),
    ("POST", "/api/integrations/deliveries/{delivery_id}/retry"): Access(MANAGERS, status=404),
    ("POST", "/api/integrations/dry-run"): Access(ADMIN, status=422, note="empty body"),
    ("POST", "/api/integrations/{integration_id}/dry-run"): Access(ADMIN, status=404),
    # --- voice side (agent/): personas, voice profiles, caller page, WebRTC signalling, WS stream ---
    ("GET", "/api/personas"): Access(STAFF, status=200),
    ("GET", "/api/personas/{name}"): Access(STAFF, params={"name": "default"}, status=200),
    ("GET", "/api/personas/{name}/versions"): Access(MANAGERS, params={"name": "default"}, status=200),
    ("POST", "/api/personas"): Access(MANAGERS, status=422, note="empty body: validation error"),
    ("PUT", "/api/personas/{name}"): Access(MANAGERS, params={"name": "default"}, status=200),
    ("GET", "/api/personas/preview-voice"): Access(MANAGERS, status=200),
    ("POST", "/api/personas/preview-voice"): Access(MANAGERS, status=422, note="empty body: validation error"),
    # Someone else's profile (here a caller's) needs calls:write; your own is always yours (tests/agent).
    ("GET", "/api/voice/profile/{user_id}"): Access(MANAGERS, status=200, params={"user_id": "+15550100"}),
    ("PUT", "/api/voice/profile/{user_id}"): Access(MANAGERS, status=200, params={"user_id": "+15550100"}),
    ("GET", "/call"): Access(EVERYONE, public=True, status=200),
    ("GET", "/call/{name}"): Access(EVERYONE, public=True, status=200, params={"name": "call.js"}),
    ("POST", "/api/voice/webrtc/offer"): Access(EVERYONE, public=True, status=422, note="callers have no account"),
    ("PATCH", "/api/voice/webrtc/offer"): Access(EVERYONE, public=True, status=422),
    ("POST", "/api/voice/transcribe"): Access(
        frozenset({"admin", "supervisor", "agent"}), status=422, note="no file: validation error"
    ),
    ("WS", "/api/voice/stream"): Access(frozenset({"admin", "supervisor", "agent"}), note="allowed: a call opens"),
    # Twilio (issue 17): signed by Twilio (X-Twilio-Signature), not by a role; tests/telephony checks 403 unsigned.
    ("POST", "/api/telephony/twilio/voice"): Access(EVERYONE, public=True, probe=False, note="Twilio signature"),
    ("WS", "/api/telephony/twilio/stream"): Access(EVERYONE, public=True, probe=False, note="Twilio signature"),
    # Telnyx (issue 17): webhooks signed by Telnyx (Ed25519), the stream by a token bound to the call; tests/telephony.
    ("POST", "/api/telephony/telnyx/webhook"): Access(EVERYONE, public=True, probe=False, note="Telnyx signature"),
    ("WS", "/api/telephony/telnyx/stream"): Access(EVERYONE, public=True, probe=False, note="call-bound token"),
    # LiveKit webhooks (issue 17): signed by LiveKit (JWT with the body's sha256); LiveKit is off in this matrix.
    ("POST", "/api/livekit/webhook"): Access(EVERYONE, public=True, status=404, note="LiveKit signature"),
    ("POST", "/api/livekit/token"): Access(
        frozenset({"admin", "supervisor", "agent"}), status=404, note="voice:call; LiveKit is off in this matrix"
    ),
}
