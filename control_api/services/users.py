"""Accounts: create, look up and authenticate users."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import User
from control_api.problems import ProblemError
from control_api.rbac import Permission, Role, has_permission
from control_api.security import hash_password, verify_password

MIN_PASSWORD_LENGTH = 10


def check_password_policy(password: str) -> None:
    """Refuse passwords that are too short or too long (argon2 input bound)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ProblemError(
            422, f"The password must have at least {MIN_PASSWORD_LENGTH} characters.", type_="weak-password"
        )
    if len(password) > 256:
        raise ProblemError(422, "The password must have at most 256 characters.", type_="weak-password")


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    """The user with ``email`` (case-insensitive), or None."""
    result = await session.execute(select(User).where(func.lower(User.email) == email.strip().lower()))
    return result.scalar_one_or_none()


async def count_users(session: AsyncSession) -> int:
    """How many accounts exist."""
    return int((await session.execute(select(func.count()).select_from(User))).scalar_one())


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str | None,
    role: Role,
    full_name: str | None = None,
) -> User:
    """Create an account; 409 when the e-mail is taken. Commits."""
    if password is not None:
        check_password_policy(password)
    normalised = email.strip().lower()
    if await get_by_email(session, normalised) is not None:
        raise ProblemError(409, "An account with this e-mail already exists.", type_="email-taken")
    user = User(
        email=normalised,
        full_name=full_name,
        password_hash=hash_password(password) if password is not None else None,
        role=role.value,
    )
    session.add(user)
    await session.commit()
    return user


async def get_user(session: AsyncSession, user_id: str) -> User:
    """The account with ``user_id``; 404 when absent."""
    user = await session.get(User, user_id)
    if user is None:
        raise ProblemError(404, "No account with this id.", type_="not-found")
    return user


async def list_users(session: AsyncSession, *, limit: int = 100, offset: int = 0) -> tuple[list[User], int]:
    """A page of accounts (oldest first) and the total count."""
    rows = (
        await session.execute(select(User).order_by(User.created_at, User.id).limit(limit).offset(offset))
    ).scalars()
    return list(rows), await count_users(session)


async def _active_admins(session: AsyncSession) -> int:
    stmt = select(func.count()).select_from(User).where(User.role == Role.ADMIN.value, User.is_active.is_(True))
    return int((await session.execute(stmt)).scalar_one())


async def update_user(
    session: AsyncSession,
    *,
    actor: User,
    user_id: str,
    full_name: str | None = None,
    role: Role | None = None,
    is_active: bool | None = None,
    password: str | None = None,
    current_password: str | None = None,
) -> tuple[User, list[str]]:
    """Change an account. Returns it and the names of the changed fields. Commits.

    Administrators may change any account; others only their own name and password. Setting ``role`` or
    ``is_active`` without ``users:manage`` is refused (403), so a client cannot grant itself a role.
    The last active administrator cannot be demoted or deactivated (409). Changing one's own password needs
    the current one (403 ``wrong-password`` otherwise), administrators included: a stolen session alone must
    not be able to lock the owner out. The caller ends the account's other sessions after a password change.
    """
    manager = has_permission(actor.role, Permission.USERS_MANAGE)
    if not manager and actor.id != user_id:
        raise ProblemError(403, "You may only change your own account.", type_="forbidden")
    if not manager and (role is not None or is_active is not None):
        raise ProblemError(403, "Only administrators may change roles or activation.", type_="forbidden-field")
    user = await get_user(session, user_id)
    changed: list[str] = []
    losing_admin = (
        user.role == Role.ADMIN.value
        and user.is_active
        and ((role is not None and role != Role.ADMIN) or is_active is False)
    )
    if losing_admin and await _active_admins(session) <= 1:
        raise ProblemError(409, "The last active administrator cannot be demoted or deactivated.", type_="last-admin")
    if full_name is not None and full_name != user.full_name:
        user.full_name = full_name
        changed.append("full_name")
    if role is not None and role.value != user.role:
        user.role = role.value
        changed.append("role")
    if is_active is not None and is_active != user.is_active:
        user.is_active = is_active
        changed.append("is_active")
    if password is not None:
        if actor.id == user.id and not verify_password(current_password or "", user.password_hash):
            raise ProblemError(403, "Changing your password needs your current password.", type_="wrong-password")
        check_password_policy(password)
        user.password_hash = hash_password(password)
        changed.append("password")
    await session.commit()
    return user, changed
