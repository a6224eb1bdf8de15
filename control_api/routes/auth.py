"""Accounts and sessions: sign-up, login (OAuth2 password flow), refresh, logout, me, password reset."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Form, Request, Response
from starlette import status

from control_api.deps import (
    AuthPolicyDep,
    CurrentUser,
    MailConfigDep,
    SessionDep,
    StateDep,
    actor_for,
    client_ip,
    mark_families_revoked,
)
from control_api.problems import ProblemError
from control_api.ratelimit import hit
from control_api.rbac import MATRIX, Role
from control_api.schemas.auth import (
    LogoutRequest,
    Message,
    RefreshRequest,
    ResetConfirm,
    ResetRequest,
    SignupRequest,
    TokenResponse,
)
from control_api.schemas.users import MePublic, UserPublic
from control_api.services import audit
from control_api.services import auth as service
from control_api.services.integrations import console_base
from control_api.services.mail import MailError
from control_api.state import AppState

router = APIRouter(prefix="/api/auth", tags=["auth"])
_COOKIE_PATH = "/"


def _tokens(issued: service.IssuedTokens, csrf: str | None = None) -> TokenResponse:
    return TokenResponse(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        refresh_token=issued.refresh_token,
        refresh_expires_in=issued.refresh_expires_in,
        csrf_token=csrf,
    )


def _set_session_cookies(response: Response, opened: service.IssuedSession, *, secure: bool) -> None:
    response.set_cookie(
        service.SESSION_COOKIE,
        opened.token,
        max_age=opened.max_age,
        path=_COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="lax",
    )
    # Readable by the console's scripts (double submit); useless without the HttpOnly session cookie.
    response.set_cookie(
        service.CSRF_COOKIE,
        opened.csrf_token,
        max_age=opened.max_age,
        path=_COOKIE_PATH,
        secure=secure,
        httponly=False,
        samesite="strict",
    )


def _cookies_secure(request: Request, state: AppState) -> bool:
    """Session cookies are ``Secure`` when configured, in production, or whenever the client came over HTTPS."""
    settings = state.settings
    return settings.auth.cookie_secure or settings.env == "production" or request.url.scheme == "https"


@router.post("/signup", response_model=UserPublic, status_code=201, responses={403: {"description": "Sign-up closed"}})
async def signup(body: SignupRequest, request: Request, session: SessionDep, policy: AuthPolicyDep) -> UserPublic:
    """Create an account: the first one becomes the admin; later ones only when open sign-up is on (as viewers)."""
    user = await service.signup(
        session, email=str(body.email), password=body.password, full_name=body.full_name, policy=policy
    )
    await audit.record(session, actor_for(request, user), "users.signup", target_type="user", target_id=user.id)
    return UserPublic.model_validate(user)


@router.post(
    "/login",
    response_model=TokenResponse,
    responses={401: {"description": "Wrong credentials"}, 429: {"description": "Too many attempts"}},
)
async def login(
    username: Annotated[str, Form(max_length=320, description="The account's e-mail.")],
    password: Annotated[str, Form(max_length=256)],
    request: Request,
    response: Response,
    session: SessionDep,
    state: StateDep,
    policy: AuthPolicyDep,
    grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
    cookie_session: Annotated[bool, Form(description="Also open an HttpOnly cookie session (the console).")] = False,
) -> TokenResponse:
    """OAuth2 password flow: trade an e-mail and password for an access token and a refresh token.

    Five failed attempts within 15 minutes, per account or per IP, lock further attempts (429 with
    ``Retry-After``). With ``cookie_session`` the answer also sets the session and CSRF cookies.
    """
    del grant_type
    try:
        issued = await service.login(
            session,
            email=username,
            password=password,
            policy=policy,
            limiter=state.limiter,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
    except ProblemError as err:
        await audit.record(
            session,
            actor_for(request, None),
            "auth.login",
            target_type="account",
            outcome="rate_limited" if err.status == 429 else "failure",
        )
        raise
    csrf: str | None = None
    if cookie_session:
        opened = await service.open_session(
            session,
            issued.user,
            policy,
            family_id=issued.family_id,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
        _set_session_cookies(response, opened, secure=_cookies_secure(request, state))
        csrf = opened.csrf_token
    response.headers["Cache-Control"] = "no-store"
    await audit.record(
        session,
        actor_for(request, issued.user),
        "auth.login",
        target_type="user",
        target_id=issued.user.id,
        detail={"cookie_session": cookie_session},
    )
    return _tokens(issued, csrf)


@router.post("/refresh", response_model=TokenResponse, responses={401: {"description": "Invalid or reused token"}})
async def refresh(
    body: RefreshRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    state: StateDep,
    policy: AuthPolicyDep,
) -> TokenResponse:
    """Rotate a refresh token. Presenting an already-used one revokes every token of its login."""
    try:
        issued = await service.refresh(
            session,
            refresh_token=body.refresh_token,
            policy=policy,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
    except service.TokenReuseError as err:
        await mark_families_revoked(state, [err.family_id])
        await audit.record(
            session,
            actor_for(request, None),
            "auth.refresh_reuse",
            target_type="token_family",
            target_id=err.family_id,
            outcome="denied",
        )
        raise
    response.headers["Cache-Control"] = "no-store"
    return _tokens(issued)


@router.post("/logout", status_code=204, response_class=Response)
async def logout(
    request: Request,
    session: SessionDep,
    state: StateDep,
    user: CurrentUser,
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> Response:
    """Sign out: revoke the current login (its refresh tokens, cookie session and access tokens)."""
    families: set[str] = set()
    current = getattr(request.state, "auth_family", None)
    if isinstance(current, str):
        families.add(current)
    if body is not None and body.refresh_token:
        family = await service.family_of(session, body.refresh_token)
        if family is not None:
            families.add(family)
    for family in families:
        await service.revoke_family(session, family)
    await session.commit()
    await mark_families_revoked(state, families)
    await audit.record(session, actor_for(request, user), "auth.logout", target_type="user", target_id=user.id)
    response = Response(status_code=204)
    response.delete_cookie(service.SESSION_COOKIE, path=_COOKIE_PATH)
    response.delete_cookie(service.CSRF_COOKIE, path=_COOKIE_PATH)
    return response


@router.get("/me", response_model=MePublic)
async def me(user: CurrentUser) -> MePublic:
    """The signed-in account and its permissions."""
    permissions = sorted(p.value for p in MATRIX.get(Role(user.role), frozenset()))
    return MePublic.model_validate({**UserPublic.model_validate(user).model_dump(), "permissions": permissions})


@router.post(
    "/reset-password",
    response_model=Message,
    status_code=202,
    responses={
        200: {"model": Message, "description": "Password changed (confirm)"},
        202: {"model": Message, "description": "Reset requested: a token was e-mailed if the account exists"},
        400: {"description": "Invalid, used or expired token"},
    },
)
async def reset_password(
    body: Annotated[ResetRequest | ResetConfirm, Body()],
    request: Request,
    response: Response,
    session: SessionDep,
    state: StateDep,
    policy: AuthPolicyDep,
    mail_config: MailConfigDep,
) -> Message:
    """Request a password reset, or confirm one.

    ``{"email"}`` e-mails a single-use, expiring token (same answer whether or not the account exists).
    ``{"token", "new_password"}`` sets the password (also accepts an invitation); every session of the account ends.
    """
    if isinstance(body, ResetRequest):
        email = str(body.email).lower()
        await hit(state.limiter, "login", "reset:" + email)
        await hit(state.limiter, "login", "reset-ip:" + (client_ip(request) or "unknown"))
        try:
            sent = await service.request_reset(
                session,
                email=email,
                policy=policy,
                mail_config=mail_config,
                public_url=console_base(state.settings),
            )
        except MailError:
            raise ProblemError(
                503, "The mail server could not be reached; try again later.", type_="mail-failed"
            ) from None
        await audit.record(
            session, actor_for(request, None), "auth.reset_requested", target_type="account", detail={"sent": sent}
        )
        return Message(detail="If an active account has this e-mail, a reset token has been sent to it.")
    user, families = await service.confirm_reset(session, token=body.token, new_password=body.new_password)
    await mark_families_revoked(state, families)
    await audit.record(session, actor_for(request, user), "auth.password_reset", target_type="user", target_id=user.id)
    response.status_code = status.HTTP_200_OK
    return Message(detail="The password has been changed; sign in again.")
