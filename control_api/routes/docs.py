"""Interactive API docs served from a Python package: no CDN, works offline.

The assets come from ``fastapi-offline`` (Swagger UI 5, which renders OpenAPI 3.1 as FastAPI emits it).
"""

from __future__ import annotations

import re
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from control_api.security_headers import page_headers, page_policy, script_hash

router = APIRouter(include_in_schema=False)
ASSETS = "/api/docs-assets"


def _swagger_page() -> tuple[bytes, dict[str, str]]:
    page = get_swagger_ui_html(
        openapi_url="/api/openapi.json",
        title="Voxdesk API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
    )
    html = bytes(page.body).decode()
    # The page's one inline script (Swagger UI's start-up) is allowed by its hash, nothing else inline.
    inline = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    policy = page_policy(script_hashes=tuple(script_hash(source) for source in inline), inline_styles=True)
    return bytes(page.body), page_headers(policy=policy)


_PAGE, _HEADERS = _swagger_page()


@router.get("/api/docs")
async def swagger_ui() -> HTMLResponse:
    """Swagger UI for ``/api/openapi.json``."""
    return HTMLResponse(_PAGE, headers=_HEADERS)


ASSET_DIR = Path(fastapi_offline.__file__).parent / "static"


def mount_docs(app: FastAPI) -> None:
    """Serve Swagger UI and its assets from the installed ``fastapi-offline`` package."""
    app.mount(ASSETS, StaticFiles(directory=ASSET_DIR), name="docs-assets")
    app.include_router(router)
