"""Voice profile schemas: a user's or caller's voice preferences."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class VoiceProfileUpdate(BaseModel):
    """Replace the voice preferences (omitted fields take their defaults)."""

    model_config = ConfigDict(extra="forbid")

    language: str = Field(default="en", min_length=2, max_length=16, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]+)*$")
    voice: str | None = Field(default=None, max_length=100, description="TTS voice name; null: the persona's.")
    speaking_rate: float = Field(default=1.0, ge=0.5, le=2.0, description="Speaking rate multiplier.")


class VoiceProfilePublic(BaseModel):
    """Stored voice preferences (defaults when nothing is stored yet: ``updated_at`` is null)."""

    model_config = ConfigDict(from_attributes=True)

    user_id: str
    language: str
    voice: str | None
    speaking_rate: float
    updated_at: datetime | None
