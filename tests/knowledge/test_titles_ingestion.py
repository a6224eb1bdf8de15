"""Titles through ingestion on the real parsers: the Knowledge page, citations, and what keyword search reads."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import select, update

from config import Settings
from control_api.db.engine import create_engine, session_factory
from control_api.db.migrate import upgrade
from control_api.db.models import KnowledgeChunk, KnowledgeDocument
from control_api.services import sops
from control_api.services.analysis import resolve_citations
from tests.knowledge.conftest import KB, demo_files

pytestmark = pytest.mark.integration

PRICING_CSV = (
    b"question,answer\n"
    b"How much is the Basic plan?,The Basic plan costs $29 a month and includes unlimited data.\n"
    b"Is there a setup fee?,There is no setup fee on any plan when you sign up online.\n"
)
GUIDE_MD = (
    b"# KESTREL BROADBAND - SERVICE GUIDE\n\n"
    b"## Engineer visits\n\n"
    b"An engineer visit to fix a fault on our network is free. A visit for a fault inside your home costs $65.\n"
)


def workbook(title: str | None) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Question", "Answer"])
    sheet.append(["Can I watch Kestrel TV abroad?", "Kestrel TV works in the UK only; abroad it shows no channels."])
    if title is not None:
        book.properties.title = title
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def ingest(kb: KB, name: str, data: bytes) -> dict[str, Any]:
    r = kb.upload((name, data))
    assert r.status_code == 202, r.text
    (document,) = [d for d in kb.wait_settled() if d["filename"] == name]
    assert document["status"] == "ready", document
    return document


def stored_title(kb: KB, document_id: str) -> str | None:
    async def run() -> str | None:
        async with kb.state.sessions() as session:
            return await session.scalar(select(KnowledgeDocument.title).where(KnowledgeDocument.id == document_id))

    assert kb.client.portal is not None
    return kb.client.portal.call(run)


def top_passage(kb: KB, question: str) -> dict[str, Any]:
    r = kb.client.post("/api/rag/query", json={"question": question}, headers=kb.headers("agent"))
    assert r.status_code == 200, r.text
    passage: dict[str, Any] = r.json()["passages"][0]
    return passage


def indexed(kb: KB, chunk_id: str) -> tuple[str | None, str | None]:
    """The chunk's name as keyword search reads it, and as citations show it."""
    assert kb.client.portal is not None
    (chunk,) = kb.client.portal.call(kb.state.knowledge.kb.store.get, [chunk_id])  # type: ignore[union-attr]
    return chunk.title, chunk.display_title


def test_a_csv_is_titled_from_its_file_name(kb: KB) -> None:
    document = ingest(kb, "pricing_plans.csv", PRICING_CSV)
    assert document["title"] == "Pricing plans"  # the Knowledge page
    assert stored_title(kb, document["id"]) == "pricing_plans.csv"  # a CSV gives no title of its own
    top = top_passage(kb, "How much is the Basic plan?")
    assert top["document_id"] == document["id"]
    assert top["title"] == "Pricing plans (pricing_plans.csv)"
    assert top["citation"].startswith("Pricing plans (pricing_plans.csv), section ")
    # Keyword search reads the file name, as it did before titles were made readable.
    assert indexed(kb, top["chunk_id"]) == ("pricing_plans.csv", "Pricing plans (pricing_plans.csv)")


def test_a_workbook_is_titled_by_its_title_property_or_else_its_file_name(kb: KB) -> None:
    untitled = ingest(kb, "kestrel-tv-faq.xlsx", demo_files("kestrel-tv-faq.xlsx")[0][1])
    assert untitled["title"] == "Kestrel TV FAQ"
    titled = ingest(kb, "tv_abroad.xlsx", workbook("Watching Kestrel TV abroad"))
    assert titled["title"] == "Watching Kestrel TV abroad"
    assert stored_title(kb, titled["id"]) == "Watching Kestrel TV abroad"
    top = top_passage(kb, "Can I watch Kestrel TV when I am abroad?")
    assert top["document_id"] == titled["id"]
    assert top["citation"].startswith("Watching Kestrel TV abroad (tv_abroad.xlsx), ")
    shouting = ingest(kb, "tv_guide.xlsx", workbook("KESTREL TV - CHANNEL GUIDE"))
    assert shouting["title"] == "Kestrel TV - Channel Guide"


def test_an_all_caps_heading_is_titled_as_a_person_writes_it(kb: KB) -> None:
    guide = ingest(kb, "service-guide.md", GUIDE_MD)
    assert guide["title"] == "Kestrel Broadband - Service Guide"
    assert stored_title(kb, guide["id"]) == "Kestrel Broadband - Service Guide"
    top = top_passage(kb, "How much does an engineer visit cost?")
    assert top["document_id"] == guide["id"]
    assert top["citation"] == 'Kestrel Broadband - Service Guide (service-guide.md), section "Engineer visits", chunk 1'
    # The heading path keeps the file's capitals (it is indexed text); keyword search ignores case anyway.
    assert top["heading"] == "KESTREL BROADBAND - SERVICE GUIDE > Engineer visits"
    text = ingest(kb, *demo_files("installation-appointments.txt")[0])
    assert text["title"] == "Kestrel Broadband - Installation Appointments"


def test_documents_stored_before_read_well_after_a_restart(tmp_path: Path) -> None:
    """Rows ingested before titles were made readable keep their stored title; the console and citations don't."""
    from tests.knowledge.conftest import kb_settings, restart, start

    settings = kb_settings(tmp_path)
    for kb in start(settings):
        text = ingest(kb, *demo_files("installation-appointments.txt")[0])

        async def as_before(kb: KB = kb, document_id: str = text["id"]) -> None:
            async with kb.state.sessions() as session:
                old = update(KnowledgeDocument).where(KnowledgeDocument.id == document_id)
                await session.execute(old.values(title="KESTREL BROADBAND - INSTALLATION APPOINTMENTS"))
                await session.commit()

        assert kb.client.portal is not None
        kb.client.portal.call(as_before)
        tokens = kb.tokens
    for kb in restart(settings, tokens):
        (document,) = kb.wait_settled()
        assert document["title"] == "Kestrel Broadband - Installation Appointments"
        top = top_passage(kb, "Which appointment times can I choose for installation?")
        shown = "Kestrel Broadband - Installation Appointments (installation-appointments.txt)"
        assert top["citation"].startswith(shown)
        title, _ = indexed(kb, top["chunk_id"])
        assert title == "KESTREL BROADBAND - INSTALLATION APPOINTMENTS (installation-appointments.txt)"


async def test_a_calls_citations_find_their_passage_in_either_form(settings: Settings) -> None:
    """Citations recorded before titles were made readable, and after, both lead to their passage."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        async with session_factory(engine)() as session:
            for doc, filename, title in (
                ("d1", "general-faq.csv", "general-faq.csv"),  # no title of its own: the file name is stored
                ("d2", "guide.txt", "KESTREL BROADBAND - SERVICE GUIDE"),  # stored before titles were readable
            ):
                session.add(
                    KnowledgeDocument(
                        id=doc, filename=filename, title=title, sha256=doc * 32, storage_path="p", status="ready"
                    )
                )
                await session.flush()
                session.add(KnowledgeChunk(id=f"{doc}:0", document_id=doc, seq=0, text=f"Text of {doc}."))
            await session.commit()
            cited = {
                "General FAQ (general-faq.csv), chunk 1": "d1:0",
                "general-faq.csv, chunk 1": "d1:0",
                "Kestrel Broadband - Service Guide (guide.txt), chunk 1": "d2:0",
                "KESTREL BROADBAND - SERVICE GUIDE (guide.txt), chunk 1": "d2:0",
            }
            found = await resolve_citations(session, [*cited, "d1:0"])
        assert {c: found[c][0] for c in cited if c in found} == cited
        # A call's topics name the document as a person reads it, whichever form the citation took.
        titles = {c: found[c][3] for c in found}
        assert titles == {
            "General FAQ (general-faq.csv), chunk 1": "General FAQ",
            "general-faq.csv, chunk 1": "General FAQ",
            "Kestrel Broadband - Service Guide (guide.txt), chunk 1": "Kestrel Broadband - Service Guide",
            "KESTREL BROADBAND - SERVICE GUIDE (guide.txt), chunk 1": "Kestrel Broadband - Service Guide",
            "d1:0": "General FAQ",
        }
        # A drafted SOP's passages name their document the same way.
        async with session_factory(engine)() as session:
            steps = [sops._Step(kind="answer", text="", chunk_id=c) for c in ("d1:0", "d2:0")]
            passages = await sops._describe_passages(session, steps)
        assert [p["title"] for p in passages] == ["General FAQ", "Kestrel Broadband - Service Guide"]
    finally:
        await engine.dispose()
