"""Interactive API docs served from a Python package: no CDN, works offline."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

router = APIRouter(include_in_schema=False)
ASSETS = "/api/docs-assets"


@router.get("/api/docs")
async def swagger_ui() -> HTMLResponse:
    """Swagger UI for ``/api/openapi.json``."""
    return get_swagger_ui_html(
        openapi_url="/api/openapi.json",
        title="Voxdesk API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
    )


def mount_docs(app: FastAPI) -> None:
    """Serve Swagger UI and its assets from the installed ``swagger-ui-bundle`` package."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")
    app.include_router(router)
