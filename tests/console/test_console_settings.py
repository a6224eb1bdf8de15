"""The Settings page in headless Chromium: persona versions with diff and roll-back, backends and health, limits,
privacy requests and incidents; a viewer gets no edit controls and the server refuses the edit anyway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.console.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    CHROMIUM,
    CHROMIUM_ARGS,
    OTHER_PASSWORD,
    SUPERVISOR_EMAIL,
    VIEWER_EMAIL,
    LiveServer,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _settings_page(chromium: Browser, server: LiveServer, email: str, password: str) -> tuple[Page, list[str]]:
    context = chromium.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server.base_url}/console")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#topbar")).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    return page, errors


def test_admin_edits_the_persona_and_rolls_back(live_server: LiveServer, chromium: Browser, shots: Path) -> None:
    page, errors = _settings_page(chromium, live_server, ADMIN_EMAIL, ADMIN_PASSWORD)
    persona = page.get_by_role("form", name="Persona")
    greeting = persona.get_by_label("Greeting")
    expect(greeting).to_have_value("Hi, this is Ava from Kestrel Broadband.")
    greeting.fill("Hello, you're through to Ava at Kestrel Broadband.")
    persona.get_by_role("button", name="Save as a new version").click()
    expect(page.get_by_text("Saved as version 2.")).to_be_visible()
    # The diff of version 1 against the active version names the changed field, old and new lines.
    page.get_by_role("button", name="Compare version 1 with the active one").click()
    diff = page.get_by_label("Changes to Greeting")
    expect(diff.locator(".diff-del")).to_have_text("- Hi, this is Ava from Kestrel Broadband.")
    expect(diff.locator(".diff-add")).to_have_text("+ Hello, you're through to Ava at Kestrel Broadband.")
    page.screenshot(path=shots / "settings-admin.png", full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Roll back to version 1").click()
    expect(page.get_by_text("Version 1 restored as version 3.")).to_be_visible()
    expect(page.get_by_role("form", name="Persona").get_by_label("Greeting")).to_have_value(
        "Hi, this is Ava from Kestrel Broadband."
    )
    active = page.request.get(f"{live_server.base_url}/api/personas/default").json()
    assert (active["version"], active["greeting"]) == (3, "Hi, this is Ava from Kestrel Broadband.")

    # Backends in use and their health, rate limits and retention in words.
    backends = page.get_by_role("region", name="Voice pipeline and knowledge base")
    expect(backends).to_contain_text("Speech recognition")
    # Whisper's second opinion, as configured (the shipped default: every final, the better transcript kept).
    expect(backends).to_contain_text("Second opinion on recognition")
    expect(backends).to_contain_text("decodes every final; the transcript that finds more is kept")
    expect(backends).to_contain_text("Database")
    expect(backends).to_contain_text("Working")
    limits = page.get_by_role("region", name="Rate limits and retention")
    expect(limits).to_contain_text("1000 a minute per user")

    # A privacy request: logged, then carried out (an export), then downloadable.
    privacy = page.get_by_role("form", name="Log a privacy request")
    privacy.get_by_label("Their e-mail").fill("caller@example.com")
    privacy.get_by_role("button", name="Log request").click()
    expect(page.get_by_text("Request logged.")).to_be_visible()
    page.get_by_role("button", name="Carry out the export of their data request for caller@example.com").click()
    expect(page.get_by_role("link", name="Download export")).to_be_visible()

    # An incident: opened, then moved on.
    incident = page.get_by_role("form", name="Open an incident")
    incident.get_by_label("What happened").fill("Recogniser restarted twice")
    incident.get_by_role("button", name="Open incident").click()
    page.get_by_role("button", name="Mark “Recogniser restarted twice” mitigated").click()
    expect(page.get_by_role("region", name="Incidents")).to_contain_text("Mitigated")
    assert errors == []
    page.context.close()


def test_roles_see_what_they_may_change(live_server: LiveServer, chromium: Browser) -> None:
    page, errors = _settings_page(chromium, live_server, SUPERVISOR_EMAIL, OTHER_PASSWORD)
    expect(page.get_by_role("form", name="Persona").get_by_role("button", name="Save as a new version")).to_be_visible()
    expect(page.get_by_role("region", name="Privacy requests")).to_have_count(0)  # administrators only
    expect(page.get_by_role("region", name="Incidents")).to_have_count(0)
    page.context.close()

    page, errors = _settings_page(chromium, live_server, VIEWER_EMAIL, OTHER_PASSWORD)
    persona = page.get_by_role("form", name="Persona")
    expect(persona.get_by_label("Greeting")).to_be_disabled()
    expect(page.get_by_role("button", name="Save as a new version")).to_have_count(0)
    expect(page.get_by_role("button", name="Roll back", exact=False)).to_have_count(0)
    expect(page.get_by_text("Your role can read the persona but not change it.")).to_be_visible()
    # The server refuses the edit anyway.
    csrf = page.evaluate("() => sessionStorage.getItem('voxdesk.csrf') || ''")
    refused = page.request.put(
        f"{live_server.base_url}/api/personas/default", data={"greeting": "Hacked"}, headers={"X-CSRF-Token": csrf}
    )
    assert refused.status == 403
    assert errors == []
    page.context.close()
