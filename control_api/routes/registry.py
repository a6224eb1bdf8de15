"""Every router of the control plane, in one list that ``create_app`` mounts.

Each resource adds its router here (one line), so no two features edit ``app.py``.
"""

from __future__ import annotations

from fastapi import APIRouter

from control_api.console import routes as console
from control_api.routes import (
    agents,
    analytics,
    audit,
    auth,
    calls,
    dashboard,
    handoffs,
    incidents,
    integrations,
    knowledge,
    learning,
    personas,
    privacy,
    rag,
    sops,
    users,
    voice_profiles,
)

ROUTERS: list[APIRouter] = [
    auth.router,
    users.router,
    audit.router,
    calls.router,
    dashboard.router,
    analytics.router,
    privacy.router,
    incidents.router,
    personas.router,
    voice_profiles.router,
    knowledge.router,
    rag.router,
    integrations.router,
    handoffs.router,  # issue 19: the handoff queue and the desk
    agents.router,  # issue 19: agents' presence
    learning.router,  # issue 20: post-call analysis, analysis fields, knowledge gaps
    sops.router,  # issue 20: the SOP generator
    console.settings_router,  # issue 21: what the console's Settings page shows of the configuration
]
ROUTERS.append(console.router)  # the web console (/console), outside the OpenAPI schema
