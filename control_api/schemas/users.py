"""Account schemas: create (invite), update, public read."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from control_api.rbac import Role
from control_api.schemas.common import UTCDateTime

NameField = Field(default=None, max_length=200, description="Display name.")


class UserCreate(BaseModel):
    """A new account made by an administrator: with a password, or invited by e-mail to choose one."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=320)
    role: Role = Field(description="admin, supervisor, agent or viewer.")
    full_name: str | None = NameField
    password: str | None = Field(
        default=None, min_length=1, max_length=256, description="Omit to e-mail an invitation instead."
    )


class UserUpdate(BaseModel):
    """Changes to an account; omitted fields keep their value. Only administrators may change ``role``/``is_active``."""

    model_config = ConfigDict(extra="forbid")

    full_name: str | None = NameField
    role: Role | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=1, max_length=256, description="A new password.")
    current_password: str | None = Field(
        default=None, max_length=256, description="Your current password: required to change your own password."
    )


class UserPublic(BaseModel):
    """An account as the API shows it (never the password hash)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    full_name: str | None
    role: str
    is_active: bool
    created_at: UTCDateTime
    last_login_at: UTCDateTime | None


class UsersPublic(BaseModel):
    """A page of accounts."""

    items: list[UserPublic]
    count: int


class MePublic(UserPublic):
    """The signed-in account with what its role allows."""

    permissions: list[str]
