"""The console's HTTP surface: the page, its files, the security headers, and what it refuses to serve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from control_api.console.routes import STATIC_DIR

pytestmark = pytest.mark.integration

CONSOLE_DIR = STATIC_DIR.parent


def _assert_security_headers(headers: object) -> None:
    csp = headers["content-security-policy"]  # type: ignore[index]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval', no other origin
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert headers["x-frame-options"] == "DENY"  # type: ignore[index]
    assert headers["x-content-type-options"] == "nosniff"  # type: ignore[index]


def test_page_and_files_are_served_with_strict_headers(client: TestClient) -> None:
    """The page, the reset-password page and every kind of static file, each with the security headers."""
    page = client.get("/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert '<script type="module" src="/console/static/app.js"></script>' in page.text
    _assert_security_headers(page.headers)

    reset = client.get("/console/reset-password", params={"token": "abc"})
    assert reset.status_code == 200
    assert reset.text == page.text
    _assert_security_headers(reset.headers)

    for name, media in (
        ("app.js", "text/javascript"),
        ("views/dashboard.js", "text/javascript"),
        ("app.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ):
        answer = client.get(f"/console/static/{name}")
        assert answer.status_code == 200, name
        assert answer.headers["content-type"].startswith(media), name
        assert answer.content == (STATIC_DIR / name).read_bytes()
        _assert_security_headers(answer.headers)

    assert "/console" not in client.get("/api/openapi.json").text


@pytest.mark.parametrize(
    "path",
    [
        "/console/static/../routes.py",
        "/console/static/%2e%2e/routes.py",
        "/console/static/..%2Froutes.py",
        "/console/static/views/../../index.html",
        "/console/static/missing.js",
        "/console/static/.hidden.js",
        "/console/static/",
        "/console/static/views",
    ],
)
def test_nothing_outside_the_static_files_is_served(client: TestClient, path: str) -> None:
    """Traversal, hidden files, folders and unknown files are 404 problem JSON, never a file."""
    answer = client.get(path)
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "import" not in answer.text


def test_the_console_has_no_inline_code_and_no_outside_url() -> None:
    """CSP-proof markup: no inline script or handler, no style attribute, no URL to another host."""
    files = [CONSOLE_DIR / "index.html", *sorted(STATIC_DIR.rglob("*.*"))]
    assert len(files) > 5
    for path in files:
        text = path.read_text(encoding="utf-8")
        # The SVG namespace and RFC 2606 example hosts (a form's sample URL) are names, not fetched URLs.
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg|([a-z0-9-]+\.)*example\.(com|org)/)", text), path
        if path.suffix == ".html":
            scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", text, flags=re.S)
            assert all(not body.strip() for body in scripts), path
            assert not re.search(r"\son[a-z]+\s*=", text), path
            assert " style=" not in text, path
        if path.suffix == ".js":
            assert not re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write", text), path
            assert "eval(" not in text and "new Function" not in text, path


def test_package_data_covers_the_console_files() -> None:
    """Every console file type is shipped by ``[tool.setuptools.package-data]``."""
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    patterns = re.search(r"\[tool\.setuptools\.package-data\]\s*\n\"\*\" = \[(.*?)\]", pyproject, flags=re.S)
    assert patterns is not None
    shipped = set(re.findall(r"\"\*(\.[a-z]+)\"", patterns.group(1)))
    used = {path.suffix for path in [CONSOLE_DIR / "index.html", *STATIC_DIR.rglob("*.*")]}
    assert used <= shipped
