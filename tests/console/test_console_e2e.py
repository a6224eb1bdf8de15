"""The web console end to end: a real server, a real database and headless Chromium.

Screenshots go to ``$VOXDESK_CONSOLE_SHOTS`` when set (for a person to look at), else to a temp dir.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from email import message_from_bytes
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, FilePayload, Page, Request, expect, sync_playwright

from tests.console.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    AGENT_EMAIL,
    CHROMIUM,
    CHROMIUM_ARGS,
    OLD_CALLS,
    OTHER_PASSWORD,
    SUPERVISOR_EMAIL,
    VIEWER_EMAIL,
    LiveServer,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TIMEOUT_MS = 15_000
T = TypeVar("T")


class PageWatch:
    """Every request the page makes and every console error it logs."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []

    def on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} @ {message.location}")

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"page error: {error}")

    def foreign_requests(self) -> list[str]:
        """Requests to anywhere but the loopback test server (data: and blob: URLs are local)."""
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme not in {"data", "blob"} and urlsplit(url).hostname != "127.0.0.1"
        ]


@pytest.fixture
def browser(browser_dir: Path) -> Iterator[BrowserContext]:
    """Headless Chromium (the Debian build; never a downloaded one) at 1280×800."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(browser_dir),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
            accept_downloads=True,
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


def _open(context: BrowserContext) -> tuple[Page, PageWatch]:
    page = context.pages[0] if context.pages else context.new_page()
    watch = PageWatch()
    page.on("request", watch.on_request)
    page.on("console", watch.on_console)
    page.on("pageerror", watch.on_page_error)
    return page, watch


def _sign_in(page: Page, server: LiveServer, email: str, password: str, landing: str) -> None:
    page.goto(f"{server.base_url}/console")
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=landing, exact=True)).to_be_visible()


def _sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()


def _reset_token(server: LiveServer, email: str) -> str:
    """The token of the newest reset mail to ``email`` (no SMTP host is set, so mail goes to the outbox)."""
    outbox = server.settings.data_dir / "outbox"
    messages = [message_from_bytes(path.read_bytes()) for path in sorted(outbox.glob("*.eml"), key=os.path.getmtime)]
    bodies = [m.get_payload(decode=True) for m in messages if m["To"] == email]
    assert bodies, f"no mail to {email} in {outbox}"
    match = re.search(rb"Reset token: (\S+)", bodies[-1])  # type: ignore[arg-type]
    assert match is not None
    return match.group(1).decode()


def _nav_links(page: Page) -> list[str]:
    nav = page.get_by_role("navigation", name="Main")
    return [link.inner_text().strip() for link in nav.get_by_role("link").all() if link.is_visible()]


def test_sign_in_dashboard_calls_and_sign_out(live_server: LiveServer, browser: BrowserContext, shots: Path) -> None:
    """Sign in, read the dashboard, open a seeded call's transcript, annotate it, sign out."""
    page, watch = _open(browser)
    page.goto(f"{live_server.base_url}/console")
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    page.screenshot(path=shots / "01-sign-in.png")

    # A wrong password shows the server's problem detail.
    page.get_by_label("E-mail").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("e-mail or password is wrong")

    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator("#who")).to_contain_text("Asha Admin")

    # Dashboard: one live call, three today, two ended (one resolved, one handed off).
    expect(page.locator('[data-stat="live_calls"] .tile-value')).to_have_text("1")
    expect(page.locator('[data-stat="calls_today"] .tile-value')).to_have_text("3")
    expect(page.locator('[data-stat="containment_rate"] .tile-value')).to_have_text("50.0 %")
    expect(page.locator('[data-stat="handoff_rate"] .tile-value')).to_have_text("50.0 %")
    expect(page.locator('[data-stat="latency"] .tile-value')).to_have_text("640 ms")
    # Outcomes in the console's one mapping: the same colour for "Passed to a person" on every page.
    colour = "(el) => getComputedStyle(el).backgroundColor"
    handed_off = page.locator(".legend li", has_text="Passed to a person").locator(".swatch").evaluate(colour)
    page.screenshot(path=shots / "02-dashboard.png")

    # Calls list: both seeded calls, the ended one opens to its transcript.
    page.get_by_role("link", name="Calls", exact=True).click()
    expect(page.get_by_role("heading", name="Calls")).to_be_visible()
    rows = page.locator("tbody tr[data-call-id]")
    expect(rows).to_have_count(25)  # one page, newest first: today's three, then yesterday's
    expect(rows.nth(0)).to_contain_text("+441632960001")
    page.get_by_role("button", name="Load more").click()  # the next page, from the API's cursor
    expect(rows).to_have_count(3 + OLD_CALLS)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    export = page.get_by_role("link", name="Export CSV")
    expect(export).to_have_attribute("href", re.compile(r"^/api/calls/export\.csv"))
    csv_answer = page.request.get(live_server.base_url + (export.get_attribute("href") or ""))
    assert csv_answer.status == 200
    assert csv_answer.headers["content-type"].startswith("text/csv")
    assert len(csv_answer.text().strip().splitlines()) == 1 + 3 + OLD_CALLS  # the header and every call
    page.screenshot(path=shots / "03-calls.png")
    # Filters go to the API (and into the export link): ended calls, then a word from one transcript.
    filters = page.get_by_role("search", name="Filter calls")
    filters.get_by_label("Status").select_option("ended")
    filters.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(2)
    expect(export).to_have_attribute("href", re.compile(r"status=ended"))
    filters.get_by_label("Search").fill("microwave")
    filters.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"#/calls\?q=microwave&status=ended"))
    filters.get_by_role("button", name="Clear").click()
    expect(rows).to_have_count(25)
    # The outcome filter offers every outcome of the rule, and the list's pill has the dashboard's colour.
    outcome_choices = filters.get_by_label("Outcome").locator("option").all_text_contents()
    assert {"Question not answered", "Callback requested", "Passed to a person"} <= set(outcome_choices)
    filters.get_by_label("Outcome").select_option("handed_off")
    filters.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("Meera Shah")
    expect(rows.nth(0).locator(".pill-outcome")).to_have_text("Passed to a person")
    assert rows.nth(0).locator(".pill-outcome .swatch").evaluate(colour) == handed_off
    filters.get_by_role("button", name="Clear").click()
    expect(rows).to_have_count(25)
    page.get_by_role("link", name="Ravi Kumar").click()

    expect(page.get_by_role("heading", name="Call with Ravi Kumar")).to_be_visible()
    transcript = page.get_by_role("list", name="Transcript")
    for line in [*live_server.seeded.caller_lines, *live_server.seeded.agent_lines]:
        expect(transcript).to_contain_text(line)
    expect(transcript.locator('li[data-role="caller"]')).to_have_count(2)
    expect(transcript.locator('li[data-role="agent"]')).to_have_count(2)
    expect(transcript.locator(".latency-chip").first).to_contain_text("640 ms")
    # The outcome once, in words (the Summary, by the containment rule): no badge, no second wording in Analysis.
    expect(page.get_by_role("heading", name="Analysis")).to_be_visible()
    expect(page.locator("#analysis-title + *")).not_to_have_class("loading")
    expect(page.get_by_text("Answered by the agent", exact=True)).to_have_count(1)
    expect(page.get_by_text("Resolved by the AI")).to_have_count(0)

    # The recording plays from the API (same origin, cookie session; the read is audited).
    audio = page.get_by_label("Call recording")
    expect(audio).to_have_attribute("src", f"/api/calls/{live_server.seeded.ended_call_id}/recording")
    recording = page.request.get(live_server.base_url + (audio.get_attribute("src") or ""))
    assert recording.status == 200
    assert recording.headers["content-type"].startswith("audio/")
    assert recording.body()[:4] == b"RIFF"

    # Notes and tags are saved through PUT /api/calls/{id} (cookie session + CSRF header).
    page.get_by_role("textbox", name="Disposition", exact=True).fill("router advice")
    page.get_by_role("textbox", name="Tags", exact=True).fill("wifi, evening")
    page.get_by_role("textbox", name="Notes", exact=True).fill("Caller happy after the restart tip.")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Call updated.")).to_be_visible()
    page.screenshot(path=shots / "04-call-detail.png", full_page=True)
    page.reload()
    expect(page.get_by_role("textbox", name="Tags", exact=True)).to_have_value("wifi, evening")

    # Users: invite with a password, promote, deactivate; the audit log shows what happened.
    page.get_by_role("link", name="Users", exact=True).click()
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    invite = page.get_by_role("form", name="Invite a user")
    invite.get_by_label("E-mail").fill(AGENT_EMAIL)
    invite.get_by_label("Name").fill("Nina New")
    invite.get_by_label("Role").select_option("agent")
    invite.get_by_label("Password (optional)").fill("nina-new-password-1")
    invite.get_by_role("button", name="Invite").click()
    expect(page.get_by_role("alert")).to_contain_text("already exists")  # the server's problem detail, shown
    invite.get_by_label("E-mail").fill("new.agent@example.com")
    invite.get_by_role("button", name="Invite").click()
    expect(page.get_by_text("Account created for new.agent@example.com.")).to_be_visible()
    page.get_by_label("Role of new.agent@example.com").select_option("supervisor")
    expect(page.get_by_text("new.agent@example.com is now supervisor.")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Deactivate new.agent@example.com").click()
    expect(page.get_by_role("button", name="Reactivate new.agent@example.com")).to_be_visible()
    page.screenshot(path=shots / "05-users.png")

    page.get_by_role("link", name="Audit log", exact=True).click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    audit_table = page.get_by_role("table")
    for action in ("users.create", "users.update", "users.deactivate", "calls.update", "transcripts.read"):
        expect(audit_table).to_contain_text(action)
    page.screenshot(path=shots / "06-audit.png")

    # Sign out: back to the sign-in page, and the old session cookie no longer works (revoked, not just dropped).
    session_cookie = next(c["value"] for c in browser.cookies() if c["name"] == "voxdesk_session")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    assert not [c for c in browser.cookies() if c["name"] == "voxdesk_session"]
    me = page.request.get(
        f"{live_server.base_url}/api/auth/me", headers={"Cookie": f"voxdesk_session={session_cookie}"}
    )
    assert me.status == 401
    page.screenshot(path=shots / "07-signed-out.png")

    assert watch.foreign_requests() == []
    # Expected: the 401 of /api/auth/me before sign-in and of the wrong password (Chromium logs failed loads).
    # And the 409 of the invitation to a taken e-mail.
    unexpected = [e for e in watch.errors if not re.search(r"status of (401|409)", e)]
    assert unexpected == []


def test_roles_see_only_their_pages(live_server: LiveServer, browser: BrowserContext) -> None:
    """An agent gets their own calls and no admin pages; a viewer gets only the dashboard."""
    page, watch = _open(browser)

    _sign_in(page, live_server, AGENT_EMAIL, OTHER_PASSWORD, landing="Calls")
    links = _nav_links(page)
    assert links[:2] == ["Calls", "Knowledge"]  # (pages of other issues, such as the agents' desk, may follow)
    assert not {"Dashboard", "Users", "Audit log", "Analytics", "Settings"} & set(links)
    rows = page.locator("tbody tr[data-call-id]")
    expect(rows).to_have_count(1)  # the server scopes the list: only the call this agent took
    expect(rows.first).to_have_attribute("data-call-id", live_server.seeded.agent_call_id)
    # An agent may not export every call: the link is not offered.
    expect(page.get_by_role("link", name="Export CSV")).to_have_count(0)
    page.get_by_role("link", name="Meera Shah").click()
    expect(page.get_by_role("heading", name="Call with Meera Shah")).to_be_visible()
    expect(page.get_by_role("button", name="Save")).to_be_visible()  # agents annotate the calls they took
    page.goto(f"{live_server.base_url}/console#/users")
    expect(page.get_by_role("heading", name="Not available")).to_be_visible()
    page.goto(f"{live_server.base_url}/console#/calls/{live_server.seeded.ended_call_id}")
    expect(page.get_by_role("alert")).to_contain_text("No call with this id.")  # another agent's call: 404
    _sign_out(page)

    _sign_in(page, live_server, VIEWER_EMAIL, OTHER_PASSWORD, landing="Dashboard")
    assert _nav_links(page) == ["Dashboard", "Analytics", "Settings"]
    expect(page.locator('[data-stat="calls_today"] .tile-value')).to_have_text("3")
    page.goto(f"{live_server.base_url}/console#/calls")
    expect(page.get_by_role("heading", name="Not available")).to_be_visible()
    _sign_out(page)

    # A forgotten password, through the console: ask, read the mail (outbox folder), choose a new one, sign in.
    page.get_by_role("link", name="Reset it").click()
    expect(page.get_by_role("heading", name="Reset your password")).to_be_visible()
    page.get_by_label("E-mail").fill(VIEWER_EMAIL)
    page.get_by_role("button", name="E-mail me a reset link").click()
    expect(page.get_by_text("If an account has this address, a reset link is on its way.")).to_be_visible()
    page.goto(f"{live_server.base_url}/console/reset-password?token={_reset_token(live_server, VIEWER_EMAIL)}")
    page.get_by_label("New password", exact=True).fill("viewer-new-password-2")
    page.get_by_label("Repeat the password").fill("viewer-new-password-2")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("status").filter(has_text="Your password is set.")).to_be_visible()
    page.get_by_role("link", name="Sign in").click()
    _sign_in(page, live_server, VIEWER_EMAIL, "viewer-new-password-2", landing="Dashboard")
    _sign_out(page)

    assert watch.foreign_requests() == []
    # Expected: 401 of /api/auth/me before each sign-in, and the 404 of the call this agent may not see.
    unexpected = [e for e in watch.errors if not re.search(r"status of (401|404)", e)]
    assert unexpected == []


ROUTER_LIGHTS_MD = b"""# Kestrel Hub lights

## Blinking orange light

A blinking orange light on the Kestrel Hub means the broadband line is not synchronised.
Check that the grey DSL cable is firmly plugged into the wall socket, then wait two minutes.

## Solid white light

A solid white light means the hub is connected and working normally.
"""


def test_knowledge_upload_question_and_delete(live_server: LiveServer, browser: BrowserContext, shots: Path) -> None:
    """Upload a Markdown file, watch it reach ``ready``, ask a question, see the gap list, delete the file."""
    page, watch = _open(browser)
    _sign_in(page, live_server, ADMIN_EMAIL, ADMIN_PASSWORD, landing="Dashboard")
    page.get_by_role("link", name="Knowledge", exact=True).click()
    expect(page.get_by_role("heading", name="Knowledge", exact=True)).to_be_visible()
    # The "not found" threshold in force and how the base got it (GET /api/knowledge/calibration).
    threshold = page.get_by_role("region", name="When the desk says it does not know")
    expect(threshold.locator("dl.facts")).to_contain_text("Not-found threshold")
    expect(threshold.locator("dl.facts")).to_contain_text("the base has no passages yet")
    expect(threshold.get_by_role("status")).to_have_text("Derived again whenever documents are added or removed.")
    before = threshold.locator("dl.facts").inner_text()

    upload = page.get_by_role("form", name="Upload documents")
    markdown: FilePayload = {"name": "router-lights.md", "mimeType": "text/markdown", "buffer": ROUTER_LIGHTS_MD}
    upload.locator('input[type="file"]').set_input_files([markdown])
    upload.get_by_role("button", name="Upload").click()
    expect(page.get_by_text("1 file queued for ingestion.")).to_be_visible()
    row = page.locator("tbody tr[data-document-id]", has_text="router-lights.md")
    # Ingestion (parse, chunk, embed with the local model) runs in the server; the page polls until it ends.
    expect(row).to_have_attribute("data-status", "ready", timeout=90_000)
    # The base changed: the page looks at the threshold again and waits until it is the changed base's.
    expect(threshold.locator("dl.facts")).not_to_have_text(before, timeout=90_000)
    expect(threshold.locator("dl.facts")).to_contain_text("2 passages are too few to derive the base's own")
    expect(threshold.get_by_role("status")).to_have_text("Derived again whenever documents are added or removed.")
    page.screenshot(path=shots / "08-knowledge.png", full_page=True)

    ask = page.get_by_role("form", name="Test a question")
    ask.get_by_label("Question").fill("What does a blinking orange light mean?")
    ask.get_by_role("button", name="Ask").click()
    expect(page.locator(".verdict")).to_contain_text("Found")
    # What the agent would say: the extractive brain's sentences, not the heading path or the whole section.
    said = page.get_by_label("What the agent would say")
    expect(said).to_contain_text("means the broadband line is not synchronised.")
    expect(said).not_to_contain_text("Kestrel Hub lights >")
    expect(said).not_to_contain_text("Solid white light")
    answering = page.locator(".passages .passage", has_text="not synchronised")
    expect(answering).to_have_count(1)
    expect(answering.locator(".citation")).to_contain_text("router-lights.md")
    expect(answering.locator(".citation")).to_contain_text("Blinking orange light")
    page.screenshot(path=shots / "09-knowledge-answer.png", full_page=True)

    ask.get_by_label("Question").fill("What is the airspeed velocity of an unladen swallow?")
    ask.get_by_role("button", name="Ask").click()
    expect(page.locator(".verdict")).to_contain_text("Not found")
    page.reload()
    expect(page.get_by_role("region", name="Questions the desk could not answer")).to_contain_text("unladen swallow")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete router-lights.md").click()
    expect(page.get_by_text("router-lights.md deleted.")).to_be_visible()
    expect(row).to_have_count(0)

    assert watch.foreign_requests() == []
    unexpected = [e for e in watch.errors if "status of 401" not in e]
    assert unexpected == []


def test_every_page_renders_under_its_strict_policy(
    browser: BrowserContext, live_server: LiveServer, shots: Path
) -> None:
    # The API docs and the caller page run with a same-origin, never-framed CSP: a violation would be a console error.
    page, watch = _open(browser)
    for path in ("/api/docs", "/call"):
        response = page.goto(f"{live_server.base_url}{path}")
        assert response is not None
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path
        if path == "/api/docs":
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("Voxdesk")
        else:
            expect(page.get_by_role("button", name="Call")).to_be_visible()
            assert "microphone=(self)" in headers["permissions-policy"]
        page.screenshot(path=str(shots / f"policy{path.replace('/', '-')}.png"))
    assert not watch.errors, watch.errors
    assert not watch.foreign_requests(), watch.foreign_requests()


def _in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on its own loop (Playwright's sync API holds this thread's loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _callbacks(server: LiveServer, count: int) -> list[str]:
    """``count`` handoffs of the seeded ended call that nobody took, each with its callback request (oldest first)."""
    from control_api.db.engine import create_engine, session_factory
    from control_api.db.models import Handoff
    from control_api.services import handoffs

    async def run() -> list[str]:
        engine = create_engine(server.settings.database_url)
        try:
            async with session_factory(engine)() as session:
                ids = []
                for _ in range(count):
                    handoff = Handoff(
                        call_id=server.seeded.ended_call_id,
                        status="timed_out",
                        reason="asked for a person",
                        source="phrase",
                        briefing={"summary": "Broadband drops every evening.", "reason": "asked for a person"},
                    )
                    session.add(handoff)
                    await session.flush()
                    ids.append((await handoffs.record_callback(session, handoff, reason="timed_out")).id)
                return ids
        finally:
            await engine.dispose()

    return _in_thread(run())


def _claim_as(server: LiveServer, email: str, callback_id: str) -> None:
    """Someone else claims the callback (another browser, as far as the page can tell)."""
    from sqlalchemy import select

    from control_api.db.engine import create_engine, session_factory
    from control_api.db.models import User
    from control_api.services import callbacks

    async def run() -> None:
        engine = create_engine(server.settings.database_url)
        try:
            async with session_factory(engine)() as session:
                person = (await session.execute(select(User).where(User.email == email))).scalar_one()
                await callbacks.claim(session, callback_id, person)
        finally:
            await engine.dispose()

    _in_thread(run())


def _presence(server: LiveServer, email: str, status: str) -> None:
    """Someone's presence on the desk, as the desk would have stored it."""
    from sqlalchemy import select

    from control_api.db.engine import create_engine, session_factory
    from control_api.db.models import AgentPresence, User

    async def run() -> None:
        engine = create_engine(server.settings.database_url)
        try:
            async with session_factory(engine)() as session:
                person = (await session.execute(select(User).where(User.email == email))).scalar_one()
                session.add(AgentPresence(user_id=person.id, status=status))
                await session.commit()
        finally:
            await engine.dispose()

    _in_thread(run())


def test_an_agent_claims_and_completes_a_callback(
    live_server: LiveServer, browser: BrowserContext, shots: Path
) -> None:
    """The callback queue: oldest first; a claim someone else made first is refused in the page; claim, complete."""
    taken_first, waiting = _callbacks(live_server, 2)
    page, watch = _open(browser)
    _sign_in(page, live_server, AGENT_EMAIL, OTHER_PASSWORD, landing="Calls")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Callbacks", exact=True).click()
    expect(page.get_by_role("heading", name="Callbacks", exact=True)).to_be_visible()
    rows = page.locator("tbody tr[data-callback-id]")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-callback-id", taken_first)
    expect(rows.first).to_contain_text("+919812345678")
    expect(rows.first).to_contain_text("Nobody answered in time")
    expect(rows.first).to_contain_text("Broadband drops every evening.")
    page.screenshot(path=shots / "callbacks-open.png")

    # The supervisor got there first: the page says who, and the callback leaves this agent's queue.
    _claim_as(live_server, SUPERVISOR_EMAIL, taken_first)
    rows.first.get_by_role("button", name="Claim").click()
    expect(page.get_by_role("alert")).to_have_text("Already claimed by Sam Supervisor.")
    expect(rows).to_have_count(1)

    mine = page.locator(f'tbody tr[data-callback-id="{waiting}"]')
    expect(mine.get_by_role("link")).to_have_count(0)  # not their call, nor their callback yet
    mine.get_by_role("button", name="Claim").click()
    expect(mine).to_have_attribute("data-status", "claimed")
    expect(mine).to_contain_text("You")
    expect(page.get_by_role("alert")).to_be_hidden()
    # The call of a callback they hold opens for them (transcript and summary), read only.
    mine.get_by_role("link", name="Open the call from +919812345678").click()
    expect(page.get_by_role("heading", name="Call with Ravi Kumar")).to_be_visible()
    # In the transcript (the summary may quote the same line once the call's analysis is in).
    transcript = page.get_by_role("region", name=re.compile(r"^Transcript"))
    expect(transcript.get_by_text(live_server.seeded.caller_lines[0])).to_be_visible()
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    page.go_back()
    expect(mine).to_have_attribute("data-status", "claimed")
    mine.get_by_role("button", name="Complete").click()
    form = page.get_by_role("form", name="Complete the callback to +919812345678")
    form.get_by_label("Outcome").select_option(label="Left a voicemail")
    form.get_by_label("Note").fill("Left a message about the evening drops.")
    form.get_by_role("button", name="Save").click()
    expect(rows).to_have_count(0)
    expect(page.get_by_text("No callers waiting for a call back.")).to_be_visible()

    page.get_by_label("Show").select_option("done")
    expect(rows).to_have_count(1)
    expect(mine).to_contain_text("Left a voicemail")
    expect(mine).to_contain_text("Left a message about the evening drops.")
    page.screenshot(path=shots / "callbacks-done.png")
    _sign_out(page)

    # The supervisor sees their claim with a link to the call, hands it on, and puts it back in the queue.
    _presence(live_server, AGENT_EMAIL, "away")
    _sign_in(page, live_server, SUPERVISOR_EMAIL, OTHER_PASSWORD, landing="Dashboard")
    page.goto(f"{live_server.base_url}/console#/callbacks")
    held = page.locator(f'tbody tr[data-callback-id="{taken_first}"]')
    expect(held).to_have_attribute("data-status", "claimed")
    expect(held.get_by_role("link", name="Open the call")).to_have_attribute(
        "href", f"#/calls/{live_server.seeded.ended_call_id}"
    )
    # Anyone who takes handoffs may be picked, presence set or not (the admin never set one), with that presence
    # beside the name; the viewer and deactivated accounts are not offered. The supervisor hands it to the agent.
    to = held.get_by_label("Hand this callback to")
    expect(to).to_contain_text("Arjun Agent — away")
    expect(to).to_contain_text("Asha Admin — offline")
    offered = to.locator("option").all_text_contents()
    assert not [o for o in offered if o.startswith(("Vera Viewer", "Nina New", "Sam Supervisor"))], offered
    to.select_option(label="Arjun Agent — away")
    held.get_by_role("button", name="Reassign").click()
    expect(held.locator("td").nth(4)).to_have_text("Arjun Agent")  # the "Claimed by" column
    held.get_by_role("button", name="Release").click()
    expect(held).to_have_attribute("data-status", "open")
    expect(held.get_by_role("button", name="Claim")).to_be_visible()
    _sign_out(page)

    assert watch.foreign_requests() == []
    # Expected: the 401 of /api/auth/me before signing in and the 409 of the refused claim.
    unexpected = [e for e in watch.errors if not re.search(r"status of (401|409)", e)]
    assert unexpected == []
