"""Who is asking: the one check that turns a presented credential into a signed-in principal.

Every entry point calls :func:`authenticate`: the HTTP dependencies (``control_api.deps``) and the voice
WebSocket (``agent.transports.websocket``) alike, so a rule added here (a revoked session, a disabled
account) holds everywhere at once. It knows nothing of HTTP or WebSockets: each caller turns the
:class:`~control_api.problems.ProblemError` it raises into its own answer (a 401/403 problem, a close code).
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.cache import Cache
from control_api.db.models import User
from control_api.problems import ProblemError
from control_api.security import decode_access_token
from control_api.services.auth import CSRF_HEADER, REVOKED_FAMILY_PREFIX, csrf_valid, session_user

CSRF_FAILED = "csrf-failed"


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request presented: a bearer access token and/or the console's session cookie.

    Attributes:
        bearer: The access token (``Authorization: Bearer ...`` or a WebSocket's ``access_token``).
        cookie: The console's session token (``voxdesk_session``).
        csrf: The ``X-CSRF-Token`` header; checked only when ``needs_csrf`` and the cookie is used.
        needs_csrf: The request changes state (an unsafe HTTP method) and so must prove it is not forged.

    """

    bearer: str | None = None
    cookie: str | None = None
    csrf: str | None = None
    needs_csrf: bool = False


@dataclass(frozen=True, slots=True)
class Principal:
    """A signed-in, active user and the login family (session) the credential belongs to."""

    user: User
    family: str | None


def unauthenticated(detail: str = "Authentication required.", type_: str = "unauthenticated") -> ProblemError:
    """A 401 problem asking for a bearer token."""
    return ProblemError(401, detail, type_=type_, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(session: AsyncSession, cache: Cache, credentials: Credentials, *, secret: str) -> Principal:
    """The principal behind ``credentials`` (bearer token first, then the cookie session).

    Raises:
        ProblemError: 401 when nothing valid was presented, the token is invalid, expired or signed out, or the
            account is not active; 403 (``csrf-failed``) when a cookie session changes state without its CSRF token.

    """
    user: User | None
    if credentials.bearer:
        try:
            claims = decode_access_token(credentials.bearer, secret=secret)
        except jwt.InvalidTokenError:
            raise unauthenticated("The access token is invalid or expired.", "invalid-token") from None
        family = claims.get("fam")
        family = family if isinstance(family, str) else None
        if family is not None and await cache.get(REVOKED_FAMILY_PREFIX + family) is not None:
            raise unauthenticated("This session has been signed out.", "invalid-token")
        user = await session.get(User, str(claims["sub"]))
    elif credentials.cookie:
        found = await session_user(session, credentials.cookie)
        if found is None:
            raise unauthenticated("The session has expired or was signed out.", "invalid-session")
        user, token_row = found
        family = token_row.family_id
        if credentials.needs_csrf and not csrf_valid(credentials.cookie, credentials.csrf, secret=secret):
            raise ProblemError(403, f"A valid {CSRF_HEADER} header is required.", type_=CSRF_FAILED)
    else:
        raise unauthenticated()
    if user is None or not user.is_active:
        raise ProblemError(401, "The account is not active.", type_="inactive-account")
    return Principal(user=user, family=family)
