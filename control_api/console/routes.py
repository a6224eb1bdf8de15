"""Serve the web console: ``/console`` (the single page) and its files under ``/console/static/``.

The console is plain HTML, CSS and JavaScript modules shipped as package data, so it works offline and needs
no build step. Every response carries a strict Content-Security-Policy (same origin only, no inline script),
so an injected string in any call transcript or document name can never run as code.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Final

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from config import Settings
from control_api.db.models import User
from control_api.deps import StateDep, require
from control_api.problems import ProblemError
from control_api.rbac import Permission
from control_api.security_headers import page_headers

PACKAGE_DIR: Final = Path(__file__).resolve().parent
STATIC_DIR: Final = PACKAGE_DIR / "static"
STATIC_PREFIX: Final = "/console/static"

# The desk (views/desk.js) talks with callers: the console may ask for the microphone.
SECURITY_HEADERS: Final[dict[str, str]] = page_headers(microphone=True)
# Only these file types are served; anything else under static/ is a 404.
MEDIA_TYPES: Final[dict[str, str]] = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}
# Third-party browser files, served from the installed Python package that ships them (no CDN, no copy in
# this repository): the name in the URL -> the file inside the package. plotly.js draws the Analytics charts.
VENDOR_PREFIX: Final = "/console/vendor"
VENDOR_FILES: Final[dict[str, str]] = {"plotly.min.js": "package_data/plotly.min.js"}
router = APIRouter(include_in_schema=False, tags=["console"])


@lru_cache(maxsize=1)
def _index_html() -> str:
    """The console's single page (read once per process)."""
    return (PACKAGE_DIR / "index.html").read_text(encoding="utf-8")


def _page() -> HTMLResponse:
    return HTMLResponse(_index_html(), headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


@router.get("/")
async def root() -> RedirectResponse:
    """The server's front door leads to the console."""
    return RedirectResponse("/console", status_code=307)


@router.get("/console", response_class=HTMLResponse)
async def console_page() -> HTMLResponse:
    """The console's single page; the hash part of the URL picks the view in the browser."""
    return _page()


@router.get("/console/reset-password", response_class=HTMLResponse)
async def console_reset_password_page() -> HTMLResponse:
    """The same page, opened from a password-reset or invitation e-mail (the token is in the query)."""
    return _page()


def resolve_asset(asset_path: str) -> Path:
    """The file under ``static/`` named by ``asset_path``; 404 problem when absent, hidden or outside.

    Args:
        asset_path: The path below ``/console/static/`` as the client sent it.

    Returns:
        The resolved file path, guaranteed to lie inside ``STATIC_DIR``.

    Raises:
        ProblemError: 404 when the path escapes the folder, names a hidden or unknown file type, or no file.

    """
    not_found = ProblemError(404, "No console file at this path.", type_="not-found")
    parts = Path(asset_path).parts
    if not parts or any(part.startswith(".") for part in parts) or "\\" in asset_path or "\x00" in asset_path:
        raise not_found
    candidate = (STATIC_DIR / asset_path).resolve()
    if not candidate.is_relative_to(STATIC_DIR) or candidate.suffix not in MEDIA_TYPES or not candidate.is_file():
        raise not_found
    return candidate


@router.get(STATIC_PREFIX + "/{asset_path:path}")
async def console_asset(asset_path: str) -> Response:
    """One console file (JavaScript module, stylesheet, icon); revalidated on every load."""
    path = resolve_asset(asset_path)
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=headers)


@lru_cache(maxsize=len(VENDOR_FILES))
def vendor_file(name: str) -> Path | None:
    """The installed file behind ``/console/vendor/{name}``; ``None`` when unknown or not installed."""
    relative = VENDOR_FILES.get(name)
    if relative is None:
        return None
    # The package is only a file source here: imported on the first request, not at start-up.
    import plotly  # type: ignore[import-untyped]

    path = Path(plotly.__file__).parent / relative
    return path if path.is_file() else None


@router.get(VENDOR_PREFIX + "/{name}")
async def console_vendor_file(name: str) -> Response:
    """A third-party script from its installed package (plotly.js); cached for a day, it changes with the pin."""
    path = vendor_file(name)
    if path is None:
        raise ProblemError(404, "No console file at this path.", type_="not-found")
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=86400"}
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=headers)


class Backend(BaseModel):
    """One stage of the voice pipeline or knowledge base and the backend configured for it."""

    stage: str = Field(description="vad | asr | asr_second_opinion | brain | tts | embedder | vector_store")
    backend: str
    detail: str | None = Field(default=None, description="Model or voice, where one is named")


class ConsoleSettings(BaseModel):
    """What the Settings page shows of the running configuration (read-only; no secret is included)."""

    backends: list[Backend]
    rate_limits: dict[str, str] = Field(description="api, login, voice, phone, voice_preview: 'N/period'")
    retention: dict[str, int | bool] = Field(description="Days recordings and transcripts are kept; PII redaction")
    knowledge_score_threshold: float = Field(
        description="Below this best score a question is 'not found': the threshold in force (the base's own "
        "calibration when it has one, else the configured value)"
    )


settings_router = APIRouter(prefix="/api/system", tags=["system"])


@settings_router.get("/configuration", response_model=ConsoleSettings)
async def console_settings(
    state: StateDep, user: Annotated[User, Depends(require(Permission.ANALYTICS_READ))]
) -> ConsoleSettings:
    """The pipeline backends in use, rate limits and retention, as configured (change them in the settings)."""
    del user
    settings = state.settings
    pipeline, knowledge = settings.pipeline, settings.knowledge
    return ConsoleSettings(
        backends=[
            Backend(stage="vad", backend="silero", detail=f"speech probability ≥ {pipeline.vad.confidence}"),
            Backend(stage="asr", backend=pipeline.asr.backend, detail=pipeline.asr.model),
            *second_opinion(settings),
            Backend(stage="brain", backend=pipeline.llm.backend, detail=pipeline.llm.model),
            Backend(stage="tts", backend=pipeline.tts.backend, detail=pipeline.tts.voice or pipeline.tts.model),
            Backend(stage="embedder", backend=knowledge.embedder, detail=knowledge.embedder_model),
            Backend(stage="vector_store", backend=knowledge.store, detail=None),
        ],
        rate_limits={
            "api": settings.rate_limits.api,
            "login": settings.rate_limits.login,
            "voice": settings.rate_limits.voice,
            "phone": settings.rate_limits.phone,
            "voice_preview": settings.rate_limits.voice_preview,
        },
        retention={
            "recordings_days": settings.retention.recordings_days,
            "transcripts_days": settings.retention.transcripts_days,
            "redact_pii": settings.retention.redact_pii,
        },
        knowledge_score_threshold=(
            state.knowledge.kb.retriever.config.score_threshold
            if state.knowledge is not None
            else knowledge.score_threshold
        ),
    )


def second_opinion(settings: Settings) -> list[Backend]:
    """Whisper's second opinion on the recogniser's finals, as configured (applies to a recogniser that takes one)."""
    mode = settings.pipeline.asr.whisper.mode
    words = {
        "off": "off",
        "weak": "Whisper tiny.en re-decodes a final that finds nothing (or only just) in the knowledge base",
        "best": "Whisper tiny.en decodes every final; the transcript that finds more is kept",
        "always": "Whisper tiny.en decodes every final and its text is used",
    }
    return [
        Backend(stage="asr_second_opinion", backend="off" if mode == "off" else "faster-whisper", detail=words[mode])
    ]
