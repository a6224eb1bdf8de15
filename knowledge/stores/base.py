"""The vector store interface every backend implements, and the fusion they share.

Stores hold :class:`knowledge.types.StoredChunk` objects (text, unit vector, citation fields) and answer three
searches: by vector (cosine), by keywords (BM25) and hybrid (both, fused with reciprocal rank fusion). Chunk
ids are stable (``<document_id>:<seq>``), so adding a chunk that is already there replaces it: re-running an
interrupted ingestion never duplicates. One conformance suite (``tests/knowledge/test_store_conformance.py``)
runs against every backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from knowledge.types import Hit, StoredChunk

RRF_K = 60


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], *, k: int = RRF_K) -> dict[str, float]:
    """Fuse rankings of ids: each id scores the sum of ``1 / (k + rank)`` over the rankings it appears in."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


class VectorStore(ABC):
    """A searchable collection of chunks.

    Every method is async; CPU-bound backends run their work in worker threads so the event loop stays free.
    """

    name: str = "base"
    # Set when the store found vectors of another embedding model and dropped them: re-embed every document.
    needs_reindex: bool = False

    @abstractmethod
    async def add(self, chunks: Sequence[StoredChunk]) -> None:
        """Add chunks (with vectors); a chunk whose id exists replaces the old one."""

    @abstractmethod
    async def delete_document(self, document_id: str) -> int:
        """Remove every chunk of a document; returns how many were removed."""

    @abstractmethod
    async def get(self, chunk_ids: Sequence[str]) -> list[StoredChunk]:
        """The chunks with these ids that exist, with their vectors, in the order asked."""

    @abstractmethod
    async def count(self, document_id: str | None = None) -> int:
        """Number of chunks (of one document, or all)."""

    @abstractmethod
    async def document_counts(self) -> Mapping[str, int]:
        """Chunks per document id (used to reconcile the store with the database on start)."""

    @abstractmethod
    async def vector_search(self, vector: npt.NDArray[np.float32], *, top_k: int) -> list[Hit]:
        """Nearest chunks by cosine similarity, best first (``Hit.score`` is the cosine)."""

    @abstractmethod
    async def keyword_search(self, text: str, *, top_k: int) -> list[Hit]:
        """Best chunks by BM25, best first (``Hit.score`` is the BM25 score); empty when no term matches."""

    async def hybrid_search(
        self, text: str, vector: npt.NDArray[np.float32], *, top_k: int, candidates: int = 50
    ) -> list[Hit]:
        """Vector and keyword results fused by reciprocal rank fusion, best first.

        ``Hit.score`` is the fused score and ``Hit.vector_score`` the cosine similarity of every hit (computed
        for hits that only the keyword search found), which the retriever calibrates into "found or not".
        """
        by_vector = await self.vector_search(vector, top_k=candidates)
        by_keyword = await self.keyword_search(text, top_k=candidates)
        fused = reciprocal_rank_fusion([[h.chunk.id for h in by_vector], [h.chunk.id for h in by_keyword]])
        cosine = {h.chunk.id: h.score for h in by_vector}
        chunks = {h.chunk.id: h.chunk for h in (*by_keyword, *by_vector)}
        ranked = sorted(fused, key=lambda cid: (-fused[cid], cid))[:top_k]
        missing = [cid for cid in ranked if cid not in cosine]
        if missing:
            for stored in await self.get(missing):
                if len(stored.vector):
                    cosine[stored.id] = float(np.dot(np.asarray(stored.vector, dtype=np.float32), vector))
        vector_rank = {h.chunk.id: rank for rank, h in enumerate(by_vector, start=1)}
        keyword_rank = {h.chunk.id: rank for rank, h in enumerate(by_keyword, start=1)}
        return [
            Hit(
                chunk=chunks[cid],
                score=fused[cid],
                vector_score=cosine.get(cid),
                vector_rank=vector_rank.get(cid),
                keyword_rank=keyword_rank.get(cid),
            )
            for cid in ranked
        ]

    @abstractmethod
    async def clear(self) -> None:
        """Remove every chunk."""

    async def flush(self) -> None:  # noqa: B027 - optional: stores that persist lazily override it
        """Make every write so far durable and searchable."""

    async def close(self) -> None:  # noqa: B027 - optional: stores without connections hold nothing
        """Persist and release resources."""
