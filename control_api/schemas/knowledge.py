"""Knowledge base and RAG schemas."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from control_api.schemas.common import UTCDateTime
from knowledge.titles import display_title

DocumentStatus = Literal["pending", "processing", "ready", "failed"]


def clean_question(value: str) -> str:
    """A question as text: a NUL refused; other control characters (line breaks, tabs, escapes) become spaces.

    A question is logged, listed and shown back in the console: control characters there are never meant
    (a NUL is also refused by PostgreSQL text columns), so they stop at the edge.
    """
    if "\x00" in value:
        raise ValueError("The question contains a NUL character.")
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in value)
    text = " ".join(text.split())
    if not text:
        raise ValueError("The question is empty.")
    return text


Question = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(clean_question)]


class DocumentPublic(BaseModel):
    """A knowledge document and where its ingestion stands."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    filename: str
    title: str | None
    content_type: str | None
    source_url: str | None
    sha256: str
    size_bytes: int
    status: DocumentStatus
    error: str | None = Field(description="Why ingestion failed, written for the person who uploaded it.")
    pages: int | None
    chunk_count: int
    created_by: str | None
    created_at: UTCDateTime
    updated_at: UTCDateTime
    processed_at: UTCDateTime | None

    @model_validator(mode="after")
    def _readable_title(self) -> DocumentPublic:
        # The title a person reads (knowledge.titles.display_title): the stored one is the document's own title,
        # or its file name where it gives none (what keyword search reads), and null until the file is read.
        if self.title is not None:
            self.title = display_title(self.title, self.filename)
        return self


class DocumentsPublic(BaseModel):
    """A page of documents."""

    data: list[DocumentPublic]
    count: int = Field(description="Documents matching the filter, over all pages.")


class UploadedDocument(DocumentPublic):
    """A document an upload created, or the existing one with identical content."""

    duplicate: bool = Field(description="True when identical content was already uploaded (nothing new queued).")


class RejectedFile(BaseModel):
    """A file an upload or import refused, with the reason."""

    filename: str
    status: int
    reason: str


class UploadResult(BaseModel):
    """Per-file outcome of an upload or URL import."""

    documents: list[UploadedDocument]
    rejected: list[RejectedFile]


class ProcessRequest(BaseModel):
    """Which documents to (re)process: the ids given, or every failed document when ``document_ids`` is empty."""

    model_config = ConfigDict(extra="forbid")

    document_ids: list[str] = Field(default_factory=list, max_length=1000)


class ProcessResult(BaseModel):
    """Documents queued for processing."""

    queued: list[str]


class ImportUrlRequest(BaseModel):
    """A web page or a sitemap to import."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2048, pattern=r"^[hH][tT][tT][pP][sS]?://", description="http(s) URL.")


class DocumentStatusPublic(BaseModel):
    """Ingestion status of one document."""

    id: str
    status: DocumentStatus
    error: str | None
    chunk_count: int
    pages: int | None
    attempts: int = Field(description="Processing attempts of the latest job.")
    updated_at: UTCDateTime
    processed_at: UTCDateTime | None


class RagQueryRequest(BaseModel):
    """A question for the knowledge base."""

    model_config = ConfigDict(extra="forbid")

    question: Question
    top_k: int | None = Field(default=None, ge=1, le=20)


class PassagePublic(BaseModel):
    """One retrieved passage, with its citation (document, section or page, chunk)."""

    text: str
    score: float
    document_id: str
    chunk_id: str
    citation: str
    title: str | None
    heading: str | None
    page: int | None


class RagQueryResponse(BaseModel):
    """Retrieval result: ``found`` is False below the calibrated threshold ("I don't know")."""

    found: bool
    answer: str | None = Field(
        description="What the agent would say when found (the extractive brain's sentences from the best passage), "
        "else null."
    )
    passages: list[PassagePublic]
    latency_ms: float


class RagContextResponse(BaseModel):
    """The context block an LLM would get for a question."""

    found: bool
    context: str
    passages: list[PassagePublic]


class UnansweredPublic(BaseModel):
    """A question the knowledge base could not answer."""

    question: str
    count: int
    last_asked_at: UTCDateTime
    best_score: float | None
    typed: int = Field(0, description="Of ``count``, the times it was typed as a test in the console (no call)")


class UnansweredList(BaseModel):
    """Unanswered questions, most recent first."""

    data: list[UnansweredPublic]
    count: int


class KnowledgeCalibrationPublic(BaseModel):
    """The knowledge base's "not found" threshold and how it was derived (``knowledge/calibration.py``).

    ``source`` is ``calibrated`` when the threshold was derived from the base itself (questions made from its
    own passages against everyday off-topic questions), ``configured`` when the base is too small to calibrate
    or calibration is off (``knowledge.calibrate``): then ``knowledge.score_threshold`` applies.
    """

    threshold: float = Field(description="Below this best passage score a question is 'not found'.")
    source: Literal["calibrated", "configured"]
    configured_threshold: float = Field(description="knowledge.score_threshold (the fallback).")
    confirm_from: float = Field(
        description="A best passage from here up to the threshold is borderline: the desk asks the caller whether "
        "it is what they meant (knowledge.retrieval.CONFIRM_BAND under the threshold)."
    )
    current: bool = Field(
        default=True,
        description="False when documents were added or removed since it was derived: the threshold shown still "
        "rules until the re-calibration this request started (or one already running) ends.",
    )
    calibrating: bool = Field(default=False, description="A calibration is running now.")
    fingerprint: str | None = Field(
        default=None, description="Hash of the passages and embedding model it was derived from."
    )
    model_id: str | None = Field(default=None, description="The embedding model that scored it.")
    chunks: int | None = Field(default=None, description="Passages in the base when it was derived.")
    positives: int | None = Field(default=None, description="Questions made from the base's own passages.")
    negatives: int | None = Field(default=None, description="Off-topic questions.")
    positive_median: float | None = Field(default=None, description="Median score of the base's own questions.")
    negative_p95: float | None = Field(default=None, description="95th percentile score of the off-topic questions.")
    positive_rate: float | None = Field(
        default=None, description="Share of the base's own questions at or above the threshold."
    )
    negative_rate: float | None = Field(default=None, description="Share of the off-topic questions below it.")
    calibrated_at: str | None = Field(default=None, description="When it was derived (ISO 8601, UTC).")
