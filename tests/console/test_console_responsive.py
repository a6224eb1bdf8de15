"""Every role walks every console page at phone, tablet and desktop width in headless Chromium.

A page fails when the document is wider than the window (something sticks out sideways), when a navigation item
cannot be clicked (the collapsed menu must open, by mouse and by keyboard), or when a visible control has no
accessible name. Screenshots of every page at every width go to ``$VOXDESK_CONSOLE_SHOTS`` (else a temp dir).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.console.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    AGENT_EMAIL,
    CHROMIUM,
    CHROMIUM_ARGS,
    OTHER_PASSWORD,
    SUPERVISOR_EMAIL,
    VIEWER_EMAIL,
    LiveServer,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WIDTHS = {"phone": (390, 844), "tablet": (768, 1024), "desktop": (1366, 800)}
ACCOUNTS = {
    "admin": (ADMIN_EMAIL, ADMIN_PASSWORD),
    "supervisor": (SUPERVISOR_EMAIL, OTHER_PASSWORD),
    "agent": (AGENT_EMAIL, OTHER_PASSWORD),
    "viewer": (VIEWER_EMAIL, OTHER_PASSWORD),
}

# Visible interactive elements without an accessible name (label, aria-label(ledby), text, title, alt).
UNNAMED_CONTROLS_JS = """
() => {
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const named = (el) => {
    if ((el.getAttribute('aria-label') || '').trim()) return true;
    const by = el.getAttribute('aria-labelledby');
    if (by && by.split(/\\s+/).some((id) => (document.getElementById(id)?.textContent || '').trim())) return true;
    if (el.labels && [...el.labels].some((l) => l.textContent.trim())) return true;
    if ((el.getAttribute('title') || '').trim()) return true;
    if (['BUTTON', 'A', 'SUMMARY'].includes(el.tagName) && el.textContent.trim()) return true;
    if (el.querySelector && el.querySelector('img[alt]:not([alt=""])')) return true;
    return false;
  };
  return [...document.querySelectorAll('button, a[href], input:not([type=hidden]), select, textarea, [tabindex="0"]')]
    .filter((el) => visible(el) && !named(el)).map((el) => el.outerHTML.slice(0, 160));
}
"""


# Rendered heights of the visible bar charts' axis labels, in CSS pixels.
AXIS_LABEL_PX_JS = """
() => [...document.querySelectorAll('svg.bars text.axis')]
  .map((el) => el.getBoundingClientRect().height).filter((px) => px > 0)
"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless Chromium (the Debian build) for the whole walk; each role gets its own context."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _overflow(page: Page) -> int:
    """How many CSS pixels the document is wider than the window (0: it fits)."""
    width: int = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    return width


def _open_menu_if_collapsed(page: Page) -> None:
    toggle = page.get_by_role("button", name="Menu")
    if toggle.is_visible():
        if toggle.get_attribute("aria-expanded") != "true":
            toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")


def _nav_items(page: Page) -> list[tuple[str, str]]:
    """(title, view) of every navigation item the role is shown."""
    _open_menu_if_collapsed(page)
    links = page.get_by_role("navigation", name="Main").get_by_role("link")
    items = [
        (link.inner_text().strip(), link.get_attribute("data-view") or "") for link in links.all() if link.is_visible()
    ]
    return [(title, view) for title, view in items if title]


def _sign_in(page: Page, base_url: str, role: str) -> None:
    email, password = ACCOUNTS[role]
    page.goto(f"{base_url}/console")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#topbar")).to_be_visible()


def _check_page(page: Page, problems: list[str], where: str) -> None:
    page.wait_for_load_state("networkidle")
    # Pages mark what is still loading with aria-busy (the analytics charts, the dashboard's figures).
    page.wait_for_function("() => !document.querySelector('main [aria-busy=\"true\"]')", timeout=30_000)
    page.wait_for_timeout(150)  # charts lay out after their data arrives
    if (extra := _overflow(page)) > 0:
        problems.append(f"{where}: page is {extra}px wider than the window")
    for control in page.evaluate(UNNAMED_CONTROLS_JS):
        problems.append(f"{where}: control without an accessible name: {control}")
    # Chart labels keep a readable size at every width (the stylesheet's 10 px, not stretched or shrunk).
    for label_px in page.evaluate(AXIS_LABEL_PX_JS):
        if not 8 <= label_px <= 15:
            problems.append(f"{where}: a chart label is {label_px:.1f}px tall")


@pytest.mark.parametrize("role", list(ACCOUNTS))
def test_every_page_fits_every_width(role: str, live_server: LiveServer, chromium: Browser, shots: Path) -> None:
    """Sign in as ``role``; at 390, 768 and 1366 px click every navigation item and check the page fits."""
    context = chromium.new_context(viewport={"width": 1366, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    problems: list[str] = []
    try:
        _sign_in(page, live_server.base_url, role)
        for width_name, (width, height) in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            items = _nav_items(page)
            if width_name != "desktop":
                page.screenshot(path=shots / f"{role}-{width_name}-menu-open.png")
            assert items, f"{role} at {width}px sees no navigation"
            for title, view in items:
                _open_menu_if_collapsed(page)
                # A plain click: it fails when the item is hidden, covered or off screen.
                page.get_by_role("navigation", name="Main").get_by_role("link", name=title, exact=True).click()
                expect(page.locator("main h1").first).to_be_visible()
                expect(page.locator("#menu-toggle")).to_have_attribute("aria-expanded", "false")
                _check_page(page, problems, f"{role} {width}px #{view}")
                page.screenshot(path=shots / f"{role}-{width_name}-{view}.png", full_page=True)
                if view == "calls":
                    first = page.locator("tbody tr[data-call-id] a").first
                    if first.count():
                        first.click()
                        expect(page.get_by_role("heading", name="Call with", exact=False)).to_be_visible()
                        _check_page(page, problems, f"{role} {width}px call detail")
                        page.screenshot(path=shots / f"{role}-{width_name}-call.png", full_page=True)
                        # In one column the summary (outcome, answered questions) comes before the transcript.
                        summary_y = page.locator("#summary-title").bounding_box()
                        transcript_y = page.locator("#transcript-title").bounding_box()
                        assert summary_y is not None and transcript_y is not None
                        if width < 1100:
                            assert summary_y["y"] < transcript_y["y"], f"{role} {width}px: summary under the transcript"
            # Account and sign-out stay reachable at every width.
            _open_menu_if_collapsed(page)
            expect(page.locator("#who")).to_be_visible()
            expect(page.get_by_role("button", name="Sign out")).to_be_visible()
            page.keyboard.press("Escape")
        # The collapsed menu works from the keyboard: Enter opens it, Escape closes it and returns the focus.
        page.set_viewport_size({"width": 390, "height": 844})
        toggle = page.get_by_role("button", name="Menu")
        toggle.focus()
        page.keyboard.press("Enter")
        expect(toggle).to_have_attribute("aria-expanded", "true")
        page.keyboard.press("Tab")
        expect(page.get_by_role("navigation", name="Main").get_by_role("link").first).to_be_focused()
        page.keyboard.press("Escape")
        expect(toggle).to_have_attribute("aria-expanded", "false")
        expect(toggle).to_be_focused()
        expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    finally:
        context.close()
    assert problems == []
    assert errors == []


def test_charts_refit_when_the_window_narrows(live_server: LiveServer, chromium: Browser) -> None:
    """A chart drawn for a tablet-wide dashboard redraws when the window narrows to a phone, without a reload."""
    context = chromium.new_context(viewport={"width": 768, "height": 1024})
    context.set_default_timeout(15_000)
    page = context.new_page()
    problems: list[str] = []
    try:
        _sign_in(page, live_server.base_url, "supervisor")
        expect(page.locator("main h1", has_text="Dashboard")).to_be_visible()
        _check_page(page, problems, "768px dashboard")
        drawn_at = page.locator("svg.bars").first.bounding_box()
        assert drawn_at is not None and drawn_at["width"] > 390, "the volume chart is not drawn at tablet width"
        page.set_viewport_size({"width": 390, "height": 844})
        _check_page(page, problems, "narrowed to 390px on the dashboard")
        redrawn = page.locator("svg.bars").first.bounding_box()
        assert redrawn is not None and redrawn["width"] < 390, "the volume chart kept its tablet width"
    finally:
        context.close()
    assert problems == []
