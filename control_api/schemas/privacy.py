"""Personal-data schemas: consents, data-subject requests, retention."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator

from control_api.schemas.common import UTCDateTime

Phone = Field(default=None, max_length=32, pattern=r"^\+?[0-9][0-9 ().-]{2,30}$")


class ConsentCreate(BaseModel):
    """What a caller was told and whether they agreed to recording."""

    model_config = ConfigDict(extra="forbid")

    notice_text: str = Field(min_length=1, max_length=2000)
    recording: bool
    call_id: str | None = Field(default=None, max_length=36)
    subject_phone: str | None = Phone
    subject_email: EmailStr | None = Field(default=None, max_length=320)


class ConsentPublic(BaseModel):
    """A consent record."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    call_id: str | None
    subject_phone: str | None
    subject_email: str | None
    notice_text: str
    recording: bool
    given_at: UTCDateTime
    withdrawn_at: UTCDateTime | None


class ConsentsPublic(BaseModel):
    """Consent records, newest first."""

    items: list[ConsentPublic]


class Correction(BaseModel):
    """Corrected identifiers of a data subject."""

    model_config = ConfigDict(extra="forbid")

    caller_name: str | None = Field(default=None, min_length=1, max_length=200)
    caller_number: str | None = Phone
    caller_email: EmailStr | None = Field(default=None, max_length=320)


class DataRequestCreate(BaseModel):
    """A data-subject request by phone number and/or e-mail."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["export", "correction", "erasure"]
    subject_phone: str | None = Phone
    subject_email: EmailStr | None = Field(default=None, max_length=320)
    correction: Correction | None = Field(default=None, description="Required for kind=correction")

    @model_validator(mode="after")
    def _check(self) -> DataRequestCreate:
        if not self.subject_phone and not self.subject_email:
            raise ValueError("give subject_phone or subject_email")
        if self.kind == "correction" and (self.correction is None or not self.correction.model_dump(exclude_none=True)):
            raise ValueError("a correction needs at least one corrected field")
        return self


class DataRequestReject(BaseModel):
    """Why a request is declined (e.g. the requester's identity could not be verified)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class DataRequestPublic(BaseModel):
    """A data-subject request with its status and result (the export itself for kind=export)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    subject_phone: str | None
    subject_email: str | None
    status: str
    details: dict[str, Any]
    result: dict[str, Any]
    requested_by: str | None
    created_at: UTCDateTime
    completed_at: UTCDateTime | None


class DataRequestsPublic(BaseModel):
    """Requests, newest first."""

    items: list[DataRequestPublic]


class RetentionPolicyPublic(BaseModel):
    """The retention policy in force."""

    recordings_days: int
    transcripts_days: int
    purge_interval_minutes: int
    redact_pii: bool


class PurgeResult(BaseModel):
    """What one purge removed."""

    recordings_deleted: int
    recording_files_removed: int
    turns_deleted: int
    questions_erased: int
    recordings_cutoff: str
    transcripts_cutoff: str
