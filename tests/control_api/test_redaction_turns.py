"""Whose words keep what: the desk's turns keep the contacts the business published, nothing of the caller's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from config import Settings
from control_api.db.engine import create_engine, session_factory
from control_api.db.migrate import upgrade
from control_api.db.models import CallTurn, KnowledgeChunk, KnowledgeDocument, Persona
from control_api.services import calls
from tests.conftest import fresh_postgres_database

pytestmark = pytest.mark.integration

KB_TEXT = (
    "Contact us\n\nE-mail Support@Kestrel.example or call 1800 555 0199 (24x7). "
    "Billing questions: billing@kestrel.example."
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[AsyncEngine]:
    """A migrated database on each supported backend."""
    if request.param == "sqlite":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.database_url
        engine = create_engine(url)
        await upgrade(engine)
        yield engine
        await engine.dispose()
        return
    with fresh_postgres_database() as url:
        engine = create_engine(url)
        await upgrade(engine)
        yield engine
        await engine.dispose()


async def _seed(engine: AsyncEngine, *, status: str = "ready") -> str:
    """A knowledge-base document with the company's contacts, a persona, and a call from a known number."""
    async with session_factory(engine)() as session:
        document = KnowledgeDocument(filename="contact.md", sha256="c" * 64, storage_path="contact.md", status=status)
        session.add(document)
        await session.flush()
        session.add(KnowledgeChunk(id="contact-0", document_id=document.id, seq=0, text=KB_TEXT))
        persona = Persona(
            name="kestrel",
            greeting="Thanks for calling Kestrel Broadband. Texts work too: +44 20 7946 0018.",
            consent_notice="This call may be recorded.",
        )
        session.add(persona)
        await session.commit()
        call = await calls.create_call(
            session,
            channel="webrtc",
            persona_id=persona.id,
            caller_number="+91 98765 43210",
            caller_email="priya@example.in",
        )
        return call.id


async def _stored(engine: AsyncEngine, call_id: str, turns: list[tuple[str, str]]) -> list[str]:
    async with session_factory(engine)() as session:
        for seq, (role, text) in enumerate(turns, start=1):
            await calls.append_turn(session, call_id, seq=seq, role=role, text=text)
        rows = await session.execute(select(CallTurn.text).where(CallTurn.call_id == call_id).order_by(CallTurn.seq))
        return list(rows.scalars())


async def test_the_agent_keeps_what_the_business_published(engine: AsyncEngine) -> None:
    call_id = await _seed(engine)
    stored = await _stored(
        engine,
        call_id,
        [
            ("agent", "Email support@kestrel.example"),
            ("agent", "You can also call 1800-555-0199 or text +44 20 7946 0018."),
            ("agent", "That's one eight hundred, five five five, oh one nine nine."),
            ("human", "For invoices write to billing@kestrel.example, that's the fastest."),
            # The caller saying the company's address is the caller's turn: redacted in full.
            ("caller", "I already wrote to support@kestrel.example twice"),
        ],
    )
    assert stored == [
        "Email support@kestrel.example",
        "You can also call 1800-555-0199 or text +44 20 7946 0018.",
        "That's one eight hundred, five five five, oh one nine nine.",
        "For invoices write to billing@kestrel.example, that's the fastest.",
        "I already wrote to [EMAIL] twice",
    ]


async def test_the_agent_repeating_the_callers_data_is_redacted(engine: AsyncEngine) -> None:
    call_id = await _seed(engine)
    stored = await _stored(
        engine,
        call_id,
        [
            (
                "caller",
                "my email is priya.s@example.in and my card is four one one one one one one one one one one "
                "one one one one one",
            ),
            ("agent", "Thanks. I have priya.s@example.in and the card 4111 1111 1111 1111, is that right?"),
            ("agent", "I'll call you back on 98765 43210, or write to priya@example.in. Our line is 1800 555 0199."),
            ("agent", "Your Aadhaar 2345 6789 0124 and PAN ABCPE1234F are verified."),
            ("caller", "call me on nine eight seven six five four three two one oh"),
            ("agent", "Noted: nine eight seven six five four three two one oh."),
        ],
    )
    assert stored == [
        "my email is [EMAIL] and my card is [CARD]",
        "Thanks. I have [EMAIL] and the card [CARD], is that right?",
        "I'll call you back on [PHONE], or write to [EMAIL]. Our line is 1800 555 0199.",
        "Your Aadhaar [AADHAAR] and PAN [PAN] are verified.",
        "call me on [PHONE]",
        "Noted: [PHONE].",
    ]


async def test_only_ready_documents_publish(engine: AsyncEngine) -> None:
    call_id = await _seed(engine, status="failed")
    stored = await _stored(engine, call_id, [("agent", "Email support@kestrel.example")])
    assert stored == ["Email [EMAIL]"]


async def test_the_callers_own_contact_is_never_published(engine: AsyncEngine) -> None:
    await _seed(engine)
    async with session_factory(engine)() as session:
        # A colleague testing the line from the billing desk: on this call the address is the caller's.
        own = await calls.create_call(session, channel="webrtc", caller_email="Billing@Kestrel.example")
    stored = await _stored(engine, own.id, [("agent", "Write to billing@kestrel.example or support@kestrel.example")])
    assert stored == ["Write to [EMAIL] or support@kestrel.example"]
