"""FastAPI dependencies as ``Annotated`` aliases (after full-stack-fastapi-template's ``deps.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

import jwt
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import User
from control_api.problems import ProblemError
from control_api.rbac import Permission, ensure
from control_api.security import decode_access_token
from control_api.state import AppState


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


async def get_current_user(request: Request, state: StateDep, session: SessionDep) -> User:
    """The authenticated, active user from a bearer access token; 401 problem JSON otherwise."""
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ProblemError(
            401, "Authentication required.", type_="unauthenticated", headers={"WWW-Authenticate": "Bearer"}
        )
    try:
        claims = decode_access_token(token, secret=state.settings.auth.secret_key.get_secret_value())
    except jwt.InvalidTokenError:
        raise ProblemError(
            401,
            "The access token is invalid or expired.",
            type_="invalid-token",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    user = await session.get(User, str(claims["sub"]))
    if user is None or not user.is_active:
        raise ProblemError(401, "The account is not active.", type_="inactive-account")
    request.state.user_id = user.id
    request.state.user_role = user.role
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require(permission: Permission) -> Callable[[User], Awaitable[User]]:
    """A dependency that yields the current user only when their role grants ``permission``."""

    async def checker(user: CurrentUser) -> User:
        ensure(user.role, permission)
        return user

    return checker
