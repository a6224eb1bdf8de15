"""The knowledge base: one object that the control plane, the CLI and the agent share.

Build it with :func:`build_knowledge_base` (plain keyword values, usually from ``settings.knowledge``).
Interfaces other rooms rely on (kept stable):

- ``await kb.retrieve(question, top_k=5) -> Retrieval`` with ``found``, ``passages`` (``text``, ``score``,
  ``document_id``, ``chunk_id``, ``citation``) and ``latency_ms``: the agent wraps it into
  ``pipelines.contracts.Retriever``.
- ``kb.embedder.embed(texts) -> list[list[float]]`` (unit-normalised): ``pipelines.contracts.TextEmbedder``.
- ``await kb.prepare(data, name_hint=...)`` and ``await kb.embed_chunks(...)``: the two steps of ingestion.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Sequence
from pathlib import Path

from knowledge.embedders import create_embedder
from knowledge.embedders.base import Embedder
from knowledge.ingest import PreparedDocument, prepare_isolated
from knowledge.rerank import CrossEncoderReranker
from knowledge.retrieval import HybridRetriever, RetrievalConfig
from knowledge.stores import BACKENDS as STORE_BACKENDS
from knowledge.stores.base import VectorStore
from knowledge.types import Chunk, Retrieval, StoredChunk

EMBED_BATCH = 16


def chunk_id(document_id: str, seq: int) -> str:
    """The stable id of a document's ``seq``-th chunk."""
    return f"{document_id}:{seq}"


class KnowledgeBase:
    """Embedder + store + retriever, with the ingestion steps.

    Args:
        embedder: The embedder (also used by the voice side for tool matching).
        store: The vector store.
        retriever: The hybrid retriever over the two.
        chunk_tokens: Chunk size bound.
        chunk_overlap: Chunk overlap.

    """

    def __init__(
        self,
        *,
        embedder: Embedder,
        store: VectorStore,
        retriever: HybridRetriever,
        chunk_tokens: int = 180,
        chunk_overlap: int = 30,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.retriever = retriever
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap

    async def prepare(self, data: bytes, *, name_hint: str | None) -> PreparedDocument:
        """Parse and chunk a file in an isolated child process."""
        return await prepare_isolated(
            data, name_hint=name_hint, max_tokens=self.chunk_tokens, overlap_tokens=self.chunk_overlap
        )

    async def embed_chunks(
        self, document_id: str, title: str | None, chunks: Sequence[Chunk], *, display_title: str | None = None
    ) -> list[StoredChunk]:
        """Embed chunks in small batches (the loop gets a turn between batches).

        ``title`` is the document's name as keyword search reads it, ``display_title`` as citations show it
        (see :class:`knowledge.types.StoredChunk`).
        """
        stored: list[StoredChunk] = []
        for start in range(0, len(chunks), EMBED_BATCH):
            batch = chunks[start : start + EMBED_BATCH]
            vectors = await self.embedder.embed_array([c.text for c in batch])
            stored.extend(
                StoredChunk(
                    id=chunk_id(document_id, c.seq),
                    document_id=document_id,
                    seq=c.seq,
                    text=c.text,
                    vector=tuple(float(x) for x in v),
                    title=title,
                    heading=c.heading,
                    page=c.page,
                    display_title=display_title,
                )
                for c, v in zip(batch, vectors, strict=True)
            )
            await asyncio.sleep(0)
        return stored

    async def retrieve(self, question: str, *, top_k: int = 5) -> Retrieval:
        """Retrieve passages (see :class:`knowledge.retrieval.HybridRetriever`)."""
        return await self.retriever.retrieve(question, top_k=top_k)

    async def warm(self) -> None:
        """Load the embedding model (and the reranker) so the first question is fast."""
        await self.embedder.warm()
        if self.retriever.reranker is not None:
            await self.retriever.reranker.warm()

    async def close(self) -> None:
        """Persist the store and close clients."""
        await self.store.close()
        await self.embedder.close()


def create_store(
    kind: str,
    *,
    dimension: int,
    path: Path | None,
    url: str | None,
    api_key: str | None,
    model_id: str | None = None,
) -> VectorStore:
    """Build the vector store named ``kind`` (one of ``knowledge.stores.BACKENDS``)."""
    try:
        module_name, _, class_name = STORE_BACKENDS[kind].partition(":")
    except KeyError:
        raise ValueError(f"unknown vector store {kind!r}; expected one of {sorted(STORE_BACKENDS)}") from None
    cls = getattr(importlib.import_module(module_name), class_name)
    store: VectorStore = cls.from_options(dimension=dimension, path=path, url=url, api_key=api_key, model_id=model_id)
    return store


async def build_knowledge_base(
    *,
    data_dir: Path,
    store: str = "embedded",
    embedder: str = "minilm",
    embedder_model: str | None = None,
    embedder_base_url: str | None = None,
    embedder_api_key: str | None = None,
    weaviate_url: str | None = None,
    weaviate_api_key: str | None = None,
    chunk_tokens: int = 180,
    chunk_overlap: int = 30,
    score_threshold: float = 0.47,
    reranker_path: Path | None = None,
    models_dir: Path | None = None,
) -> KnowledgeBase:
    """Build the knowledge base from plain settings values.

    The embedder is warmed first (remote embedders report their dimension then); the embedded store lives in
    ``<data_dir>/knowledge/embedded``.
    """
    emb = create_embedder(
        embedder,
        model=embedder_model,
        base_url=embedder_base_url,
        api_key=embedder_api_key,
        cache_dir=models_dir or data_dir / "models",
    )
    await emb.warm()
    vector_store = await asyncio.to_thread(
        create_store,
        store,
        dimension=emb.dimension,
        path=data_dir / "knowledge" / store,
        url=weaviate_url,
        api_key=weaviate_api_key,
        model_id=emb.model_id,
    )
    reranker = CrossEncoderReranker(model_path=reranker_path) if reranker_path else None
    retriever = HybridRetriever(
        embedder=emb, store=vector_store, config=RetrievalConfig(score_threshold=score_threshold), reranker=reranker
    )
    return KnowledgeBase(
        embedder=emb, store=vector_store, retriever=retriever, chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap
    )
