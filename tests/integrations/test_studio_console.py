"""The Integration Studio page in headless Chromium against a real server, database and local stand-ins.

Walks: sign in, create a Freshdesk integration from its form, test it, see a ticket die while Freshdesk is down
and retry it from the dead-letter list once it is back (exactly one ticket), read the runs, disable and enable,
build a custom API tool with the live dry run (secrets masked, nothing sent), save it and test it for real.
Screenshots go to ``$VOXDESK_CONSOLE_SHOTS`` when set, else to the test's temp dir.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from config import Settings
from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.control_api.conftest import api_settings
from tests.integrations.conftest import FAST_DELIVERY, FRESHDESK_KEY, wait_for
from tests.integrations.standins import ORDERS_TOKEN, FreshdeskStandIn, OrdersApi, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ADMIN_EMAIL, ADMIN_PASSWORD = "studio-admin@example.com", "studio-admin-pass-1"
TIMEOUT_MS = 15_000


@dataclass
class Studio:
    base_url: str
    settings: Settings


async def _seed(settings: Settings) -> None:
    from control_api.db.engine import create_engine, session_factory
    from control_api.db.migrate import upgrade
    from control_api.rbac import Role
    from control_api.services import users

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        async with session_factory(engine)() as session:
            await users.create_user(
                session, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, role=Role.ADMIN, full_name="Ines Integrator"
            )
    finally:
        await engine.dispose()


async def _queue_ticket(settings: Settings) -> None:
    """A ticket request, written the way the agent's tool writes it (a second process on the same database)."""
    from control_api.db.engine import create_engine, session_factory
    from control_api.services import integrations as service

    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            await service.queue_ticket(
                session, {"subject": "Router broken", "description": "No lights.", "email": "known@caller.example"}
            )
            await session.commit()
    finally:
        await engine.dispose()


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[Studio]:
    from control_api.app import create_app

    settings = api_settings(tmp_path / "server", integrations={**FAST_DELIVERY, "max_attempts": 2})
    asyncio.run(_seed(settings))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="studio-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.05)
    try:
        yield Studio(base_url=f"http://127.0.0.1:{port}", settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def stand_ins() -> Iterator[tuple[FreshdeskStandIn, OrdersApi]]:
    freshdesk, orders = FreshdeskStandIn(FRESHDESK_KEY), OrdersApi()
    freshdesk.start()
    orders.start()
    try:
        yield freshdesk, orders
    finally:
        freshdesk.stop()
        orders.stop()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    with sync_playwright() as playwright:
        context: BrowserContext = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def _shots(tmp_path: Path) -> Path:
    import os

    folder = Path(os.environ.get("VOXDESK_CONSOLE_SHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _row(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator("tbody tr[data-integration-id]").filter(has_text=name)


def test_the_studio_walk(
    studio: Studio, stand_ins: tuple[FreshdeskStandIn, OrdersApi], page: Page, tmp_path: Path
) -> None:
    freshdesk, orders = stand_ins
    shots = _shots(tmp_path)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # The console's first look for a session, before signing in, answers 401: that one is expected.
    page.on(
        "console",
        lambda message: (
            message.type == "error" and "401 (Unauthorized)" not in message.text and errors.append(message.text)
        ),
    )

    page.goto(f"{studio.base_url}/console")
    page.get_by_label("E-mail").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Integrations").click()
    expect(page.get_by_role("heading", name="Integrations", exact=True)).to_be_visible()
    expect(page.get_by_text("0 integrations.")).to_be_visible()

    # Create a Freshdesk integration from its form.
    page.get_by_role("button", name="New integration").click()
    form = page.get_by_role("form", name="New integration")
    form.get_by_label("Name").fill("Helpdesk")
    form.get_by_label("Base URL (instead of the subdomain)").fill(freshdesk.url)
    form.get_by_label("Fallback requester e-mail").fill("calls@acme.example")
    form.get_by_label("API key").fill(FRESHDESK_KEY)
    form.get_by_role("button", name="Create integration").click()
    expect(_row(page, "Helpdesk")).to_contain_text("Freshdesk (tickets)")
    expect(_row(page, "Helpdesk")).to_contain_text("api_key")
    assert FRESHDESK_KEY not in page.content()

    # Test it: the stand-in checks the key.
    page.get_by_role("button", name="Test Helpdesk").click()
    expect(page.get_by_text("Helpdesk: test succeeded (200")).to_be_visible()

    # Freshdesk goes down; a ticket dies after its attempts; it comes back; the supervisor's retry files it once.
    freshdesk.stop()
    # Playwright's sync API owns this thread's event loop: the database write runs in a thread of its own.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _queue_ticket(studio.settings)).result()
    dead_rows = page.locator("tbody tr[data-delivery-id]")

    def dead_shown() -> bool:
        page.reload()
        expect(page.get_by_text("2 integrations.").or_(page.get_by_text("1 integration."))).to_be_visible()
        return dead_rows.count() == 1

    wait_for(dead_shown, timeout=30, what="the dead-lettered ticket in the list")
    expect(dead_rows.first).to_contain_text("ticket.create")
    expect(dead_rows.first).to_contain_text("could not be reached")
    page.screenshot(path=shots / "studio-01-dead-letter.png", full_page=True)
    freshdesk.start()
    dead_rows.first.get_by_role("button", name="Retry").click()
    expect(page.get_by_text("Delivery queued again.")).to_be_visible()
    wait_for(lambda: freshdesk.tickets, what="the retried ticket")
    page.get_by_role("button", name="Runs Helpdesk").click()
    runs = page.locator("section[aria-labelledby='integration-runs-title'] tbody tr")
    expect(runs.filter(has_text="Succeeded")).to_have_count(1)
    expect(runs.filter(has_text="Failed")).to_have_count(2)
    assert len(freshdesk.tickets) == 1 and freshdesk.violations == []

    # Disable, then enable again.
    page.get_by_role("button", name="Disable Helpdesk").click()
    expect(_row(page, "Helpdesk")).to_contain_text("Disabled")
    page.get_by_role("button", name="Enable Helpdesk").click()
    expect(_row(page, "Helpdesk")).to_contain_text("Enabled")

    # Build a custom API tool with the live dry run.
    page.get_by_role("button", name="New integration").click()
    form = page.get_by_role("form", name="New integration")
    form.get_by_label("Name").fill("Orders")
    form.get_by_label("Type").select_option("custom_api")
    form.get_by_label("Method").select_option("POST")
    form.get_by_label("URL template").fill(orders.url + "/v1/orders/{{ args.order_id | urlencode }}/status")
    form.get_by_label("Body template").fill('{"order": {{ args.order_id | tojson }}}')
    form.get_by_label("Response mapping (name → JSON pointer or dotted path)").fill('{"status": "/order/status"}')
    form.get_by_label("Arguments (JSON)").fill('{"order_id": "1234"}')
    form.get_by_label("Secrets (JSON)").fill(f'{{"token": "{ORDERS_TOKEN}"}}')
    preview = form.locator("[data-role='dry-run']")
    expect(preview).to_contain_text(f"POST {orders.url}/v1/orders/1234/status")
    expect(preview).to_contain_text("Authorization: Bearer ‹secret token›")
    expect(preview).to_contain_text('{"order": "1234"}')
    form.get_by_label("URL template").fill("http://{{ args.host }}/v1")
    expect(form.get_by_text("scheme and host must be literal")).to_be_visible()
    form.get_by_label("URL template").fill(orders.url + "/v1/orders/{{ args.order_id | urlencode }}/status")
    expect(preview).to_contain_text("/v1/orders/1234/status")
    page.screenshot(path=shots / "studio-02-custom-api-dry-run.png", full_page=True)
    assert orders.requests == []  # the dry run sent nothing
    form.get_by_role("button", name="Create integration").click()
    expect(_row(page, "Orders")).to_contain_text("tool check_order_status")
    page.get_by_role("button", name="Test Orders").click()
    expect(page.get_by_text("Orders: test succeeded (200")).to_be_visible()
    assert orders.requests[0]["headers"]["Authorization"] == f"Bearer {ORDERS_TOKEN}"

    # Edit keeps the stored secret when its field is left empty.
    page.get_by_role("button", name="Edit Orders").click()
    form = page.get_by_role("form", name="Edit Orders")
    form.get_by_label("What the agent says").fill("Your order is {{ status }}.")
    form.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Orders saved.")).to_be_visible()
    page.get_by_role("button", name="Test Orders").click()
    expect(page.get_by_text("Orders: test succeeded (200")).to_have_count(2)
    page.screenshot(path=shots / "studio-03-list.png", full_page=True)
    assert errors == [], errors
