"""Authentication schemas: sign-up, tokens (OAuth2 password-flow shape), refresh, logout, password reset."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field


class SignupRequest(BaseModel):
    """The first account (the admin), or any account when open sign-up is on."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=320)
    password: str = Field(min_length=1, max_length=256)
    full_name: str | None = Field(default=None, max_length=200)


class TokenResponse(BaseModel):
    """OAuth2 password-flow answer, plus the refresh token (and the CSRF token of a cookie session)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds the access token is valid.")
    refresh_token: str
    refresh_expires_in: int = Field(description="Seconds the refresh token is valid.")
    csrf_token: str | None = Field(
        default=None, description="With a cookie session: send it back in X-CSRF-Token on unsafe methods."
    )


class RefreshRequest(BaseModel):
    """A refresh token to rotate."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutRequest(BaseModel):
    """Optionally the refresh token of the login to revoke (the current login is always revoked)."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: str | None = Field(default=None, min_length=1, max_length=200)


class ResetRequest(BaseModel):
    """Ask for a password reset token by e-mail."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=320)


class ResetConfirm(BaseModel):
    """Set a new password with a reset or invitation token."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=256)


class Message(BaseModel):
    """A short confirmation."""

    detail: str
