"""Persona schemas: create, update (a new version) and public read."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Names under /api/personas/ that are routes, not personas.
RESERVED_NAMES = frozenset({"preview-voice"})


class PersonaCreate(BaseModel):
    """A new persona (version 1, active)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Stable slug.")
    display_name: str = Field(default="Ava", min_length=1, max_length=100, description="What the agent is called.")
    greeting: str = Field(min_length=1, max_length=2000, description="First thing the agent says.")
    consent_notice: str = Field(
        min_length=1, max_length=2000, description="Recording/consent notice spoken right after the greeting."
    )
    voice: str | None = Field(default=None, max_length=100, description="TTS voice name.")
    language: str = Field(default="en", min_length=2, max_length=16, description="Language code.")
    instructions: str = Field(default="", max_length=20_000, description="Behaviour instructions for LLM brains.")

    @field_validator("name")
    @classmethod
    def _not_a_route(cls, value: str) -> str:
        if value in RESERVED_NAMES:
            raise ValueError(f"'{value}' is taken by the API; choose another name")
        return value


class PersonaUpdate(BaseModel):
    """An edit: stored as a new version that becomes the active one. Omitted fields keep their value.

    Only ``voice`` may be null (the engine's default voice); a null for any other field is a validation error.
    """

    model_config = ConfigDict(extra="forbid")

    # ``None`` here only stands for "omitted" (read with ``model_dump(exclude_unset=True)``).
    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    greeting: str | None = Field(default=None, min_length=1, max_length=2000)
    consent_notice: str | None = Field(default=None, min_length=1, max_length=2000)
    voice: str | None = Field(default=None, max_length=100, description="TTS voice name; null: the default voice.")
    language: str | None = Field(default=None, min_length=2, max_length=16)
    instructions: str | None = Field(default=None, max_length=20_000)

    @field_validator("display_name", "greeting", "consent_notice", "language", "instructions", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs only for fields the request names (defaults are not validated), so omitting a field stays allowed.
        if value is None:
            raise ValueError("may be omitted but not null")
        return value


class PersonaPublic(BaseModel):
    """One stored persona version."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    version: int
    is_active: bool
    display_name: str
    greeting: str
    consent_notice: str
    voice: str | None
    language: str
    instructions: str
    created_by: str | None
    created_at: datetime


class PersonasPublic(BaseModel):
    """A list of persona versions."""

    items: list[PersonaPublic]
    count: int
