"""The one conformance suite every vector store backend passes (after Haystack's document-store test base).

Backends: the embedded store in memory and on disk, and Weaviate when ``VOXDESK_TEST_WEAVIATE_URL`` is set
(skipped otherwise, with that reason: no Weaviate server runs on this machine).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from knowledge.errors import StoreError
from knowledge.stores.base import VectorStore
from knowledge.stores.embedded import EmbeddedStore
from knowledge.types import StoredChunk

pytestmark = pytest.mark.unit

DIM = 8
WEAVIATE_URL = os.environ.get("VOXDESK_TEST_WEAVIATE_URL")


def unit(*values: float) -> tuple[float, ...]:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(values)] = values
    vector /= np.linalg.norm(vector)
    return tuple(float(x) for x in vector)


def chunk(doc: str, seq: int, text: str, vector: tuple[float, ...], **extra: object) -> StoredChunk:
    return StoredChunk(id=f"{doc}:{seq}", document_id=doc, seq=seq, text=text, vector=vector, **extra)  # type: ignore[arg-type]


CORPUS = [
    chunk(
        "billing", 0, "Billing FAQ > Late payment\nA late payment fee of $7.50 is added after 10 days.", unit(1, 0, 0)
    ),
    chunk("billing", 1, "Billing FAQ > Paper bills\nA printed paper bill costs $2 per month.", unit(0.9, 0.3, 0)),
    chunk("router", 0, "Router guide > Factory reset\nHold the reset pin for 15 seconds.", unit(0, 1, 0), page=4),
    chunk("hours", 0, "Contact > Opening hours\nLive chat is open every day from 7am to 11pm.", unit(0, 0, 1)),
]

Factory = Callable[[], VectorStore]


def _weaviate_factory(collection: str) -> Factory:
    from knowledge.stores.weaviate import WeaviateStore

    return lambda: WeaviateStore(url=WEAVIATE_URL or "", dimension=DIM, collection=collection)


@pytest.fixture(params=["embedded-memory", "embedded-disk", "weaviate"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    if request.param == "embedded-memory":
        store = EmbeddedStore(dimension=DIM)
        return lambda: store
    if request.param == "embedded-disk":
        return lambda: EmbeddedStore(dimension=DIM, path=tmp_path / "store")
    if not WEAVIATE_URL:
        pytest.skip("Weaviate not exercised: set VOXDESK_TEST_WEAVIATE_URL to a Weaviate server to run this backend")
    return _weaviate_factory("VoxdeskTest" + uuid.uuid4().hex[:8])


@pytest.fixture
async def store(factory: Factory) -> AsyncIterator[VectorStore]:
    instance = factory()
    await instance.clear()
    yield instance
    await instance.clear()
    await instance.close()


async def test_empty_store_finds_nothing(store: VectorStore) -> None:
    assert await store.count() == 0
    assert await store.vector_search(np.asarray(unit(1), dtype=np.float32), top_k=5) == []
    assert await store.keyword_search("late payment", top_k=5) == []
    assert await store.hybrid_search("late payment", np.asarray(unit(1), dtype=np.float32), top_k=5) == []


async def test_add_count_get(store: VectorStore) -> None:
    await store.add(CORPUS)
    assert await store.count() == 4
    assert await store.count("billing") == 2
    assert dict(await store.document_counts()) == {"billing": 2, "router": 1, "hours": 1}
    got = await store.get(["router:0", "missing", "billing:1"])
    assert [c.id for c in got] == ["router:0", "billing:1"]
    assert got[0].page == 4 and got[0].document_id == "router"
    assert np.allclose(got[0].vector, unit(0, 1, 0), atol=1e-5)


async def test_the_display_title_is_carried_not_searched(store: VectorStore) -> None:
    # Keyword search reads the title (here the file name); citations show the display title, never searched.
    faq = chunk(
        "faq",
        0,
        "Setup fee\nThere is no setup fee when you sign up online.",
        unit(0, 0, 0, 1),
        title="pricing_plans.csv",
        display_title="Tariffs (pricing_plans.csv)",
    )
    await store.add([*CORPUS, faq])
    hits = await store.hybrid_search("setup fee", np.asarray(unit(0, 0, 0, 1), dtype=np.float32), top_k=1)
    assert [(h.chunk.title, h.chunk.display_title) for h in hits] == [
        ("pricing_plans.csv", "Tariffs (pricing_plans.csv)")
    ]
    (got,) = await store.get(["faq:0"])
    assert got.display_title == "Tariffs (pricing_plans.csv)"
    assert [h.chunk.id for h in await store.keyword_search("pricing plans", top_k=5)] == ["faq:0"]
    assert await store.keyword_search("tariffs", top_k=5) == []


async def test_re_adding_a_chunk_replaces_it(store: VectorStore) -> None:
    await store.add(CORPUS)
    await store.add([chunk("billing", 0, "Billing FAQ > Late payment\nThe late fee is now $9.", unit(1, 0, 0))])
    assert await store.count() == 4
    hits = await store.keyword_search("late fee", top_k=5)
    assert [h.chunk.text for h in hits if h.chunk.id == "billing:0"] == [
        "Billing FAQ > Late payment\nThe late fee is now $9."
    ]


async def test_vector_search_ranks_by_cosine(store: VectorStore) -> None:
    await store.add(CORPUS)
    hits = await store.vector_search(np.asarray(unit(1, 0.1, 0), dtype=np.float32), top_k=2)
    assert [h.chunk.id for h in hits] == ["billing:0", "billing:1"]
    assert hits[0].score > hits[1].score
    assert hits[0].score == pytest.approx(float(np.dot(unit(1, 0.1, 0), unit(1, 0, 0))), abs=1e-3)


async def test_keyword_search_matches_terms(store: VectorStore) -> None:
    await store.add(CORPUS)
    hits = await store.keyword_search("how long do I hold the reset pin", top_k=3)
    assert hits and hits[0].chunk.id == "router:0"
    assert await store.keyword_search("zzzunknownword", top_k=3) == []


async def test_hybrid_search_fuses_both_and_scores_every_hit(store: VectorStore) -> None:
    await store.add(CORPUS)
    # The vector points at opening hours, the words at the router: both must come back, each with a cosine.
    hits = await store.hybrid_search("reset pin seconds", np.asarray(unit(0, 0, 1), dtype=np.float32), top_k=4)
    ids = [h.chunk.id for h in hits]
    assert "router:0" in ids[:2] and "hours:0" in ids[:2]
    assert all(h.vector_score is not None for h in hits)
    router = next(h for h in hits if h.chunk.id == "router:0")
    assert router.vector_score == pytest.approx(0.0, abs=1e-3)


async def test_delete_document(store: VectorStore) -> None:
    await store.add(CORPUS)
    assert await store.delete_document("billing") == 2
    assert await store.count() == 2
    assert await store.delete_document("billing") == 0
    assert all(h.chunk.document_id != "billing" for h in await store.keyword_search("late payment fee", top_k=5))
    hits = await store.vector_search(np.asarray(unit(1, 0, 0), dtype=np.float32), top_k=5)
    assert [h.chunk.document_id for h in hits if h.chunk.document_id == "billing"] == []


async def test_wrong_dimension_is_refused(store: VectorStore) -> None:
    with pytest.raises(StoreError):
        await store.add([StoredChunk(id="x:0", document_id="x", seq=0, text="x", vector=(1.0, 0.0))])


async def test_restore_holds_exactly_the_given_chunks(store: VectorStore) -> None:
    # The database is the record: after a restore the store holds its chunks, nothing more, nothing less.
    await store.add([*CORPUS, chunk("gone", 0, "Kestrel TV has more than 80 channels.", unit(0, 0, 0, 1))])
    wanted = [*CORPUS[:3], chunk("new", 0, "Voicemail > Setup\nDial 121 to set up voicemail.", unit(0, 0, 0, 0, 1))]
    report = await store.restore(wanted)
    assert (report.kept, report.added) == (3, 1) and report.removed >= 2
    assert dict(await store.document_counts()) == {"billing": 2, "router": 1, "new": 1}
    assert await store.keyword_search("how many channels", top_k=3) == []
    assert [h.chunk.id for h in await store.keyword_search("set up voicemail", top_k=1)] == ["new:0"]
    hits = await store.vector_search(np.asarray(unit(0, 0, 0, 0, 1), dtype=np.float32), top_k=1)
    assert [h.chunk.id for h in hits] == ["new:0"]
    assert (await store.restore(wanted)).added == 0  # nothing changed: nothing to do


async def test_restore_into_an_empty_store(store: VectorStore) -> None:
    report = await store.restore(CORPUS)
    assert (report.kept, report.added, report.removed) == (0, 4, 0)
    hits = await store.hybrid_search("late payment", np.asarray(unit(1, 0, 0), dtype=np.float32), top_k=1)
    assert hits[0].chunk.id == "billing:0" and hits[0].chunk.title is None


# The persistent backends only: the in-memory store keeps nothing across a restart, by design.
@pytest.mark.parametrize("factory", ["embedded-disk", "weaviate"], indirect=True)
async def test_reopen_and_restore_reuses_what_was_kept(factory: Factory) -> None:
    first = factory()
    await first.clear()
    await first.add(CORPUS)
    await first.close()
    second = factory()
    try:
        report = await second.restore(CORPUS)
        assert (report.kept, report.added, report.removed) == (4, 0, 0)  # nothing was inserted again
        assert await second.count() == 4
        hits = await second.hybrid_search("late payment", np.asarray(unit(1, 0, 0), dtype=np.float32), top_k=1)
        assert hits[0].chunk.id == "billing:0"
    finally:
        await second.clear()
        await second.close()


async def test_embedded_keeps_no_chunks_of_its_own(tmp_path: Path) -> None:
    """On disk the embedded store keeps an index snapshot, not a record: reopened, it holds what it is given."""
    path = tmp_path / "store"
    (path).mkdir()
    (path / "chunks.sqlite3").write_bytes(b"a copy of the chunks written by an earlier version")
    first = EmbeddedStore(dimension=DIM, path=path)
    assert not (path / "chunks.sqlite3").exists()
    await first.add(CORPUS)
    await first.close()
    assert sorted(p.name for p in path.iterdir()) == ["index"]
    second = EmbeddedStore(dimension=DIM, path=path)
    try:
        assert await second.count() == 0
        assert await second.keyword_search("late payment", top_k=1) == []
    finally:
        await second.close()


async def test_embedded_restore_replaces_changed_chunks(tmp_path: Path) -> None:
    path = tmp_path / "store"
    first = EmbeddedStore(dimension=DIM, path=path)
    await first.add(CORPUS)
    await first.close()
    changed = [chunk("billing", 0, "Billing FAQ > Late payment\nThe late fee is now $9.", unit(1, 0, 0)), *CORPUS[1:]]
    second = EmbeddedStore(dimension=DIM, path=path)
    try:
        report = await second.restore(changed)
        assert (report.kept, report.added, report.removed) == (3, 1, 1)
        hits = await second.keyword_search("late fee", top_k=1)
        assert hits[0].chunk.text.endswith("now $9.")
        assert await second.count() == 4
    finally:
        await second.close()


@pytest.mark.parametrize("damage", ["torn-graph", "no-manifest", "between-renames"])
async def test_embedded_survives_a_damaged_snapshot(tmp_path: Path, damage: str) -> None:
    """kill -9 while the snapshot was written: a torn one is rebuilt from the chunks given, a whole one reused."""
    path = tmp_path / "store"
    first = EmbeddedStore(dimension=DIM, path=path)
    await first.add(CORPUS)
    await first.close()
    index = path / "index"
    if damage == "torn-graph":
        (index / "graph.hnsw").write_bytes((index / "graph.hnsw").read_bytes()[:100])
    elif damage == "no-manifest":
        (index / "manifest.json").unlink()
    else:
        index.rename(path / "index.old")
    second = EmbeddedStore(dimension=DIM, path=path)
    try:
        report = await second.restore(CORPUS)
        assert report.added == (4 if damage != "between-renames" else 0)
        hits = await second.vector_search(np.asarray(unit(0, 0, 1), dtype=np.float32), top_k=1)
        assert hits[0].chunk.id == "hours:0"
        assert [h.chunk.id for h in await second.keyword_search("reset pin", top_k=1)] == ["router:0"]
    finally:
        await second.close()


@pytest.mark.parametrize(("dimension", "model"), [(DIM * 2, "model-a"), (DIM, "model-b")])
async def test_embedded_does_not_reuse_a_snapshot_of_another_model(tmp_path: Path, dimension: int, model: str) -> None:
    store = EmbeddedStore(dimension=DIM, path=tmp_path / "store", model_id="model-a")
    await store.add(CORPUS)
    await store.close()
    reopened = EmbeddedStore(dimension=dimension, path=tmp_path / "store", model_id=model)
    try:
        if dimension == DIM:
            assert (await reopened.restore(CORPUS)).added == 4
        else:
            assert (await reopened.restore([])).removed == 0
            with pytest.raises(StoreError):
                await reopened.restore(CORPUS)
    finally:
        await reopened.close()


async def test_embedded_loads_its_saved_keyword_index_and_rebuilds_a_stale_one(tmp_path: Path) -> None:
    path = tmp_path / "store"
    first = EmbeddedStore(dimension=DIM, path=path)
    await first.add(CORPUS)
    await first.close()
    assert (path / "index" / "bm25" / "generation.json").exists()
    second = EmbeddedStore(dimension=DIM, path=path)
    await second.restore(CORPUS)
    assert [h.chunk.id for h in await second.keyword_search("reset pin", top_k=1)] == ["router:0"]
    extra = chunk("extra", 0, "Kestrel TV has more than 80 channels.", unit(0, 0, 0, 1))
    await second.add([extra])
    await second.close()
    (path / "index" / "bm25" / "generation.json").write_text('{"generation": 0}')  # as if a save was lost
    third = EmbeddedStore(dimension=DIM, path=path)
    try:
        assert (await third.restore([*CORPUS, extra])).kept == 5
        assert [h.chunk.id for h in await third.keyword_search("how many channels", top_k=1)] == ["extra:0"]
    finally:
        await third.close()
