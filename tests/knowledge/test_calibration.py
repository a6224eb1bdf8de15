"""The "not found" threshold derived from the knowledge base itself: real MiniLM, real store, real demo files."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from knowledge import calibration as calib
from knowledge import retrieval as retrieval_module
from knowledge.embedders import create_embedder
from knowledge.embedders.base import Embedder
from knowledge.ingest import prepare
from knowledge.kb import KnowledgeBase
from knowledge.retrieval import CONFIRM_BAND, HybridRetriever, RetrievalConfig
from knowledge.stores.embedded import EmbeddedStore
from tests.knowledge.conftest import KB, demo_files

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SMALL_BASE = ("installation-appointments.txt", "moving-home.docx", "refunds-and-cancellations.docx", "billing-faq.md")


async def _embedder() -> Embedder:
    embedder = create_embedder("minilm", cache_dir=ROOT / "data" / "models")
    await embedder.warm()
    return embedder


async def _base(embedder: Embedder, names: tuple[str, ...]) -> KnowledgeBase:
    store = EmbeddedStore(dimension=embedder.dimension)
    retriever = HybridRetriever(embedder=embedder, store=store, config=RetrievalConfig(score_threshold=0.47))
    kb = KnowledgeBase(embedder=embedder, store=store, retriever=retriever)
    for name, data in demo_files(*names) if names else []:
        prepared = prepare(data, name_hint=name, max_tokens=180, overlap_tokens=30)
        await store.add(await kb.embed_chunks(name, prepared.title or name, prepared.chunks))
    return kb


async def test_calibration_from_a_small_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = await _embedder()
    kb = await _base(embedder, SMALL_BASE)
    cal = await kb.retriever.enable_calibration(tmp_path)
    assert cal.source == "calibrated" and calib.BOUNDS[0] <= cal.threshold <= calib.BOUNDS[1]
    assert cal.positives >= 20 and cal.negatives == len(calib.OFF_TOPIC)
    assert cal.negative_p95 is not None and cal.positive_median is not None
    assert cal.negative_p95 < cal.threshold < cal.positive_median
    assert kb.retriever.config.score_threshold == cal.threshold  # the retriever answers with it
    stored = json.loads((tmp_path / calib.FILE_NAME).read_text())
    assert stored["fingerprint"] == cal.fingerprint and stored["model_id"] == embedder.model_id

    # Questions the small base answers are found, questions it does not are not (the team's own wording).
    for question in ("How much does installation cost on Kestrel Flex?", "How early must I tell you I am moving?"):
        assert (await kb.retrieve(question)).found, question
    for question in ("Who won the football cup final?", "What is the best recipe for pancakes?"):
        assert not (await kb.retrieve(question)).found, question

    # Unchanged base, same model: the stored calibration is reused, not derived again.
    again = await _base(embedder, SMALL_BASE)
    reused = await again.retriever.enable_calibration(tmp_path)
    assert reused == cal

    # The base changes: the next retrieval notices (a cheap count), and the threshold is derived again.
    monkeypatch.setattr(retrieval_module, "CHANGE_CHECK_S", 0.0)
    await again.store.delete_document("billing-faq.md")
    await again.retrieve("When will I get my bill?")
    await again.retriever.calibration_settled()
    changed = again.retriever.calibration
    assert changed is not None and changed.fingerprint != cal.fingerprint and changed.chunks < cal.chunks
    assert json.loads((tmp_path / calib.FILE_NAME).read_text())["fingerprint"] == changed.fingerprint
    assert again.retriever.config.score_threshold == changed.threshold


async def test_a_base_too_small_keeps_the_configured_threshold(tmp_path: Path) -> None:
    embedder = await _embedder()
    kb = await _base(embedder, ())
    cal = await kb.retriever.enable_calibration(tmp_path)
    assert cal.source == "configured" and cal.threshold == 0.47 and cal.chunks == 0


def test_positive_probes_come_from_the_base_itself() -> None:
    """Headings become questions scored against the text without the heading; a held-back sentence is a probe."""
    from knowledge.types import StoredChunk

    text = (
        "Refunds > Early termination fee\nIf you leave a 12-month contract early, we charge a fee for each month. "
        "Kestrel Flex customers pay no early termination fee at all. The fee is capped at the contract's end. "
        "You will see the fee on your final bill."
    )
    chunk = StoredChunk(
        id="d:0", document_id="d", seq=0, text=text, vector=(), title="t", heading="Refunds > Early termination fee"
    )
    probes = calib.positive_probes([chunk])
    assert probes[0][0] == "What about early termination fee?"
    assert "Early termination fee\n" not in probes[0][2]
    held, _, rest = probes[1]
    assert held in text and held not in rest


def test_the_knowledge_api_shows_the_calibration(kb: KB) -> None:
    """GET /api/knowledge/calibration: what the console's knowledge page shows; it changes with the base."""
    empty = kb.client.get("/api/knowledge/calibration", headers=kb.headers("agent"))
    assert empty.status_code == 200, empty.text
    assert empty.json()["source"] == "configured" and empty.json()["threshold"] == 0.47
    assert empty.json()["current"] is True and empty.json()["confirm_from"] == round(0.47 - CONFIRM_BAND, 3)
    assert kb.upload(*demo_files(*SMALL_BASE)).status_code == 202
    kb.wait_settled()
    # The base changed and no question has been asked since: the request itself starts the re-calibration, and
    # says the threshold it shows is not yet the changed base's (the knowledge page polls until it is).
    stale = kb.client.get("/api/knowledge/calibration", headers=kb.headers("agent")).json()
    assert stale["current"] is False and stale["threshold"] == 0.47
    body = stale
    for _ in range(600):
        if body["current"] and not body["calibrating"]:
            break
        time.sleep(0.1)
        body = kb.client.get("/api/knowledge/calibration", headers=kb.headers("agent")).json()
    assert body["current"] is True and body["calibrating"] is False
    assert body["source"] == "calibrated" and body["chunks"] > 10 and body["configured_threshold"] == 0.47
    assert body["threshold"] != 0.47 and body["fingerprint"] and body["model_id"]
    assert body["confirm_from"] == round(body["threshold"] - CONFIRM_BAND, 3)
    # Typed test queries are judged by the same threshold as calls.
    answer = kb.client.post("/api/rag/query", json={"question": "Can I change my appointment?"}, headers=kb.headers())
    assert answer.json()["found"] is (answer.json()["passages"][0]["score"] >= body["threshold"])

    # voxdesk doctor reads the stored calibration and checks it against the database's record of the passages.
    from agent.cli.doctor import _calibration_line

    settings = kb.state.settings
    line = asyncio.run(_calibration_line(settings))
    assert f"{body['threshold']} (calibrated" in line and "STALE" not in line, line
    gone = next(d for d in kb.wait_settled() if d["filename"] == SMALL_BASE[0])
    assert kb.client.delete(f"/api/knowledge/documents/{gone['id']}", headers=kb.headers()).status_code == 204
    line = asyncio.run(_calibration_line(settings))
    assert f"STALE: the documents changed since, {body['chunks'] - gone['chunk_count']} passages now" in line, line


async def test_doctor_shows_the_calibration(tmp_path: Path) -> None:
    from agent.cli.doctor import _calibration_line
    from tests.conftest import make_settings

    settings = make_settings(tmp_path)
    assert "not calibrated yet" in await _calibration_line(settings)
    cal = calib.Calibration(
        threshold=0.512,
        source="calibrated",
        fingerprint="0123456789abcdef",
        model_id="minilm@int8",
        chunks=40,
        positive_median=0.63,
        negative_p95=0.39,
        calibrated_at="2026-12-04T18:00:00+00:00",
    )
    calib.save(calib.directory_for(settings.data_dir), cal)
    line = await _calibration_line(settings)  # no database to check it against here: shown as stored
    assert "0.512 (calibrated" in line and "40 passages" in line and "0123456789ab" in line and "STALE" not in line
    off = make_settings(tmp_path, knowledge={"calibrate": False, "score_threshold": 0.5})
    assert (await _calibration_line(off)).startswith("not-found threshold: 0.5 (configured")
