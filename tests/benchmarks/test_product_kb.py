"""``benchmarks/product_kb.py``: the demo knowledge base, ingested once, searched by the shipped service."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.product_kb import DEMO_DIR, READY, cited, cites, ingested_demo, open_demo_knowledge

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_each_copy_is_private_and_the_ingestion_is_done_once(tmp_path: Path) -> None:
    async with open_demo_knowledge(tmp_path / "a") as first:
        cached = await ingested_demo(first.settings)
        built_at = (cached.parent / READY).stat().st_mtime_ns
        retrieval = await first.retriever.retrieve("How long is the password reset link valid?", call_id="call-a")
        assert retrieval.found
        top = retrieval.passages[0]
        assert cites(top.citation, "account-and-security.md", "Resetting your password")
        assert "30 minutes" in top.body and not top.body.startswith(top.heading or "\0")
        assert await first.logged_questions() == ["How long is the password reset link valid?"]
    async with open_demo_knowledge(tmp_path / "b") as second:
        assert await ingested_demo(second.settings) == cached
        assert await second.logged_questions() == [], "the first copy's query log is its own"
        assert await second.corpus() and "0800 555 0199" in await second.corpus()
    assert (cached.parent / READY).stat().st_mtime_ns == built_at
    assert (cached / "voxdesk.db").is_file() and first.settings.data_dir == tmp_path / "a" != cached


async def test_every_citation_names_its_file(tmp_path: Path) -> None:
    files = {p.name for p in DEMO_DIR.iterdir()}
    async with open_demo_knowledge(tmp_path / "kb") as kb:
        for question in ("router lights", "refund", "sports package", "opening hours", "moving home"):
            retrieval = await kb.retriever.retrieve(question, top_k=10, log=False)
            for passage in retrieval.passages:
                file, section = cited(passage.citation)
                assert file in files, passage.citation
                assert section is None or (passage.heading or "").endswith(section)
    assert cited("not a citation") == (None, None)
    assert not cites(None, "billing-faq.md")
