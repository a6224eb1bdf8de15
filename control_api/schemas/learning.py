"""Autonomous learning schemas: knowledge gaps (clusters of questions), approval with the final entry."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from control_api.schemas.common import UTCDateTime


class SourcePublic(BaseModel):
    """A knowledge passage a draft was assembled from."""

    chunk_id: str
    document_id: str
    citation: str
    heading: str | None = None
    score: float | None = None


class GapQuestionPublic(BaseModel):
    """One logged question and the call it came from."""

    question: str
    call_id: str | None
    reason: Literal["unanswered", "low_confidence", "handed_off"]
    score: float | None = None
    asked_at: UTCDateTime


class GapPublic(BaseModel):
    """A knowledge gap: its questions, how often and when last asked, the calls, a draft FAQ entry."""

    id: str
    status: Literal["open", "approved", "dismissed"]
    question: str = Field(description="The most common phrasing.")
    count: int
    calls: int
    last_asked_at: UTCDateTime | None
    reasons: dict[str, int]
    questions: list[GapQuestionPublic]
    draft_answer: str | None = Field(description="A DRAFT assembled from the closest passages; review before use.")
    draft_sources: list[SourcePublic]
    final_question: str | None = None
    final_answer: str | None = None
    document_id: str | None = None
    version: int
    decided_by: str | None = None
    decided_at: UTCDateTime | None = None
    coverage: dict[str, Any] = Field(default_factory=dict, description="Questions answered before → after approval.")


class GapListPublic(BaseModel):
    """Knowledge gaps, most asked first."""

    items: list[GapPublic]


class GapApprove(BaseModel):
    """The final FAQ entry, as the supervisor wrote or accepted it."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=3, max_length=300)
    answer: str = Field(min_length=3, max_length=5000)
