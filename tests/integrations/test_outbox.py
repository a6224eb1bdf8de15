"""The outbox on PostgreSQL and SQLite: events commit with their cause, and dispatchers never double-send."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from control_api.db.engine import create_engine, session_factory
from control_api.db.migrate import upgrade
from control_api.db.models import Call, Integration, OutboxDelivery
from control_api.integrations import outbox
from control_api.integrations.dispatcher import Dispatcher, RetryPolicy
from control_api.integrations.http import GuardedHttp
from control_api.integrations.secrets import SecretBox
from control_api.services import calls as call_service
from tests.integrations.conftest import WEBHOOK_SECRET
from tests.integrations.standins import WebhookReceiver

pytestmark = pytest.mark.integration
BOX = SecretBox("k" * 40)


def _dispatcher(engine: AsyncEngine) -> Dispatcher:
    return Dispatcher(
        sessions=session_factory(engine),
        box=BOX,
        http=GuardedHttp(allowed_private_hosts=["127.0.0.1"], timeout_secs=5),
        retry=RetryPolicy(max_attempts=5, initial_secs=0.05, max_secs=0.2),
        poll_interval_secs=0.05,
        batch=4,
    )


async def _hook(engine: AsyncEngine, url: str) -> Integration:
    async with session_factory(engine)() as session:
        integration = Integration(
            kind="webhook",
            name="hook",
            config={"url": url, "events": []},
            secret=BOX.seal({"signing_secret": WEBHOOK_SECRET}),
        )
        session.add(integration)
        await session.commit()
        return integration


async def _two_dispatchers_deliver_each_once(url: str, receiver: WebhookReceiver) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
        await _hook(engine, receiver.url + "/hooks/voxdesk")
        sessions = session_factory(engine)
        for _ in range(20):
            async with sessions() as session:
                await call_service.create_call(session, channel="webrtc")
        first, second = _dispatcher(engine), _dispatcher(engine)
        first.start()
        second.start()
        try:
            for _ in range(400):
                if len(receiver.events()) >= 20:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # a duplicate, if any, would arrive now
        finally:
            await first.stop()
            await second.stop()
        ids = Counter(e["id"] for e in receiver.events())
        assert len(ids) == 20 and set(ids.values()) == {1}
        async with sessions() as session:
            statuses = (await session.execute(select(OutboxDelivery.status, func.count()).group_by("status"))).all()
        assert dict(statuses) == {"delivered": 20}  # type: ignore[arg-type]
    finally:
        await engine.dispose()


async def test_two_dispatchers_share_the_outbox_on_postgresql(postgres_url: str, receiver: WebhookReceiver) -> None:
    await _two_dispatchers_deliver_each_once(postgres_url, receiver)


async def test_two_dispatchers_share_the_outbox_on_sqlite(tmp_path: Path, receiver: WebhookReceiver) -> None:
    await _two_dispatchers_deliver_each_once(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}", receiver)


async def test_the_event_and_its_deliveries_commit_together(tmp_path: Path, receiver: WebhookReceiver) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    try:
        await upgrade(engine)
        await _hook(engine, receiver.url + "/hooks/voxdesk")
        sessions = session_factory(engine)
        async with sessions() as session:
            session.add(Call(id="c-1", channel="webrtc"))
            await session.flush()
            await outbox.emit(session, "call.started", {"call_id": "c-1"}, call_id="c-1", key="c-1")
            await session.rollback()  # the cause is rolled back: so is the work it owed
        async with sessions() as session:
            assert (await session.execute(select(func.count()).select_from(OutboxDelivery))).scalar_one() == 0
            call = await call_service.create_call(session, channel="webrtc")
            await call_service.end_call(session, call.id, reason="done")
            await call_service.end_call(session, call.id, reason="done")  # idempotent: no second event
            events = (await session.execute(select(OutboxDelivery.event))).scalars().all()
        assert sorted(events) == ["call.ended", "call.started"]
    finally:
        await engine.dispose()


async def test_a_lost_claim_is_resumed_after_its_lease(tmp_path: Path, receiver: WebhookReceiver) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'l.db'}")
    try:
        await upgrade(engine)
        await _hook(engine, receiver.url + "/hooks/voxdesk")
        async with session_factory(engine)() as session:
            await call_service.create_call(session, channel="webrtc")
        crashed = Dispatcher(
            sessions=session_factory(engine),
            box=BOX,
            http=GuardedHttp(allowed_private_hosts=["127.0.0.1"]),
            retry=RetryPolicy(),
            lease_secs=2.0,  # long enough that a busy machine cannot let it run out before the next line
        )
        assert len(await crashed.claim()) == 1  # claimed, then its process "dies" before sending
        await crashed.stop()
        survivor = _dispatcher(engine)
        assert await survivor.run_once() == 0  # the lease still holds
        await asyncio.sleep(2.05)
        assert await survivor.run_once() == 1
        await survivor.stop()
        assert len(receiver.events()) == 1
        async with session_factory(engine)() as session:
            delivery = (await session.execute(select(OutboxDelivery))).scalar_one()
        # The first send may have arrived: the next attempt is marked to look before re-creating.
        assert delivery.status == "delivered" and delivery.ambiguous is True
    finally:
        await engine.dispose()
