"""URL import: SSRF refusals on every hop, the private-address switch, sitemaps."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from knowledge.errors import FetchError
from knowledge.fetch import fetch, sitemap_urls
from tests.knowledge.conftest import DEMO, KB, kb_settings, start

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8080/admin",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://172.16.5.4/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
    ],
)
async def test_private_and_loopback_addresses_are_refused(url: str) -> None:
    with pytest.raises(FetchError, match="Refused"):
        await fetch(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "Only http"),
        ("ftp://example.com/x", "Only http"),
        ("http://user:secret@example.com/", "user names"),
        ("http:///nohost", "no host"),
    ],
)
async def test_other_schemes_and_credentials_are_refused(url: str, reason: str) -> None:
    with pytest.raises(FetchError, match=reason):
        await fetch(url)


async def test_a_redirect_to_a_private_address_is_refused() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"location": "http://127.0.0.1:9/secret"})

    # 93.184.215.14 is a public address: the first hop passes the check, the redirect does not.
    with pytest.raises(FetchError, match="Refused"):
        await fetch("http://93.184.215.14/page", transport=httpx.MockTransport(handler))
    assert seen == ["http://93.184.215.14/page"]


async def test_the_connection_goes_to_the_checked_address_with_the_host_header() -> None:
    captured: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(200, content=b"<html><body><main><p>ok</p></main></body></html>")

    page = await fetch("http://93.184.215.14:8080/help?x=1", transport=httpx.MockTransport(handler))
    assert page.data.startswith(b"<html>")
    assert captured[0].url.host == "93.184.215.14" and captured[0].headers["host"] == "93.184.215.14:8080"


async def test_oversized_pages_are_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 5000)

    with pytest.raises(FetchError, match="larger"):
        await fetch("http://93.184.215.14/", max_bytes=1000, transport=httpx.MockTransport(handler))


def test_sitemap_urls() -> None:
    xml = b"""<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
    <url><loc>https://help.example/a</loc></url><url><loc> https://help.example/b?x=1&amp;y=2 </loc></url>
    <url><loc>https://help.example/a</loc></url></urlset>"""
    assert sitemap_urls(xml) == ["https://help.example/a", "https://help.example/b?x=1&y=2"]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "site"
    root.mkdir()
    (root / "outages.html").write_bytes((DEMO / "service-outages.html").read_bytes())
    (root / "contact.html").write_bytes((DEMO / "contact-and-opening-hours.html").read_bytes())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Quiet(*a, directory=str(root)))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    (root / "sitemap.xml").write_text(
        f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{base}/outages.html</loc></url><url><loc>{base}/contact.html</loc></url></urlset>"
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()


def test_import_url_refuses_loopback_by_default(kb: KB, site: str) -> None:
    r = kb.client.post("/api/knowledge/import-url", json={"url": f"{site}/outages.html"}, headers=kb.headers())
    assert r.status_code == 422
    assert "private, loopback or reserved" in r.json()["detail"]
    assert kb.client.get("/api/knowledge/documents", headers=kb.headers()).json()["count"] == 0


def test_import_url_and_sitemap_when_private_addresses_are_allowed(tmp_path: Path, site: str) -> None:
    for kb in start(kb_settings(tmp_path, knowledge={"allow_private_urls": True})):
        r = kb.client.post("/api/knowledge/import-url", json={"url": f"{site}/outages.html"}, headers=kb.headers())
        assert r.status_code == 202, r.text
        assert r.json()["documents"][0]["source_url"] == f"{site}/outages.html"
        r = kb.client.post("/api/knowledge/import-url", json={"url": f"{site}/sitemap.xml"}, headers=kb.headers())
        assert r.status_code == 202, r.text
        names = sorted(d["filename"] for d in r.json()["documents"])
        assert names == ["contact.html", "outages.html"]
        assert [d["duplicate"] for d in r.json()["documents"] if d["filename"] == "outages.html"] == [True]
        docs = kb.wait_settled()
        assert {d["status"] for d in docs} == {"ready"} and len(docs) == 2
        answer = kb.client.post(
            "/api/rag/query", json={"question": "How do I get outage alerts by text?"}, headers=kb.headers()
        ).json()
        assert answer["found"] and "60660" in answer["passages"][0]["text"]
        missing = kb.client.post("/api/knowledge/import-url", json={"url": f"{site}/nope.html"}, headers=kb.headers())
        assert missing.status_code == 422 and "404" in missing.json()["detail"]
