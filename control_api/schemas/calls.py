"""Call schemas: register, annotate (notes, disposition, tags), public read, transcript."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from control_api.schemas.common import UTCDateTime

Channel = Literal["webrtc", "sip", "websocket", "telephony", "livekit", "api"]
# A call's outcome by the one rule (``services.analytics.classify``): what the calls list shows and filters on.
Outcome = Literal["resolved", "unanswered", "handed_off", "callback", "abandoned", "not_connected", "failed"]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=40, strip_whitespace=True)]


class CallCreate(BaseModel):
    """Register a call (the voice side uses the same service)."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel
    direction: Literal["inbound", "outbound"] = "inbound"
    caller_number: str | None = Field(default=None, max_length=32, pattern=r"^\+?[0-9][0-9 ().-]{2,30}$")
    caller_email: EmailStr | None = Field(default=None, max_length=320)
    caller_name: str | None = Field(default=None, max_length=200)
    agent_user_id: str | None = Field(default=None, max_length=36, description="The human agent who took the call.")
    consent_recording: bool | None = Field(default=None, description="Whether the caller agreed to recording.")


class CallUpdate(BaseModel):
    """Wrap-up fields; omitted fields keep their value."""

    model_config = ConfigDict(extra="forbid")

    notes: str | None = Field(default=None, max_length=10_000)
    disposition: str | None = Field(default=None, max_length=100)
    tags: list[Tag] | None = Field(default=None, max_length=20)


class CallPublic(BaseModel):
    """A call as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    channel: str
    direction: str
    status: str
    outcome: str | None
    end_reason: str | None
    caller_number: str | None
    caller_email: str | None
    caller_name: str | None
    started_at: UTCDateTime
    answered_at: UTCDateTime | None
    ended_at: UTCDateTime | None
    duration_ms: int | None
    persona_id: str | None
    agent_user_id: str | None
    consent_recording: bool | None
    disposition: str | None
    notes: str | None
    tags: list[str]
    sentiment: float | None
    sentiment_label: str | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    anonymised_at: UTCDateTime | None
    has_recording: bool = False


class CallPagePublic(BaseModel):
    """Newest first; pass ``next_cursor`` as ``cursor`` for the next page (null at the end)."""

    items: list[CallPublic]
    next_cursor: str | None


class TurnPublic(BaseModel):
    """One transcript turn (PII already redacted when stored)."""

    model_config = ConfigDict(from_attributes=True)

    seq: int
    role: str
    text: str
    started_at: UTCDateTime | None
    ended_at: UTCDateTime
    interrupted: bool
    asr_confidence: float | None
    sentiment: float | None
    citations: list[str]


class LatencyPublic(BaseModel):
    """Voice latency of one turn with its stage split (ms)."""

    model_config = ConfigDict(from_attributes=True)

    turn_seq: int | None
    total_ms: float | None
    vad_ms: float | None
    asr_ms: float | None
    retrieval_ms: float | None
    llm_ms: float | None
    tts_ms: float | None


class TranscriptPublic(BaseModel):
    """The whole transcript of a call and the latency of each turn."""

    call_id: str
    turns: list[TurnPublic]
    latency: list[LatencyPublic]
