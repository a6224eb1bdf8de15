"""SOP generator schemas: create from a gap or a topic, edit, approve."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from control_api.schemas.common import UTCDateTime


class SopCreate(BaseModel):
    """Draft a procedure from the calls of a knowledge gap, or of a search topic."""

    model_config = ConfigDict(extra="forbid")

    gap_id: str | None = Field(default=None, max_length=36)
    topic: str | None = Field(default=None, min_length=3, max_length=300)
    title: str | None = Field(default=None, min_length=3, max_length=200)
    max_calls: int = Field(default=50, ge=1, le=500)

    @model_validator(mode="after")
    def _one_source(self) -> SopCreate:
        if (self.gap_id is None) == (self.topic is None):
            raise ValueError("give either gap_id or topic")
        return self


class SopStep(BaseModel):
    """One step, with the calls (and turns) it was seen in."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2000)
    kind: Literal["answer", "tool", "escalation", "manual"] = "manual"
    calls: list[str] = Field(default_factory=list, max_length=500)
    turns: list[dict[str, Any]] = Field(default_factory=list, max_length=500)
    chunk_id: str | None = Field(default=None, max_length=64)
    count: int = 0


class SopUpdate(BaseModel):
    """Edit a draft; omitted fields keep their value."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=3, max_length=200)
    steps: list[SopStep] | None = Field(default=None, max_length=100)


class SopPublic(BaseModel):
    """A procedure draft (``generator`` ``offline``: assembled from the calls, no model wrote it)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    topic: str
    gap_id: str | None
    status: Literal["draft", "approved"]
    generator: str
    steps: list[SopStep]
    passages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    escalations: list[dict[str, Any]]
    call_ids: list[str]
    version: int
    document_id: str | None
    created_by: str | None
    approved_by: str | None
    approved_at: UTCDateTime | None
    created_at: UTCDateTime
    updated_at: UTCDateTime


class SopListPublic(BaseModel):
    """Procedures, newest first."""

    items: list[SopPublic]
