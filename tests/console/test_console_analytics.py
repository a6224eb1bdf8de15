"""The Analytics page in headless Chromium: real charts on the seeded calls, readable axes, drill-down, CSV.

The page runs under the console's strict Content-Security-Policy (same-origin scripts, no inline styles in
markup), so a chart library that needed ``unsafe-eval`` or inline ``<style>`` text would log errors here.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright
from sqlalchemy import make_url

from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS, OTHER_PASSWORD, SUPERVISOR_EMAIL, LiveServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHARTS = ("volume", "hours", "outcomes", "handle", "sentiment", "latency", "handoffs", "topics", "unanswered")
TOPIC_MD = b"""# Kestrel Hub lights

## Blinking orange light

A blinking orange light on the Kestrel Hub means the broadband line is not synchronised.
Check that the grey DSL cable is firmly plugged into the wall socket, then wait two minutes.
"""

# Per chart: the font sizes of its axis tick labels, and any axis whose tick labels repeat.
AXES_JS = """
(box) => {
  const out = {sizes: [], repeated: []};
  const selector = 'g.xaxislayer-above, g.yaxislayer-above, g.overaxes-above g[class*="yaxislayer"]';
  for (const axis of box.querySelectorAll(selector)) {
    const texts = [...axis.querySelectorAll('text')];
    const labels = texts.map((t) => t.textContent.trim()).filter(Boolean);
    for (const t of texts) out.sizes.push(parseFloat(getComputedStyle(t).fontSize));
    if (new Set(labels).size !== labels.length) out.repeated.push(labels.join(' | '));
  }
  return out;
}
"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_analytics_charts_drill_down_and_export(live_server: LiveServer, chromium: Browser, shots: Path) -> None:
    context = chromium.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"{m.text} @ {m.location}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Every Content-Security-Policy violation, with the element that caused it.
    page.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation', (e) =>"
        " window.__csp.push(`${e.violatedDirective} ${(e.target && e.target.outerHTML || '').slice(0, 200)}`));"
    )
    try:
        page.goto(f"{live_server.base_url}/console")
        page.get_by_label("E-mail").fill(SUPERVISOR_EMAIL)
        page.get_by_label("Password").fill(OTHER_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

        # A document answers a typed question, so the topics chart has a real topic.
        upload = page.request.post(
            f"{live_server.base_url}/api/knowledge/upload",
            multipart={"files": {"name": "lights.md", "mimeType": "text/markdown", "buffer": TOPIC_MD}},
            headers={"X-CSRF-Token": page.evaluate("() => sessionStorage.getItem('voxdesk.csrf') || ''")},
        )
        assert upload.status in (200, 201, 202), upload.text()
        document_id = upload.json()["documents"][0]["id"]
        for _ in range(180):
            status = page.request.get(f"{live_server.base_url}/api/knowledge/status/{document_id}").json()
            if status["status"] in ("ready", "failed"):
                break
            page.wait_for_timeout(500)
        assert status["status"] == "ready", status
        csrf = page.evaluate("() => sessionStorage.getItem('voxdesk.csrf') || ''")
        asked = page.request.post(
            f"{live_server.base_url}/api/rag/query",
            data={"question": "What does a blinking orange light mean?"},
            headers={"X-CSRF-Token": csrf},
        )
        assert asked.ok and asked.json()["found"], asked.text()
        # A typed question is a test (no call): the call figures leave it out. Logged as the voice side logs a
        # caller's question (with its call), it counts.
        with sqlite3.connect(str(make_url(live_server.settings.database_url).database)) as db:
            db.execute(
                "UPDATE rag_queries SET call_id = ? WHERE question = ?",
                (live_server.seeded.ended_call_id, "What does a blinking orange light mean?"),
            )
        tested = page.request.post(
            f"{live_server.base_url}/api/rag/query",
            data={"question": "Is there a purple light?"},
            headers={"X-CSRF-Token": csrf},
        )
        assert tested.ok, tested.text()

        page.get_by_role("navigation", name="Main").get_by_role("link", name="Analytics").click()
        expect(page.get_by_role("heading", name="Analytics", exact=True)).to_be_visible()
        for chart in CHARTS:
            # Four reports and the chart library load first: generous on a loaded CI machine.
            expect(page.locator(f"#chart-{chart} svg.main-svg").first).to_be_visible(timeout=30_000)
        expect(page.locator("#chart-topics")).to_contain_text("Blinking orange light")
        expect(page.locator("#chart-handoffs")).to_contain_text("Caller asked for a person")
        expect(page.locator("#chart-outcomes")).to_contain_text("Answered by the agent")
        expect(page.get_by_text("1 typed test not counted", exact=False)).to_be_visible()
        page.screenshot(path=shots / "analytics-1366.png", full_page=True)
        page.locator("#chart-volume").screenshot(path=shots / "analytics-volume-1366.png")

        # The seeded calls sit in the last two days of the 30-day range: their bars are drawn whole (not 1-px
        # lines) and the range's last day has its tick label.
        widths = page.locator("#chart-volume g.point path").evaluate_all(
            "(paths) => paths.map((p) => p.getBoundingClientRect().width)"
        )
        assert widths and min(widths) >= 10, widths
        ticks = page.locator("#chart-volume g.xaxislayer-above text").all_text_contents()
        assert ticks[-1] == datetime.now(UTC).strftime("%d %b"), ticks

        for chart in CHARTS:
            axes = page.locator(f"#chart-{chart}").evaluate(AXES_JS)
            assert axes["sizes"] and min(axes["sizes"]) >= 11, (chart, axes["sizes"])
            assert axes["repeated"] == [], (chart, axes["repeated"])

        # Tooltips: hovering a bar shows its numbers.
        bar = page.locator("#chart-outcomes g.point path").first
        bar.scroll_into_view_if_needed()
        box = bar.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2 - 3, box["y"] + box["height"] / 2)
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=3)
        page.screenshot(path=shots / "analytics-hover.png")
        expect(page.locator("#chart-outcomes .hoverlayer .hovertext")).to_contain_text("call(s)")

        # CSV export of every series shown.
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Export CSV").click()
        csv_text = Path(download_info.value.path()).read_text()
        assert csv_text.startswith("chart,x,series,value\n")
        assert re.search(r"^outcomes,resolved,calls,1$", csv_text, re.MULTILINE), csv_text
        assert re.search(r"^handoff_reasons,phrase,handoffs,1$", csv_text, re.MULTILINE)

        # Drill-down: a day's bar opens the calls list for exactly that day.
        bars = page.locator("#chart-volume g.point path")
        tall = next(b for b in bars.all() if (bb := b.bounding_box()) is not None and bb["height"] > 3)
        tall.scroll_into_view_if_needed()
        where = tall.bounding_box()
        assert where is not None
        page.mouse.click(where["x"] + where["width"] / 2, where["y"] + where["height"] - 2)
        expect(page).to_have_url(re.compile(r"#/calls\?since=.*&until="))
        expect(page.get_by_text("(from Analytics)")).to_be_visible()
        expect(page.locator("tbody tr[data-call-id]").first).to_be_visible()

        # A phone-wide window: the charts stack and the page still fits.
        page.set_viewport_size({"width": 390, "height": 844})
        page.get_by_role("button", name="Menu").click()
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Analytics").click()
        expect(page.locator("#chart-volume svg.main-svg").first).to_be_visible(timeout=30_000)
        page.wait_for_timeout(300)
        assert page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth") <= 0
        page.screenshot(path=shots / "analytics-390.png", full_page=True)
        violations: list[str] = page.evaluate("() => window.__csp")
    finally:
        context.close()
    # The one refused inline <style>: the map library bundled in plotly.js injects its CSS on load (the console
    # draws no maps, so nothing is missing). Any other violation or error fails the test.
    assert all(".maplibregl-map" in v for v in violations), violations
    inline = [e for e in errors if e.startswith("Applying inline style violates")]
    assert len(inline) == len(violations)
    assert [e for e in errors if "status of 401" not in e and e not in inline] == []
