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


# The persistent backends only: the in-memory store keeps nothing across a restart, by design.
@pytest.mark.parametrize("factory", ["embedded-disk", "weaviate"], indirect=True)
async def test_survives_reopen(factory: Factory) -> None:
    first = factory()
    await first.clear()
    await first.add(CORPUS)
    await first.close()
    second = factory()
    try:
        assert await second.count() == 4
        hits = await second.hybrid_search("late payment", np.asarray(unit(1, 0, 0), dtype=np.float32), top_k=1)
        assert hits[0].chunk.id == "billing:0"
    finally:
        await second.clear()
        await second.close()


async def test_embedded_rebuilds_a_stale_graph_snapshot(tmp_path: Path) -> None:
    """A crash between the SQLite commit and the graph snapshot leaves them disagreeing: the graph is rebuilt."""
    path = tmp_path / "store"
    first = EmbeddedStore(dimension=DIM, path=path)
    await first.add(CORPUS[:2])
    snapshot = (path / "vectors.hnsw").read_bytes(), (path / "vectors.json").read_bytes()
    await first.add(CORPUS[2:])
    await first.close()
    (path / "vectors.hnsw").write_bytes(snapshot[0])  # as if the process died before writing the new snapshot
    (path / "vectors.json").write_bytes(snapshot[1])
    second = EmbeddedStore(dimension=DIM, path=path)
    try:
        hits = await second.vector_search(np.asarray(unit(0, 0, 1), dtype=np.float32), top_k=1)
        assert hits[0].chunk.id == "hours:0"
        assert await second.count() == 4
    finally:
        await second.close()


@pytest.mark.parametrize(("dimension", "model"), [(DIM * 2, "model-a"), (DIM, "model-b")])
async def test_embedded_drops_vectors_of_another_model(tmp_path: Path, dimension: int, model: str) -> None:
    store = EmbeddedStore(dimension=DIM, path=tmp_path / "store", model_id="model-a")
    await store.add(CORPUS)
    await store.close()
    reopened = EmbeddedStore(dimension=dimension, path=tmp_path / "store", model_id=model)
    try:
        assert reopened.needs_reindex is True
        assert await reopened.count() == 0
    finally:
        await reopened.close()
    again = EmbeddedStore(dimension=dimension, path=tmp_path / "store", model_id=model)
    assert again.needs_reindex is False
    await again.close()


async def test_embedded_loads_its_saved_keyword_index_and_rebuilds_a_stale_one(tmp_path: Path) -> None:
    path = tmp_path / "store"
    first = EmbeddedStore(dimension=DIM, path=path)
    await first.add(CORPUS)
    await first.close()
    assert (path / "bm25" / "generation.json").exists()
    second = EmbeddedStore(dimension=DIM, path=path)
    assert [h.chunk.id for h in await second.keyword_search("reset pin", top_k=1)] == ["router:0"]
    await second.add([chunk("extra", 0, "Kestrel TV has more than 80 channels.", unit(0, 0, 0, 1))])
    await second.close()
    (path / "bm25" / "generation.json").write_text('{"generation": 0, "count": 1}')  # as if a save was lost
    third = EmbeddedStore(dimension=DIM, path=path)
    try:
        assert [h.chunk.id for h in await third.keyword_search("how many channels", top_k=1)] == ["extra:0"]
    finally:
        await third.close()
