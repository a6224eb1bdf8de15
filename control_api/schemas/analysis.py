"""Post-call analysis schemas: the analysis of a call, and operator-defined fields per persona."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from control_api import user_patterns
from control_api.schemas.common import UTCDateTime

Outcome = Literal["resolved_by_ai", "handed_off", "callback_requested", "abandoned", "failed"]
FieldKind = Literal["text", "number", "boolean", "choice"]


class ExchangePublic(BaseModel):
    """One caller question and what came of it."""

    question: str
    answered: bool
    answer: str | None = None
    citations: list[str] = Field(default_factory=list)


class TopicPublic(BaseModel):
    """A question mapped to the knowledge-base section it was answered from (``citation``) or came nearest to."""

    question: str
    answered: bool
    heading: str | None = None
    title: str | None = None
    document_id: str | None = None
    chunk_id: str | None = None
    via: Literal["citation", "retrieval"] | None = None
    score: float | None = None


class CallAnalysisPublic(BaseModel):
    """A call's analysis, or its queued job (``status``); the results are empty until the first run."""

    model_config = ConfigDict(from_attributes=True)

    call_id: str
    status: Literal["queued", "running", "done", "failed"]
    error: str | None = None
    attempts: int
    runs: int
    generator: str = Field(description="``extractive``: assembled offline from the transcript, no model wrote it.")
    requested_at: UTCDateTime
    analysed_at: UTCDateTime | None = None
    summary: str | None = None
    outcome: Outcome | None = None
    exchanges: list[ExchangePublic] = Field(default_factory=list)
    topics: list[TopicPublic] = Field(default_factory=list)
    unanswered: list[str] = Field(default_factory=list)
    sentiment: dict[str, Any] = Field(default_factory=dict)
    fields: dict[str, Any] = Field(default_factory=dict)


class AnalysisFieldCreate(BaseModel):
    """Define a field to extract from every call of a persona."""

    model_config = ConfigDict(extra="forbid")

    persona: str = Field(default="default", min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z][A-Za-z0-9_ ]*$")
    kind: FieldKind
    description: str = Field(default="", max_length=500)
    patterns: list[str] = Field(
        default_factory=list, max_length=10, description="Regular expressions; the first group (or match) is the value."
    )
    choices: list[str] = Field(
        default_factory=list, max_length=50, description="For ``choice``; empty: the knowledge base's section headings."
    )

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            user_patterns.check(pattern)
        return value

    @model_validator(mode="after")
    def _choices_for_choice(self) -> AnalysisFieldCreate:
        if self.choices and self.kind != "choice":
            raise ValueError("choices are for fields of kind choice")
        return self


class AnalysisFieldPublic(BaseModel):
    """A field definition."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    persona_name: str
    name: str
    kind: FieldKind
    description: str
    patterns: list[str]
    choices: list[str]
    created_at: UTCDateTime


class AnalysisFieldListPublic(BaseModel):
    """Field definitions."""

    items: list[AnalysisFieldPublic]
