"""FastAPI dependencies as ``Annotated`` aliases (after full-stack-fastapi-template's ``deps.py``).

Authentication: a bearer access token (``Authorization: Bearer ...``) or the console's cookie session
(``voxdesk_session``). With the cookie, unsafe methods (POST, PUT, PATCH, DELETE) must also carry the
CSRF token in ``X-CSRF-Token``. Every authenticated request counts against the ``api`` rate limit of
its user.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.authn import Credentials, authenticate
from control_api.db.models import User
from control_api.ratelimit import hit
from control_api.rbac import Permission, ensure
from control_api.services import audit
from control_api.services.auth import CSRF_HEADER, REVOKED_FAMILY_PREFIX, SESSION_COOKIE, AuthPolicy
from control_api.services.mail import MailConfig
from control_api.state import AppState

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Declared for OpenAPI (the "Authorize" button and security schemes); both optional, checked below.
_bearer = HTTPBearer(auto_error=False, description="Access token from POST /api/auth/login")
_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="Console session (needs X-CSRF-Token)")


def get_state(request: Request) -> AppState:
    """The ``AppState`` built by the lifespan."""
    state: AppState = request.app.state.voxdesk
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """One database session per request; rolled back if the request fails."""
    async with state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def client_ip(request: Request) -> str | None:
    """The client's address: the peer's, or the one a trusted proxy forwarded (``server.trusted_proxies``)."""
    return request.client.host if request.client else None


def get_auth_policy(state: StateDep) -> AuthPolicy:
    """Token lifetimes and sign-up policy from the settings."""
    auth = state.settings.auth
    return AuthPolicy(
        secret=auth.secret_key.get_secret_value(),
        access_minutes=auth.access_token_minutes,
        refresh_days=auth.refresh_token_days,
        reset_minutes=auth.reset_token_minutes,
        allow_signup=auth.allow_signup,
    )


AuthPolicyDep = Annotated[AuthPolicy, Depends(get_auth_policy)]


def get_mail_config(state: StateDep) -> MailConfig:
    """SMTP settings, or the outbox folder under the data directory when no host is set."""
    smtp = state.settings.smtp
    return MailConfig(
        host=smtp.host,
        port=smtp.port,
        sender=smtp.sender,
        outbox_dir=Path(state.settings.data_dir) / "outbox",
        username=smtp.username,
        password=smtp.password.get_secret_value() if smtp.password else None,
        security=smtp.security,
        ca_pem=smtp.ca_file.read_text(encoding="utf-8") if smtp.ca_file else None,
    )


MailConfigDep = Annotated[MailConfig, Depends(get_mail_config)]


async def get_current_user(
    request: Request,
    state: StateDep,
    session: SessionDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> User:
    """The authenticated, active user (bearer token first, then the cookie session); 401 otherwise."""
    credentials = Credentials(
        bearer=bearer.credentials if bearer is not None and bearer.scheme.lower() == "bearer" else None,
        cookie=cookie,
        csrf=request.headers.get(CSRF_HEADER),
        needs_csrf=request.method not in SAFE_METHODS,
    )
    principal = await authenticate(
        session, state.cache, credentials, secret=state.settings.auth.secret_key.get_secret_value()
    )
    user = principal.user
    request.state.auth_family = principal.family
    request.state.user_id = user.id
    request.state.user_role = user.role
    await hit(state.limiter, "api", "user:" + user.id)
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require(permission: Permission) -> Callable[[User], Awaitable[User]]:
    """A dependency that yields the current user only when their role grants ``permission``."""

    async def checker(user: CurrentUser) -> User:
        ensure(user.role, permission)
        return user

    return checker


def actor_for(request: Request, user: User | None) -> audit.Actor:
    """The audit actor of a request (anonymous when ``user`` is None)."""
    return audit.Actor(
        user_id=user.id if user else None,
        role=user.role if user else "anonymous",
        ip=client_ip(request),
        request_id=getattr(request.state, "request_id", None),
    )


async def get_actor(request: Request, user: CurrentUser) -> audit.Actor:
    """The audit actor of the authenticated request."""
    return actor_for(request, user)


ActorDep = Annotated[audit.Actor, Depends(get_actor)]


async def mark_families_revoked(state: AppState, families: Iterable[str]) -> None:
    """Refuse the access tokens of these login families until they would have expired anyway."""
    ttl = state.settings.auth.access_token_minutes * 60
    for family in families:
        await state.cache.set(REVOKED_FAMILY_PREFIX + family, "1", ttl_seconds=ttl)
