"""Sign-up, login, token rotation, cookie sessions, logout and password resets.

Tokens:

- access token: a signed JWT (``settings.auth.access_token_minutes``), carrying the user id, role and
  the id of its login ``family``; stateless except for the revoked-family check (cache, see ``deps``).
- refresh token: opaque, stored as a SHA-256 digest in ``refresh_tokens`` (kind ``refresh``); each use
  rotates it (the old one is marked used, a new one of the same family is returned). Presenting a used or
  revoked token again is reuse: the whole family is revoked.
- console session: an opaque cookie token (kind ``session``), HttpOnly and SameSite=Lax, with a CSRF token
  derived from it (HMAC) that the console sends back in the ``X-CSRF-Token`` header on unsafe methods.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import PasswordResetToken, RefreshToken, User, new_id, utcnow
from control_api.problems import ProblemError
from control_api.ratelimit import RateLimiter, check, hit
from control_api.rbac import Role
from control_api.security import (
    create_access_token,
    hash_password,
    needs_rehash,
    new_opaque_token,
    token_digest,
    verify_password,
)
from control_api.services import mail, users

SESSION_COOKIE = "voxdesk_session"
CSRF_COOKIE = "voxdesk_csrf"
CSRF_HEADER = "X-CSRF-Token"
REVOKED_FAMILY_PREFIX = "auth:revoked-family:"


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """Token lifetimes and sign-up policy (from ``settings.auth``)."""

    secret: str
    access_minutes: int = 15
    refresh_days: int = 14
    reset_minutes: int = 30
    invite_days: int = 7
    allow_signup: bool = False


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """What a successful login or refresh hands out."""

    user: User
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    family_id: str


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A console cookie session."""

    token: str
    csrf_token: str
    max_age: int
    family_id: str


def _as_aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they are UTC.
    return value if value.tzinfo else value.replace(tzinfo=utcnow().tzinfo)


def csrf_for(session_token: str, *, secret: str) -> str:
    """The CSRF token bound to ``session_token`` (HMAC-SHA256, so it cannot be forged without the secret)."""
    return hmac.new(secret.encode(), b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()


def csrf_valid(session_token: str, presented: str | None, *, secret: str) -> bool:
    """Whether ``presented`` is the CSRF token of ``session_token`` (constant time)."""
    return bool(presented) and hmac.compare_digest(csrf_for(session_token, secret=secret), presented or "")


async def _store_token(
    session: AsyncSession,
    user: User,
    *,
    kind: str,
    family_id: str,
    days: int,
    ip: str | None,
    user_agent: str | None,
) -> str:
    token = new_opaque_token()
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=token_digest(token),
            kind=kind,
            expires_at=utcnow() + timedelta(days=days),
            ip=ip,
            user_agent=(user_agent or "")[:400] or None,
        )
    )
    return token


async def issue_tokens(
    session: AsyncSession,
    user: User,
    policy: AuthPolicy,
    *,
    family_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> IssuedTokens:
    """A new access token and refresh token for ``user`` (a new family unless one is given). Commits."""
    family = family_id or new_id()
    refresh = await _store_token(
        session, user, kind="refresh", family_id=family, days=policy.refresh_days, ip=ip, user_agent=user_agent
    )
    await session.commit()
    access = create_access_token(
        subject=user.id, role=user.role, secret=policy.secret, minutes=policy.access_minutes, extra={"fam": family}
    )
    return IssuedTokens(
        user=user,
        access_token=access,
        expires_in=policy.access_minutes * 60,
        refresh_token=refresh,
        refresh_expires_in=policy.refresh_days * 86400,
        family_id=family,
    )


async def open_session(
    session: AsyncSession,
    user: User,
    policy: AuthPolicy,
    *,
    family_id: str,
    ip: str | None = None,
    user_agent: str | None = None,
) -> IssuedSession:
    """A cookie session for the console, in the login's family (logout of either revokes both). Commits."""
    token = await _store_token(
        session, user, kind="session", family_id=family_id, days=policy.refresh_days, ip=ip, user_agent=user_agent
    )
    await session.commit()
    return IssuedSession(
        token=token,
        csrf_token=csrf_for(token, secret=policy.secret),
        max_age=policy.refresh_days * 86400,
        family_id=family_id,
    )


async def login(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    policy: AuthPolicy,
    limiter: RateLimiter,
    ip: str | None,
    user_agent: str | None = None,
) -> IssuedTokens:
    """Check a password and issue tokens.

    Failed attempts count against the ``login`` limit per account and per IP; once either is spent, further
    attempts get 429 (with ``Retry-After``) before the password is even checked.
    """
    account_key = "account:" + email.strip().lower()
    ip_key = "ip:" + (ip or "unknown")
    await check(limiter, "login", account_key)
    await check(limiter, "login", ip_key)
    user = await users.get_by_email(session, email)
    ok = verify_password(password, user.password_hash if user is not None else None)
    if user is None or not ok or not user.is_active:
        await hit(limiter, "login", account_key)
        await hit(limiter, "login", ip_key)
        raise ProblemError(
            401,
            "The e-mail or password is wrong, or the account is not active.",
            type_="invalid-credentials",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    return await issue_tokens(session, user, policy, ip=ip, user_agent=user_agent)


async def revoke_family(session: AsyncSession, family_id: str) -> int:
    """Revoke every token of a login family. Returns how many were revoked. Does not commit."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def revoke_user(session: AsyncSession, user_id: str, *, keep_family: str | None = None) -> list[str]:
    """Revoke every token of a user (password change or reset, deactivation), except ``keep_family``'s.

    Returns the revoked families. Does not commit.
    """
    live = (RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
    kept = (RefreshToken.family_id != keep_family,) if keep_family is not None else ()
    families = list((await session.execute(select(RefreshToken.family_id).where(*live, *kept).distinct())).scalars())
    await session.execute(update(RefreshToken).where(*live, *kept).values(revoked_at=utcnow()))
    return families


class TokenReuseError(ProblemError):
    """A refresh token was presented twice: its family has been revoked."""

    def __init__(self, family_id: str) -> None:
        super().__init__(
            401,
            "This refresh token was already used; every session of this login has been revoked.",
            type_="refresh-token-reused",
        )
        self.family_id = family_id


async def refresh(
    session: AsyncSession,
    *,
    refresh_token: str,
    policy: AuthPolicy,
    ip: str | None = None,
    user_agent: str | None = None,
) -> IssuedTokens:
    """Rotate a refresh token: mark it used and issue a new pair in the same family.

    Raises:
        TokenReuseError: The token was used or revoked before (the family is revoked; commit done).
        ProblemError: 401 when the token is unknown, expired or its account inactive.

    """
    row = (
        await session.execute(
            select(RefreshToken).where(
                RefreshToken.token_hash == token_digest(refresh_token), RefreshToken.kind == "refresh"
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise ProblemError(401, "The refresh token is not valid.", type_="invalid-token")
    if row.used_at is not None or row.revoked_at is not None:
        await revoke_family(session, row.family_id)
        await session.commit()
        raise TokenReuseError(row.family_id)
    if _as_aware(row.expires_at) <= utcnow():
        raise ProblemError(401, "The refresh token has expired.", type_="invalid-token")
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise ProblemError(401, "The account is not active.", type_="inactive-account")
    row.used_at = utcnow()
    return await issue_tokens(session, user, policy, family_id=row.family_id, ip=ip, user_agent=user_agent)


async def session_user(session: AsyncSession, token: str) -> tuple[User, RefreshToken] | None:
    """The active user of a live console session token, or None."""
    row = (
        await session.execute(
            select(RefreshToken).where(RefreshToken.token_hash == token_digest(token), RefreshToken.kind == "session")
        )
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None or _as_aware(row.expires_at) <= utcnow():
        return None
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    return user, row


async def family_of(session: AsyncSession, token: str) -> str | None:
    """The family of a refresh or session token (any state), or None when unknown."""
    return (
        await session.execute(select(RefreshToken.family_id).where(RefreshToken.token_hash == token_digest(token)))
    ).scalar_one_or_none()


async def signup(
    session: AsyncSession, *, email: str, password: str, full_name: str | None, policy: AuthPolicy
) -> User:
    """Open a new account: the first one is the admin; later ones only when open sign-up is on (as viewers)."""
    first = await users.count_users(session) == 0
    if not first and not policy.allow_signup:
        raise ProblemError(403, "Sign-up is closed: ask an administrator for an invitation.", type_="signup-closed")
    role = Role.ADMIN if first else Role.VIEWER
    return await users.create_user(session, email=email, password=password, role=role, full_name=full_name)


async def create_one_time_token(session: AsyncSession, user: User, *, purpose: str, lifetime: timedelta) -> str:
    """A single-use token (``reset`` or ``invite``) for ``user``; earlier unused ones of the purpose die. Commits."""
    await session.execute(
        update(PasswordResetToken)
        .where(
            PasswordResetToken.user_id == user.id,
            PasswordResetToken.purpose == purpose,
            PasswordResetToken.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    token = new_opaque_token()
    session.add(
        PasswordResetToken(
            user_id=user.id, token_hash=token_digest(token), purpose=purpose, expires_at=utcnow() + lifetime
        )
    )
    await session.commit()
    return token


def _link(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/console/reset-password?token={token}"


async def request_reset(
    session: AsyncSession, *, email: str, policy: AuthPolicy, mail_config: mail.MailConfig, public_url: str
) -> bool:
    """E-mail a reset token when an active account has ``email``. Returns whether a mail was sent.

    ``public_url`` is Voxdesk's base URL for the link (``integrations.console_base``).

    The API answers the same either way, so it does not reveal which addresses have accounts.
    """
    user = await users.get_by_email(session, email)
    if user is None or not user.is_active:
        return False
    token = await create_one_time_token(
        session, user, purpose="reset", lifetime=timedelta(minutes=policy.reset_minutes)
    )
    body = (
        "Someone asked to reset the password of your Voxdesk account.\n\n"
        f"Reset token: {token}\n"
        f"Or open: {_link(public_url, token)}\n\n"
        f"The token works once and expires in {policy.reset_minutes} minutes. "
        "If you did not ask for this, ignore this message.\n"
    )
    await mail.send(mail_config, to=user.email, subject="Reset your Voxdesk password", body=body)
    return True


async def send_invitation(
    session: AsyncSession,
    user: User,
    *,
    policy: AuthPolicy,
    mail_config: mail.MailConfig,
    public_url: str,
    invited_by: str | None,
) -> None:
    """E-mail ``user`` an invitation token with which they choose their password (link under ``public_url``)."""
    token = await create_one_time_token(session, user, purpose="invite", lifetime=timedelta(days=policy.invite_days))
    body = (
        f"{invited_by or 'An administrator'} invited you to Voxdesk as {user.role}.\n\n"
        f"Invitation token: {token}\n"
        f"Or open: {_link(public_url, token)}\n\n"
        f"Choose your password with this token within {policy.invite_days} days.\n"
    )
    await mail.send(mail_config, to=user.email, subject="Your Voxdesk invitation", body=body)


async def confirm_reset(session: AsyncSession, *, token: str, new_password: str) -> tuple[User, list[str]]:
    """Set a new password with a reset or invitation token. Commits.

    Every session of the account is revoked; returns the user and the revoked login families.
    """
    users.check_password_policy(new_password)
    row = (
        await session.execute(select(PasswordResetToken).where(PasswordResetToken.token_hash == token_digest(token)))
    ).scalar_one_or_none()
    if row is None or row.used_at is not None or _as_aware(row.expires_at) <= utcnow():
        raise ProblemError(400, "The token is not valid, already used or expired.", type_="invalid-token")
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise ProblemError(400, "The token is not valid, already used or expired.", type_="invalid-token")
    row.used_at = utcnow()
    user.password_hash = hash_password(new_password)
    families = await revoke_user(session, user.id)
    await session.commit()
    return user, families
