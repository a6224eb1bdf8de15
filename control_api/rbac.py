"""Roles and permissions: the one rule shared by the API, the console and the agent's tools."""

from __future__ import annotations

from enum import StrEnum

from control_api.problems import ProblemError


class Role(StrEnum):
    """Account roles, most to least privileged."""

    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    AGENT = "agent"
    VIEWER = "viewer"


class Permission(StrEnum):
    """What an action needs. Routes and services name a permission, never a role."""

    USERS_MANAGE = "users:manage"
    AUDIT_READ = "audit:read"
    SETTINGS_MANAGE = "settings:manage"
    CALLS_READ_ALL = "calls:read_all"
    CALLS_READ_OWN = "calls:read_own"
    CALLS_WRITE = "calls:write"
    CALLS_ANNOTATE_OWN = "calls:annotate_own"
    RECORDINGS_READ = "recordings:read"
    KNOWLEDGE_READ = "knowledge:read"
    KNOWLEDGE_WRITE = "knowledge:write"
    INTEGRATIONS_MANAGE = "integrations:manage"
    INTEGRATIONS_OPERATE = "integrations:operate"
    ANALYTICS_READ = "analytics:read"
    HANDOFFS_MANAGE = "handoffs:manage"
    HANDOFFS_TAKE = "handoffs:take"
    PERSONAS_MANAGE = "personas:manage"
    PRIVACY_MANAGE = "privacy:manage"
    INCIDENTS_MANAGE = "incidents:manage"
    VOICE_CALL = "voice:call"
    LEARNING_MANAGE = "learning:manage"  # issue 20: knowledge gaps, analysis fields
    SOPS_MANAGE = "sops:manage"  # issue 20: the SOP generator


# Issue wording: admin (everything); supervisor (calls, knowledge, integrations, analytics, handoffs);
# integrations hold credentials: admins configure them, supervisors watch their deliveries and retry dead ones;
# agent (their handoffs and the calls they took, read knowledge); viewer (read-only dashboards).
_SUPERVISOR = {
    Permission.CALLS_READ_ALL,
    Permission.CALLS_READ_OWN,
    Permission.CALLS_WRITE,
    Permission.CALLS_ANNOTATE_OWN,
    Permission.RECORDINGS_READ,
    Permission.KNOWLEDGE_READ,
    Permission.KNOWLEDGE_WRITE,
    Permission.INTEGRATIONS_OPERATE,
    Permission.ANALYTICS_READ,
    Permission.HANDOFFS_MANAGE,
    Permission.HANDOFFS_TAKE,
    Permission.PERSONAS_MANAGE,
    Permission.VOICE_CALL,
    Permission.LEARNING_MANAGE,
    Permission.SOPS_MANAGE,
}
_AGENT = {
    Permission.CALLS_READ_OWN,
    Permission.CALLS_ANNOTATE_OWN,
    Permission.KNOWLEDGE_READ,
    Permission.HANDOFFS_TAKE,
    Permission.VOICE_CALL,
}
_VIEWER = {Permission.ANALYTICS_READ}

MATRIX: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.SUPERVISOR: frozenset(_SUPERVISOR),
    Role.AGENT: frozenset(_AGENT),
    Role.VIEWER: frozenset(_VIEWER),
}


def has_permission(role: str, permission: Permission) -> bool:
    """Whether ``role`` grants ``permission`` (unknown roles grant nothing)."""
    try:
        return permission in MATRIX[Role(role)]
    except ValueError:
        return False


def ensure(role: str, permission: Permission) -> None:
    """Raise 403 problem JSON unless ``role`` grants ``permission``."""
    if not has_permission(role, permission):
        raise ProblemError(403, f"Your role does not allow {permission.value}.", type_="forbidden")


_DESCRIPTIONS: dict[Permission, str] = {
    Permission.USERS_MANAGE: "Invite, edit and deactivate accounts; assign roles",
    Permission.AUDIT_READ: "Read the audit log",
    Permission.SETTINGS_MANAGE: "Change runtime settings",
    Permission.CALLS_READ_ALL: "Read every call, transcript and recording; export calls",
    Permission.CALLS_READ_OWN: "Read the calls they took or whose callback they hold (transcript, recording)",
    Permission.CALLS_WRITE: "Register calls; edit notes, disposition and tags of any call",
    Permission.CALLS_ANNOTATE_OWN: "Edit notes, disposition and tags of the calls they took",
    Permission.RECORDINGS_READ: "Play any call recording",
    Permission.KNOWLEDGE_READ: "Search and read the knowledge base",
    Permission.KNOWLEDGE_WRITE: "Upload, import, re-index and delete documents",
    Permission.INTEGRATIONS_MANAGE: "Configure ticketing, webhook and chat integrations and their secrets",
    Permission.INTEGRATIONS_OPERATE: "See integrations, their runs and deliveries; retry dead-lettered deliveries",
    Permission.ANALYTICS_READ: "Dashboards and analytics",
    Permission.HANDOFFS_MANAGE: "See and reassign every handoff",
    Permission.HANDOFFS_TAKE: "Accept and complete handoffs offered to them",
    Permission.PERSONAS_MANAGE: "Edit agent personas",
    Permission.PRIVACY_MANAGE: "Consents, data-subject requests (export, correction, erasure), retention purge",
    Permission.INCIDENTS_MANAGE: "Record security incidents and their 72-hour notification",
    Permission.VOICE_CALL: "Place test calls from the console",
    Permission.LEARNING_MANAGE: (
        "See knowledge gaps from calls, approve them into the knowledge base or dismiss them; "
        "define the fields post-call analysis extracts"
    ),
    Permission.SOPS_MANAGE: "Generate, edit and approve standard operating procedures drafted from calls",
}


def matrix_markdown() -> str:
    """The role matrix as a Markdown table (one row per permission, one column per role) for the README."""
    roles = list(Role)
    lines = [
        "| permission | what it allows | " + " | ".join(r.value for r in roles) + " |",
        "|---|---|" + "---|" * len(roles),
    ]
    for permission in Permission:
        marks = " | ".join("✓" if permission in MATRIX[r] else "—" for r in roles)
        lines.append(f"| `{permission.value}` | {_DESCRIPTIONS.get(permission, '')} | {marks} |")
    return "\n".join(lines) + "\n"
