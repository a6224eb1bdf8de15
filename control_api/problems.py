"""RFC 9457 problem details: one error shape for every failure the API reports."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://voxdesk.dev/problems/"
log = structlog.get_logger(__name__)


class ProblemError(Exception):
    """An error the API reports as problem JSON; raised by services and routes alike.

    Args:
        status: HTTP status code.
        detail: Human-readable explanation specific to this occurrence (no secrets, no caller data).
        type_: Short slug appended to the problem type URI (defaults to the status phrase).
        title: Short summary (defaults to the HTTP status phrase).
        headers: Extra response headers (e.g. ``Retry-After``).
        extra: Extension members added to the problem object.

    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type_: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type_ = type_
        self.title = title
        self.headers = headers or {}
        self.extra = extra or {}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(
    request: Request,
    status: int,
    detail: str | None = None,
    *,
    type_: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """Build an ``application/problem+json`` response."""
    slug = type_ or _phrase(status).lower().replace(" ", "-").replace("'", "")
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title or _phrase(status),
        "status": status,
        "instance": request.url.path,
    }
    if detail:
        body["detail"] = detail
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for err in errors:
        out.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


async def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request, exc.status, exc.detail, type_=exc.type_, title=exc.title, headers=exc.headers, extra=exc.extra
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == _phrase(exc.status_code):
        detail = None
    if exc.status_code == 404 and detail is None:
        detail = f"No resource at {request.url.path}"
    if exc.status_code == 405 and detail is None:
        detail = f"Method {request.method} is not allowed here"
    return problem_response(request, exc.status_code, detail, headers=dict(exc.headers or {}))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _jsonable_errors(exc.errors())
    return problem_response(
        request,
        422,
        "The request is not valid: " + "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5]),
        type_="validation-error",
        title="Validation failed",
        extra={"errors": errors},
    )


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    # A value the database cannot store (PostgreSQL: NUL bytes in text, out-of-range numbers): the input's fault.
    log.info("database_refused_value", path=request.url.path, error_type=type(getattr(exc, "orig", exc)).__name__)
    return problem_response(
        request, 422, "The request contains a value the database cannot store.", type_="unstorable-value"
    )


async def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    # A uniqueness or reference rule broken by the input (or by a concurrent request); never SQL in the answer.
    log.info("database_integrity_conflict", path=request.url.path)
    return problem_response(request, 409, "The request conflicts with stored data.", type_="conflict")


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    # Never leak internals (stack traces, SQL) to a client; the log carries the request id.
    log.exception("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
    return problem_response(request, 500, "An internal error occurred; it has been logged.", type_="internal-error")


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Describe every 4xx answer in an OpenAPI document as problem JSON (what the handlers above send)."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    problem = {
        "description": "Problem details (RFC 9457)",
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for code, response in list(responses.items()):
                # 422 replaces FastAPI's HTTPValidationError: our validation errors are problem JSON too.
                if str(code).startswith("4") and (str(code) == "422" or "content" not in response):
                    responses[code] = {**problem, "description": response.get("description") or problem["description"]}
            responses.setdefault("4XX", problem)
    for unused in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(unused, None)
    return schema


def install_problem_handlers(app: FastAPI) -> None:
    """Register problem-JSON handlers for every error class on ``app`` and document them in its OpenAPI."""
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(build_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(Exception, _unhandled)
