"""Accounts: invite or create, list, read, edit and deactivate (administrators; everyone for themselves)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from control_api.db.models import User
from control_api.deps import (
    AuthPolicyDep,
    CurrentUser,
    MailConfigDep,
    SessionDep,
    StateDep,
    actor_for,
    mark_families_revoked,
    require,
)
from control_api.problems import ProblemError
from control_api.rbac import Permission, has_permission
from control_api.schemas.users import UserCreate, UserPublic, UsersPublic, UserUpdate
from control_api.services import audit
from control_api.services import auth as auth_service
from control_api.services import users as service
from control_api.services.integrations import console_base
from control_api.services.mail import MailError

router = APIRouter(prefix="/api/users", tags=["users"])
Manager = Annotated[User, Depends(require(Permission.USERS_MANAGE))]


@router.get("", response_model=UsersPublic)
async def list_users(
    session: SessionDep,
    user: Manager,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> UsersPublic:
    """Every account (administrators)."""
    del user
    rows, total = await service.list_users(session, limit=limit, offset=offset)
    return UsersPublic(items=[UserPublic.model_validate(u) for u in rows], count=total)


@router.post("", response_model=UserPublic, status_code=201, responses={409: {"description": "E-mail taken"}})
async def create_user(
    body: UserCreate,
    request: Request,
    session: SessionDep,
    state: StateDep,
    policy: AuthPolicyDep,
    mail_config: MailConfigDep,
    user: Manager,
) -> UserPublic:
    """Create an account with a password, or (no password) e-mail an invitation to choose one."""
    created = await service.create_user(
        session, email=str(body.email), password=body.password, role=body.role, full_name=body.full_name
    )
    invited = body.password is None
    if invited:
        try:
            await auth_service.send_invitation(
                session,
                created,
                policy=policy,
                mail_config=mail_config,
                public_url=console_base(state.settings),
                invited_by=user.full_name or user.email,
            )
        except MailError:
            await audit.record(
                session,
                actor_for(request, user),
                "users.invite",
                target_type="user",
                target_id=created.id,
                outcome="failure",
            )
            raise ProblemError(
                503, "The account was created but the invitation could not be mailed.", type_="mail-failed"
            ) from None
    await audit.record(
        session,
        actor_for(request, user),
        "users.create",
        target_type="user",
        target_id=created.id,
        detail={"role": created.role, "invited": invited},
    )
    return UserPublic.model_validate(created)


@router.get("/{user_id}", response_model=UserPublic)
async def get_user(user_id: str, session: SessionDep, user: CurrentUser) -> UserPublic:
    """One account (administrators; anyone for their own)."""
    if user.id != user_id and not has_permission(user.role, Permission.USERS_MANAGE):
        raise ProblemError(403, "You may only read your own account.", type_="forbidden")
    return UserPublic.model_validate(await service.get_user(session, user_id))


@router.patch("/{user_id}", response_model=UserPublic)
async def update_user(
    user_id: str, body: UserUpdate, request: Request, session: SessionDep, state: StateDep, user: CurrentUser
) -> UserPublic:
    """Edit an account. Only administrators may set ``role`` or ``is_active`` (anyone else: 403)."""
    try:
        updated, changed = await service.update_user(
            session,
            actor=user,
            user_id=user_id,
            full_name=body.full_name,
            role=body.role,
            is_active=body.is_active,
            password=body.password,
            current_password=body.current_password,
        )
    except ProblemError as err:
        if err.status == 403:
            await audit.record(
                session,
                actor_for(request, user),
                "users.update",
                target_type="user",
                target_id=user_id,
                outcome="denied",
                detail={"fields": sorted(body.model_fields_set)},
            )
        raise
    if {"role", "is_active", "password"} & set(changed):
        families: list[str] = []
        if "is_active" in changed:
            families = await auth_service.revoke_user(session, updated.id)
        elif "password" in changed:
            # Every other session of the account ends (a password change is how a stolen session is cut off);
            # the one changing its own password stays signed in.
            own = updated.id == user.id
            keep = getattr(request.state, "auth_family", None) if own else None
            families = await auth_service.revoke_user(session, updated.id, keep_family=keep)
        await session.commit()
        await mark_families_revoked(state, families)
        if "password" in changed:
            await audit.record(
                session,
                actor_for(request, user),
                "users.password_changed",
                target_type="user",
                target_id=updated.id,
                detail={"sessions_ended": len(families), "by": "self" if updated.id == user.id else "admin"},
            )
    await audit.record(
        session,
        actor_for(request, user),
        "users.update",
        target_type="user",
        target_id=updated.id,
        detail={"fields": changed, "role": updated.role},
    )
    return UserPublic.model_validate(updated)


@router.post("/{user_id}/deactivate", response_model=UserPublic)
async def deactivate_user(
    user_id: str, request: Request, session: SessionDep, state: StateDep, user: Manager
) -> UserPublic:
    """Deactivate an account and end every session of it (administrators)."""
    updated, _ = await service.update_user(session, actor=user, user_id=user_id, is_active=False)
    families = await auth_service.revoke_user(session, updated.id)
    await session.commit()
    await mark_families_revoked(state, families)
    await audit.record(session, actor_for(request, user), "users.deactivate", target_type="user", target_id=updated.id)
    return UserPublic.model_validate(updated)
