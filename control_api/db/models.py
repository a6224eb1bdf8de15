"""SQLAlchemy 2.0 models for the whole product.

Both SQLite and PostgreSQL are supported: ids are UUID strings for entities and auto-increment
integers for append-only rows (turns, events, audit). Enumerations are plain strings validated by the
API schemas (``control_api.db.enums``), so adding a value never needs a table rebuild on SQLite.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Naming conventions give every constraint a stable name, which Alembic needs on SQLite batch mode.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new random UUID as a string."""
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp stored in UTC, read back aware on every database.

    SQLite keeps no zone: values are converted to UTC before they are written (so comparisons with a
    ``+05:30`` filter are right) and marked UTC when read (so the API never sends a zone-less time).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Normalise to UTC (naive values are taken as UTC)."""
        if value is None:
            return None
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Mark zone-less values (SQLite) as UTC."""
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base with naming conventions and JSON mapping."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute as-is
        dict[str, Any]: JSON,
        list[str]: JSON,
        datetime: UTCDateTime(),
    }


class User(Base):
    """An account: admin, supervisor, human agent or viewer."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    full_name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default="viewer")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_login_at: Mapped[datetime | None]


class RefreshToken(Base):
    """A refresh token (hash only). Tokens of one login share a family; reuse revokes the family."""

    __tablename__ = "refresh_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="refresh")  # refresh | session
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))


class PasswordResetToken(Base):
    """A single-use, expiring password reset or invitation token (hash only)."""

    __tablename__ = "password_reset_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(20), default="reset")  # reset | invite
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class Persona(Base):
    """A versioned agent persona: every edit is a new row; one version per name is active."""

    __tablename__ = "personas"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_personas_name_version"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    display_name: Mapped[str] = mapped_column(String(100), default="Ava")
    greeting: Mapped[str] = mapped_column(Text)
    consent_notice: Mapped[str] = mapped_column(Text)
    voice: Mapped[str | None] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(16), default="en")
    instructions: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Call(Base):
    """One call, from the first packet to its end; never deleted, only anonymised."""

    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_started_at", "started_at"),
        Index("ix_calls_status_started", "status", "started_at"),
        # First-contact resolution walks each caller's calls in time order.
        Index("ix_calls_caller_number_started", "caller_number", "started_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    channel: Mapped[str] = mapped_column(String(20))  # webrtc | sip | websocket | telephony | livekit
    direction: Mapped[str] = mapped_column(String(10), default="inbound")
    status: Mapped[str] = mapped_column(
        String(20), default="ringing"
    )  # ringing|active|on_hold|transferred|ended|failed
    outcome: Mapped[str | None] = mapped_column(String(20))  # resolved | handed_off | abandoned | failed
    end_reason: Mapped[str | None] = mapped_column(String(100))
    caller_number: Mapped[str | None] = mapped_column(String(64), index=True)
    caller_email: Mapped[str | None] = mapped_column(String(320), index=True)
    caller_name: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    persona_id: Mapped[str | None] = mapped_column(ForeignKey("personas.id", ondelete="SET NULL"))
    agent_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    consent_recording: Mapped[bool | None] = mapped_column(Boolean)
    disposition: Mapped[str | None] = mapped_column(String(100))
    notes: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(default=list)
    sentiment: Mapped[float | None] = mapped_column(Float)
    sentiment_label: Mapped[str | None] = mapped_column(String(10))
    latency_p50_ms: Mapped[float | None] = mapped_column(Float)
    latency_p95_ms: Mapped[float | None] = mapped_column(Float)
    anonymised_at: Mapped[datetime | None]
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)

    turns: Mapped[list[CallTurn]] = relationship(back_populates="call", order_by="CallTurn.seq", lazy="raise")


class CallTurn(Base):
    """One utterance of the transcript, written the moment it ends (PII redacted before storage)."""

    __tablename__ = "call_turns"
    __table_args__ = (
        UniqueConstraint("call_id", "seq", name="uq_call_turns_call_seq"),
        # Analytics read turns by speaker and time (ASR confidence, interruptions, sentiment trend).
        Index("ix_call_turns_role_ended_at", "role", "ended_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(10))  # caller | agent | human | system
    text: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime] = mapped_column(default=utcnow)
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)
    asr_confidence: Mapped[float | None] = mapped_column(Float)
    sentiment: Mapped[float | None] = mapped_column(Float)
    citations: Mapped[list[str]] = mapped_column(default=list)

    call: Mapped[Call] = relationship(back_populates="turns", lazy="raise")


class CallEvent(Base):
    """A timed event of a call: per-turn latency with the stage split, barge-in, tool call, handoff, error."""

    __tablename__ = "call_events"
    __table_args__ = (Index("ix_call_events_kind_at", "kind", "at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # latency|barge_in|tool_call|tool_result|handoff|error|status
    turn_seq: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    total_ms: Mapped[float | None] = mapped_column(Float)
    vad_ms: Mapped[float | None] = mapped_column(Float)
    asr_ms: Mapped[float | None] = mapped_column(Float)
    retrieval_ms: Mapped[float | None] = mapped_column(Float)
    llm_ms: Mapped[float | None] = mapped_column(Float)
    tts_ms: Mapped[float | None] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Recording(Base):
    """A call recording file (kept only with consent, purged by the retention job)."""

    __tablename__ = "recordings"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(1024))
    format: Mapped[str] = mapped_column(String(10), default="wav")
    channels: Mapped[int] = mapped_column(Integer, default=2)
    sample_rate: Mapped[int] = mapped_column(Integer, default=16000)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]


class KnowledgeDocument(Base):
    """An uploaded or imported document; the original is stored before the upload is acknowledged."""

    __tablename__ = "knowledge_documents"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(100))
    source_url: Mapped[str | None] = mapped_column(String(2048))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    storage_path: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)  # pending|processing|ready|failed
    error: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(String(500))
    pages: Mapped[int | None] = mapped_column(Integer)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    # The model that embedded the chunks; the vector index is rebuilt from these embeddings only while it is current.
    embedding_model: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    processed_at: Mapped[datetime | None]


class KnowledgeChunk(Base):
    """A retrievable chunk of a document: the one record of its text, citation fields and embedding.

    The vector store is an index rebuilt from these rows (``control_api.services.ingestion_index``).
    """

    __tablename__ = "knowledge_chunks"
    __table_args__ = (UniqueConstraint("document_id", "seq", name="uq_knowledge_chunks_doc_seq"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("knowledge_documents.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    heading: Mapped[str | None] = mapped_column(String(500))
    page: Mapped[int | None] = mapped_column(Integer)
    token_count: Mapped[int] = mapped_column(Integer, default=0)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IngestionJob(Base):
    """An idempotent, resumable ingestion job for one document."""

    __tablename__ = "ingestion_jobs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    document_id: Mapped[str] = mapped_column(ForeignKey("knowledge_documents.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)  # queued|running|done|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class RagQuery(Base):
    """Every knowledge-base query with its top score, for reviewing unanswered questions."""

    __tablename__ = "rag_queries"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    question: Mapped[str] = mapped_column(Text)
    found: Mapped[bool] = mapped_column(Boolean)
    top_score: Mapped[float | None] = mapped_column(Float)
    top_chunk_id: Mapped[str | None] = mapped_column(String(64))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Integration(Base):
    """A configured external system (ticketing, webhook, chat)."""

    __tablename__ = "integrations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(40))  # webhook | freshdesk | zendesk | slack | ...
    name: Mapped[str] = mapped_column(String(100), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secret: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Issue 18 (revision 0007): when the current outage began (a delivery went dead or the breaker opened);
    # None while deliveries succeed. ``integration.failing`` is emitted once per outage, when it is set.
    failing_since: Mapped[datetime | None]


class IntegrationRun(Base):
    """One request to an integration (ticket created, webhook posted), with its outcome."""

    __tablename__ = "integration_runs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    integration_id: Mapped[str | None] = mapped_column(ForeignKey("integrations.id", ondelete="SET NULL"), index=True)
    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"), index=True)
    action: Mapped[str] = mapped_column(String(40))  # create_ticket | notify | ...
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | succeeded | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    response: Mapped[dict[str, Any]] = mapped_column(default=dict)
    external_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    # The outbox delivery this attempt belongs to (None for runs recorded outside the outbox).
    delivery_id: Mapped[str | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"), index=True)
    response_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)


class OutboxDelivery(Base):
    """A delivery owed to an integration, written in the transaction of the event that causes it.

    The dispatcher claims ``pending`` rows whose ``next_attempt_at`` has come (and ``in_flight`` rows whose
    lease ran out: their process died mid-send), sends them, and marks them ``delivered``, schedules a retry,
    or moves them to ``dead`` after the last attempt.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(60))  # call.started | call.ended | ticket.create | ...
    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|in_flight|delivered|dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # An earlier attempt may have reached the system: look for its result before creating again.
    ambiguous: Mapped[bool] = mapped_column(Boolean, default=False)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class Handoff(Base):
    """A warm transfer of a call to a human agent."""

    __tablename__ = "handoffs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="requested", index=True)
    # requested | ringing | accepted | connected | completed | declined | timed_out | cancelled
    reason: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    queue: Mapped[str] = mapped_column(String(50), default="default")
    agent_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # --- live handoff (issue 19, migration 0006); statuses then: queued | accepted | completed | timed_out |
    # declined | no_agents | abandoned | failed (``requested`` remains for rows written before it) ---
    priority: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str | None] = mapped_column(String(20))  # phrase | tool | not_found | sentiment | dtmf | api
    briefing: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    offered_to: Mapped[list[str]] = mapped_column(default=list)
    declined_by: Mapped[list[str]] = mapped_column(default=list)
    timeline: Mapped[list[Any]] = mapped_column(JSON, default=list)
    notes: Mapped[str | None] = mapped_column(Text)
    disposition: Mapped[str | None] = mapped_column(String(100))
    node: Mapped[str | None] = mapped_column(String(200))


# --- live handoff (issue 19): agents' presence, callback requests, per-persona trigger policy ---


class AgentPresence(Base):
    """Whether a human agent takes handoffs now (``available``), is on one (``busy``) or is away."""

    __tablename__ = "agent_presence"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(10), default="away")  # available | busy | away
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CallbackRequest(Base):
    """A caller to call back: nobody took their handoff (timeout, every agent declined, nobody available)."""

    __tablename__ = "callback_requests"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"), index=True)
    handoff_id: Mapped[str | None] = mapped_column(ForeignKey("handoffs.id", ondelete="SET NULL"), index=True)
    phone: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(20))  # timed_out | declined | no_agents
    briefing: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | done (claimed: open with claimed_by)
    ticket_delivery_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # --- the callback work queue (migration 0011) ---
    claimed_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    claimed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    completed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(20))  # reached | no_answer | voicemail | wrong_number | ...
    note: Mapped[str | None] = mapped_column(Text)


class HandoffPolicy(Base):
    """One persona's handoff triggers: which are on and their thresholds (JSON; defaults when absent)."""

    __tablename__ = "handoff_policies"
    persona_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditLog(Base):
    """Append-only audit trail: every mutation and every sensitive read."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_user_id: Mapped[str | None] = mapped_column(String(36), index=True)
    actor_role: Mapped[str | None] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(80), index=True)
    target_type: Mapped[str | None] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(20), default="success")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Consent(Base):
    """What the caller was told and whether they consented to recording."""

    __tablename__ = "consents"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"), index=True)
    subject_phone: Mapped[str | None] = mapped_column(String(64), index=True)
    subject_email: Mapped[str | None] = mapped_column(String(320), index=True)
    notice_text: Mapped[str] = mapped_column(Text)
    recording: Mapped[bool] = mapped_column(Boolean, default=False)
    given_at: Mapped[datetime] = mapped_column(default=utcnow)
    withdrawn_at: Mapped[datetime | None]


class DataSubjectRequest(Base):
    """A data-subject request (export, correction, erasure) with its status."""

    __tablename__ = "data_subject_requests"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(20))  # export | correction | erasure
    subject_phone: Mapped[str | None] = mapped_column(String(64), index=True)
    subject_email: Mapped[str | None] = mapped_column(String(320), index=True)
    status: Mapped[str] = mapped_column(String(20), default="received")  # received|in_progress|completed|rejected
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    requested_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]


class Incident(Base):
    """An operational or security incident; personal-data breaches carry the 72-hour notification clock."""

    __tablename__ = "incidents"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(20), default="operational")  # operational | security
    severity: Mapped[str] = mapped_column(String(10), default="medium")  # low | medium | high | critical
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | mitigated | resolved
    personal_data_breach: Mapped[bool] = mapped_column(Boolean, default=False)
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)
    notify_by: Mapped[datetime | None]
    notified_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class VoiceProfile(Base):
    """Voice preferences of a user or a caller (keyed by user id or caller number)."""

    __tablename__ = "voice_profiles"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    language: Mapped[str] = mapped_column(String(16), default="en")
    voice: Mapped[str | None] = mapped_column(String(100))
    speaking_rate: Mapped[float] = mapped_column(Float, default=1.0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- console analytics (issue 21, migration 0008): each ended call's outcome, by the one containment rule ---


class CallOutcome(Base):
    """An ended call's outcome as the analytics read it (``control_api.services.analytics.classify``).

    A cache of the one rule, written once per ended call (a minute after its end, when its last turn is stored),
    so reports over 100 000 calls do not re-read every transcript. ``questions``/``unanswered`` count the caller's
    questions and those no agent turn answered from the knowledge base (``services.summary.exchanges``).
    """

    __tablename__ = "call_outcomes"
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(20))  # resolved|unanswered|handed_off|callback|abandoned|...
    questions: Mapped[int] = mapped_column(Integer, default=0)
    unanswered: Mapped[int] = mapped_column(Integer, default=0)
    # False while the call ended less than a minute before: its last turns may not be stored yet (read again).
    settled: Mapped[bool] = mapped_column(Boolean, default=False)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- post-call analysis, autonomous learning and SOPs (issue 20, migration 0005) ---


class CallAnalysis(Base):
    """The analysis of one ended call; the row is also its durable job (``queued`` until a worker takes it).

    ``due_at`` leaves the call's last turns time to be stored; a ``running`` row left by a dead process is
    queued again on the next start (``control_api.services.analysis_jobs``).
    """

    __tablename__ = "call_analyses"
    __table_args__ = (Index("ix_call_analyses_status_due_at", "status", "due_at"),)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued | running | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    analysed_at: Mapped[datetime | None]
    runs: Mapped[int] = mapped_column(Integer, default=0)
    generator: Mapped[str] = mapped_column(String(20), default="extractive")
    summary: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(30), index=True)
    exchanges: Mapped[list[Any]] = mapped_column(JSON, default=list)
    topics: Mapped[list[Any]] = mapped_column(JSON, default=list)
    unanswered: Mapped[list[str]] = mapped_column(default=list)
    sentiment: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AnalysisField(Base):
    """An operator-defined field extracted from each call of a persona (``order number``, ``wants to cancel``)."""

    __tablename__ = "analysis_fields"
    __table_args__ = (UniqueConstraint("persona_name", "name", name="uq_analysis_fields_persona_name"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    persona_name: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(10))  # text | number | boolean | choice
    description: Mapped[str] = mapped_column(Text, default="")
    patterns: Mapped[list[str]] = mapped_column(default=list)
    choices: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class KnowledgeGap(Base):
    """A cluster of questions the agent could not answer (or answered weakly, or handed off), by meaning."""

    __tablename__ = "knowledge_gaps"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)  # open | approved | dismissed
    centroid: Mapped[bytes] = mapped_column(LargeBinary)  # float32 unit vector of the embedder
    draft_answer: Mapped[str | None] = mapped_column(Text)
    draft_sources: Mapped[list[Any]] = mapped_column(JSON, default=list)
    final_question: Mapped[str | None] = mapped_column(Text)
    final_answer: Mapped[str | None] = mapped_column(Text)
    document_id: Mapped[str | None] = mapped_column(ForeignKey("knowledge_documents.id", ondelete="SET NULL"))
    version: Mapped[int] = mapped_column(Integer, default=0)
    decided_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None]
    coverage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GapQuestion(Base):
    """One logged question of a knowledge gap, with the call it came from."""

    __tablename__ = "gap_questions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    gap_id: Mapped[str] = mapped_column(ForeignKey("knowledge_gaps.id", ondelete="CASCADE"), index=True)
    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    question: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(20))  # unanswered | low_confidence | handed_off
    score: Mapped[float | None] = mapped_column(Float)
    asked_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Sop(Base):
    """A standard operating procedure drafted from calls about one need; approved, it becomes a document."""

    __tablename__ = "sops"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(200))
    topic: Mapped[str] = mapped_column(Text)
    gap_id: Mapped[str | None] = mapped_column(ForeignKey("knowledge_gaps.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), default="draft")  # draft | approved
    generator: Mapped[str] = mapped_column(String(20), default="offline")
    steps: Mapped[list[Any]] = mapped_column(JSON, default=list)
    passages: Mapped[list[Any]] = mapped_column(JSON, default=list)
    tools: Mapped[list[Any]] = mapped_column(JSON, default=list)
    escalations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    call_ids: Mapped[list[str]] = mapped_column(default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    document_id: Mapped[str | None] = mapped_column(ForeignKey("knowledge_documents.id", ondelete="SET NULL"))
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    approved_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    approved_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
