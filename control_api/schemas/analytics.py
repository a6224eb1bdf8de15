"""Dashboard and analytics answers."""

from __future__ import annotations

from pydantic import BaseModel, Field

from control_api.schemas.common import UTCDateTime


class Distribution(BaseModel):
    """Nearest-rank percentiles of a series (null when it has no values)."""

    count: int
    mean: float | None
    p50: float | None
    p95: float | None


class SentimentMix(BaseModel):
    """Calls per sentiment label."""

    positive: int
    neutral: int
    negative: int
    unscored: int = 0


class DashboardStats(BaseModel):
    """Live calls and today's (UTC) figures."""

    as_of: UTCDateTime
    since: UTCDateTime = Field(description="Start of today (UTC)")
    live_calls: int
    calls_today: int
    ended_today: int
    contained_today: int = Field(description="Ended calls whose every question was answered, with no handoff")
    unanswered_today: int = Field(description="Ended calls with a question the knowledge base did not answer")
    containment_rate: float | None = Field(
        description="Contained calls / ended calls (every question answered from the base, no handoff or callback)"
    )
    handoff_rate: float | None = Field(description="Ended calls handed to a person or left for a callback / ended")
    average_handle_time_ms: float | None
    latency_p50_ms: float | None = Field(description="Voice-to-voice latency per turn, median")
    latency_p95_ms: float | None
    latency_turns: int
    sentiment_mix: SentimentMix
    callbacks_waiting: int = Field(description="Callback requests not done yet, whatever day they were made")
    oldest_callback_wait_s: float | None = Field(description="How long the oldest of them has waited")


class VolumeBucket(BaseModel):
    """Calls started in one hour or day (UTC)."""

    bucket: str
    calls: int
    handed_off: int = Field(description="Handed to a person or left for a callback")
    resolved: int = Field(description="Contained: every question answered from the base, no handoff")
    outcomes: dict[str, int] = Field(default_factory=dict, description="Calls per outcome (live: not ended)")


class DurationHistogram(BaseModel):
    """Calls per handle-time band."""

    lt_1m: int = Field(alias="<1m")
    m1_3: int = Field(alias="1-3m")
    m3_10: int = Field(alias="3-10m")
    gt_10m: int = Field(alias=">10m")

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class CallsReport(BaseModel):
    """Volume by time, channel, direction and outcome; handle times."""

    since: UTCDateTime
    until: UTCDateTime
    bucket: str
    total: int
    volume: list[VolumeBucket]
    by_hour_of_day: list[int] = Field(description="Calls started in each UTC hour of the day, 0 to 23")
    by_channel: dict[str, int]
    by_direction: dict[str, int]
    by_outcome: dict[str, int]
    duration_ms: Distribution
    duration_histogram: DurationHistogram


class SentimentBucket(BaseModel):
    """Scored calls in one hour or day, their mean and label counts."""

    bucket: str
    scored_calls: int
    mean: float | None
    positive: int
    neutral: int
    negative: int


class CallSentiment(BaseModel):
    """One call's mean caller sentiment."""

    call_id: str
    started_at: UTCDateTime
    sentiment: float | None
    label: str | None
    outcome: str | None


class SentimentReport(BaseModel):
    """Caller sentiment (VADER compound score per caller turn, averaged per call)."""

    since: UTCDateTime
    until: UTCDateTime
    bucket: str
    mix: dict[str, int]
    mean: float | None
    scored_turns: int
    turn_mean: float | None
    trend: list[SentimentBucket]
    most_negative_calls: list[CallSentiment]


class ASRConfidence(BaseModel):
    """Recogniser confidence over caller turns."""

    turns: int
    mean: float | None
    p50: float | None


class PerformanceReport(BaseModel):
    """Latency per stage, barge-ins, ASR confidence, answer coverage, first-contact resolution."""

    since: UTCDateTime
    until: UTCDateTime
    latency_ms: dict[str, Distribution] = Field(description="total, vad, asr, retrieval, llm, tts")
    calls: int
    barge_ins: int
    barge_ins_per_call: float | None
    agent_turns: int
    interrupted_turn_rate: float | None
    asr_confidence: ASRConfidence
    knowledge_queries: int = Field(description="Callers' knowledge queries (typed test questions left out)")
    answer_coverage: float | None = Field(description="Callers' knowledge queries answered above the score threshold")
    test_queries: int = Field(0, description="Questions typed in the console's Test a question box (not counted)")
    first_contact_resolution: float | None = Field(description="Resolved calls without a repeat call within 7 days")
    resolved_calls_with_caller_id: int


class LatencyBucket(BaseModel):
    """Mean voice latency per stage of the turns in one hour or day (ms)."""

    bucket: str
    turns: int
    total: float | None
    vad: float | None
    asr: float | None
    retrieval: float | None
    llm: float | None
    tts: float | None


class UnansweredBucket(BaseModel):
    """Questions asked and not answered in one hour or day."""

    bucket: str
    questions: int = Field(description="Caller questions on ended calls started in the bucket")
    unanswered: int = Field(description="Of those, the ones no agent turn answered from the knowledge base")
    calls_with_unanswered: int
    queries_not_found: int = Field(description="Callers' knowledge queries that found nothing (typed tests left out)")


class HandoffReason(BaseModel):
    """Handoffs asked for by one trigger."""

    source: str = Field(description="phrase | tool | not_found | sentiment | dtmf | api | unknown")
    count: int


class Topic(BaseModel):
    """A knowledge section that answered queries."""

    topic: str
    document: str
    count: int


class TrendsReport(BaseModel):
    """Latency per stage and unanswered questions over time, handoff reasons, top topics."""

    since: UTCDateTime
    until: UTCDateTime
    bucket: str
    latency: list[LatencyBucket]
    unanswered: list[UnansweredBucket]
    handoff_reasons: list[HandoffReason]
    top_topics: list[Topic]


class CallOutcomeReport(BaseModel):
    """A call's outcome by the containment rule and the counts behind it (no transcript text: that read is audited)."""

    call_id: str
    outcome: str | None = Field(description="null while the call is live")
    questions: int = Field(description="Questions the caller asked (consecutive caller turns are one)")
    unanswered: int = Field(description="Of those, the ones no agent turn answered from the knowledge base")
