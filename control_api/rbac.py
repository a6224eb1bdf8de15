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
    RECORDINGS_READ = "recordings:read"
    KNOWLEDGE_READ = "knowledge:read"
    KNOWLEDGE_WRITE = "knowledge:write"
    INTEGRATIONS_MANAGE = "integrations:manage"
    ANALYTICS_READ = "analytics:read"
    HANDOFFS_MANAGE = "handoffs:manage"
    HANDOFFS_TAKE = "handoffs:take"
    PERSONAS_MANAGE = "personas:manage"
    PRIVACY_MANAGE = "privacy:manage"
    INCIDENTS_MANAGE = "incidents:manage"
    VOICE_CALL = "voice:call"


_SUPERVISOR = {
    Permission.CALLS_READ_ALL,
    Permission.CALLS_READ_OWN,
    Permission.CALLS_WRITE,
    Permission.RECORDINGS_READ,
    Permission.KNOWLEDGE_READ,
    Permission.KNOWLEDGE_WRITE,
    Permission.INTEGRATIONS_MANAGE,
    Permission.ANALYTICS_READ,
    Permission.HANDOFFS_MANAGE,
    Permission.HANDOFFS_TAKE,
    Permission.PERSONAS_MANAGE,
    Permission.VOICE_CALL,
}
_AGENT = {
    Permission.CALLS_READ_OWN,
    Permission.KNOWLEDGE_READ,
    Permission.HANDOFFS_TAKE,
    Permission.VOICE_CALL,
}
_VIEWER = {Permission.ANALYTICS_READ, Permission.KNOWLEDGE_READ}

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
