"""Accounts: create, look up and authenticate users."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import User
from control_api.problems import ProblemError
from control_api.rbac import Role
from control_api.security import hash_password

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
