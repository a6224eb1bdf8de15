"""The vector store interface every backend implements.

Stores are indexes over :class:`knowledge.types.StoredChunk` objects (text, unit vector, citation fields); the
application database keeps the record of every chunk and :meth:`VectorStore.restore` makes a store hold
exactly those on start. Stores answer three searches: by vector (cosine), by keywords (BM25) and hybrid (both,
fused by :func:`knowledge.fusion.fuse`). Chunk ids are stable (``<document_id>:<seq>``), so adding a chunk that
is already there replaces it: re-running an interrupted ingestion never duplicates. One conformance suite
(``tests/knowledge/test_store_conformance.py``) runs against every backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from knowledge.fusion import fuse, missing_cosines, with_cosines
from knowledge.types import Hit, StoredChunk


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What a restore did: chunks kept from what the store already held, chunks added, chunks removed."""

    kept: int
    added: int
    removed: int


class VectorStore(ABC):
    """A searchable collection of chunks.

    Every method is async; CPU-bound backends run their work in worker threads so the event loop stays free.
    """

    name: str = "base"

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
        """Chunks per document id."""

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
        hits = fuse(by_vector, by_keyword, top_k=top_k)
        missing = missing_cosines(hits)
        if not missing:
            return hits
        query = np.asarray(vector, dtype=np.float32)
        cosines = {
            stored.id: float(np.dot(np.asarray(stored.vector, dtype=np.float32), query))
            for stored in await self.get(missing)
            if len(stored.vector)
        }
        return with_cosines(hits, cosines)

    async def restore(self, chunks: Sequence[StoredChunk], *, keep_documents: Collection[str] = ()) -> RestoreReport:
        """Make the store hold exactly ``chunks`` (the database's chunks of its ready documents).

        ``keep_documents`` are documents being processed, perhaps by another process writing to the same
        server store: whatever the store holds of them is left alone (their processing replaces it).

        This default compares chunk counts per document: a document whose count differs is replaced, one the
        store should not have is removed, the rest is kept as it is. A document's chunks only change by
        re-processing it, which replaces all of them in the store before the database records the new count.
        Stores that can compare content cheaply override this.
        """
        wanted: dict[str, list[StoredChunk]] = {}
        for chunk in chunks:
            wanted.setdefault(chunk.document_id, []).append(chunk)
        present = dict(await self.document_counts())
        removed = kept = added = 0
        for document_id in set(present) - set(wanted) - set(keep_documents):
            removed += await self.delete_document(document_id)
        for document_id, group in wanted.items():
            if present.get(document_id) == len(group):
                kept += len(group)
                continue
            removed += await self.delete_document(document_id)
            await self.add(group)
            added += len(group)
        return RestoreReport(kept=kept, added=added, removed=removed)

    @abstractmethod
    async def clear(self) -> None:
        """Remove every chunk."""

    async def flush(self) -> None:  # noqa: B027 - optional: stores that persist lazily override it
        """Make every write so far durable and searchable."""

    async def close(self) -> None:  # noqa: B027 - optional: stores without connections hold nothing
        """Persist and release resources."""
