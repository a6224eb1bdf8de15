"""Health check responses."""

from __future__ import annotations

from pydantic import BaseModel


class Liveness(BaseModel):
    """The process is up."""

    status: str = "ok"


class CheckResult(BaseModel):
    """One readiness check."""

    name: str
    ok: bool
    detail: str | None = None
    duration_ms: float


class Readiness(BaseModel):
    """Every readiness check and the overall verdict."""

    status: str
    checks: list[CheckResult]
