"""Weaviate (weaviate-client v4, async) for large knowledge bases: native hybrid search (BM25 + vectors).

The collection (default ``VoxdeskChunk``) holds one object per chunk with our own vectors (no Weaviate
vectorizer) and a UUID derived from the chunk id, so re-adding a chunk replaces it. Hybrid search is the
shared one (:meth:`VectorStore.hybrid_search`: Weaviate's vector and BM25 searches fused by
:func:`knowledge.fusion.fuse`), so its ranks and cosine scores mean what they mean for the embedded store.

Not exercised on this machine (no Weaviate server can run here); the shared conformance suite runs against
it when ``VOXDESK_TEST_WEAVIATE_URL`` is set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from knowledge.errors import StoreError
from knowledge.stores.base import VectorStore
from knowledge.types import Hit, StoredChunk

_PROPERTIES = ("chunk_id", "document_id", "seq", "text", "title", "heading", "page", "display_title")


class WeaviateStore(VectorStore):
    """A Weaviate collection as a vector store.

    Args:
        url: Weaviate HTTP URL (``http://host:8080``); gRPC is expected on port 50051 of the same host.
        dimension: Vector length (checked on add).
        api_key: Optional API key.
        collection: Collection name.
        grpc_port: gRPC port.

    """

    name = "weaviate"

    def __init__(
        self,
        *,
        url: str,
        dimension: int,
        api_key: str | None = None,
        collection: str = "VoxdeskChunk",
        grpc_port: int = 50051,
    ) -> None:
        self.url = url
        self.dimension = dimension
        self.api_key = api_key
        self.collection_name = collection
        self.grpc_port = grpc_port
        self._client: Any = None
        self._collection: Any = None

    @classmethod
    def from_options(
        cls, *, dimension: int, path: Path | None, url: str | None, api_key: str | None, model_id: str | None = None
    ) -> WeaviateStore:
        """Build from settings values (``path`` is for embedded stores and ignored)."""
        if not url:
            raise StoreError("knowledge.store is 'weaviate' but knowledge.weaviate_url is not set.", retryable=False)
        return cls(url=url, dimension=dimension, api_key=api_key)

    async def _coll(self) -> Any:
        if self._collection is not None:
            return self._collection
        import weaviate
        from weaviate.classes.config import Configure, DataType, Property

        parts = urlsplit(self.url)
        secure = parts.scheme == "https"
        try:
            client = weaviate.use_async_with_custom(
                http_host=parts.hostname or "localhost",
                http_port=parts.port or (443 if secure else 8080),
                http_secure=secure,
                grpc_host=parts.hostname or "localhost",
                grpc_port=self.grpc_port,
                grpc_secure=secure,
                auth_credentials=weaviate.auth.AuthApiKey(self.api_key) if self.api_key else None,
            )
            await client.connect()
            # Carried for citations, never searched: keyword search reads "title" (StoredChunk.display_title).
            shown = Property(
                name="display_title",
                data_type=DataType.TEXT,
                skip_vectorization=True,
                index_searchable=False,
                index_filterable=False,
            )
            if await client.collections.exists(self.collection_name):
                existing = client.collections.get(self.collection_name)
                config = await existing.config.get()
                if all(p.name != shown.name for p in config.properties):  # a collection made before it existed
                    await existing.config.add_property(shown)
            else:
                await client.collections.create(
                    self.collection_name,
                    properties=[
                        Property(name="chunk_id", data_type=DataType.TEXT, skip_vectorization=True),
                        Property(name="document_id", data_type=DataType.TEXT, skip_vectorization=True),
                        Property(name="seq", data_type=DataType.INT),
                        Property(name="text", data_type=DataType.TEXT),
                        Property(name="title", data_type=DataType.TEXT),
                        Property(name="heading", data_type=DataType.TEXT),
                        Property(name="page", data_type=DataType.INT),
                        shown,
                    ],
                    vector_config=Configure.Vectors.self_provided(),
                )
        except Exception as exc:  # weaviate raises many types; translate them once, here
            raise StoreError(f"Weaviate at {self.url} is not reachable or refused the request: {exc}") from exc
        self._client = client
        self._collection = client.collections.get(self.collection_name)
        return self._collection

    @staticmethod
    def _uuid(chunk_id: str) -> str:
        from weaviate.util import generate_uuid5

        return str(generate_uuid5(chunk_id))

    @staticmethod
    def _chunk(obj: Any, *, with_vector: bool = False) -> StoredChunk:
        props: Mapping[str, Any] = obj.properties
        vector: Sequence[float] = ()
        if with_vector and obj.vector:
            raw = obj.vector.get("default") if isinstance(obj.vector, dict) else obj.vector
            vector = tuple(float(x) for x in (raw or ()))
        page = props.get("page")
        return StoredChunk(
            id=str(props.get("chunk_id")),
            document_id=str(props.get("document_id")),
            seq=int(props.get("seq") or 0),
            text=str(props.get("text") or ""),
            vector=vector,
            title=props.get("title") or None,
            heading=props.get("heading") or None,
            page=int(page) if page is not None else None,
            display_title=props.get("display_title") or None,
        )

    async def add(self, chunks: Sequence[StoredChunk]) -> None:
        """Insert or replace chunks (deterministic UUIDs)."""
        if not chunks:
            return
        from weaviate.classes.data import DataObject

        for chunk in chunks:
            if len(chunk.vector) != self.dimension:
                raise StoreError(f"Vectors must be {self.dimension}-d.", retryable=False)
        coll = await self._coll()
        objects = [
            DataObject(
                properties={
                    "chunk_id": c.id,
                    "document_id": c.document_id,
                    "seq": c.seq,
                    "text": c.text,
                    "title": c.title or "",
                    "heading": c.heading or "",
                    "page": c.page,
                    "display_title": c.display_title or "",
                },
                uuid=self._uuid(c.id),
                vector=[float(x) for x in c.vector],
            )
            for c in chunks
        ]
        try:
            await coll.data.delete_many(where=_by_ids([c.id for c in chunks]))
            result = await coll.data.insert_many(objects)
        except Exception as exc:  # translated once at the edge
            raise StoreError(f"Weaviate refused the chunks: {exc}") from exc
        if getattr(result, "has_errors", False):
            raise StoreError(f"Weaviate refused some chunks: {list(result.errors.values())[:3]}")

    async def delete_document(self, document_id: str) -> int:
        """Delete every chunk of a document."""
        from weaviate.classes.query import Filter

        coll = await self._coll()
        try:
            result = await coll.data.delete_many(where=Filter.by_property("document_id").equal(document_id))
        except Exception as exc:  # translated once at the edge
            raise StoreError(f"Weaviate refused the delete: {exc}") from exc
        return int(getattr(result, "successful", 0) or 0)

    async def get(self, chunk_ids: Sequence[str]) -> list[StoredChunk]:
        """Chunks by id, with vectors, in the order asked."""
        if not chunk_ids:
            return []
        coll = await self._coll()
        response = await coll.query.fetch_objects(filters=_by_ids(chunk_ids), include_vector=True, limit=len(chunk_ids))
        found = {c.id: c for c in (self._chunk(o, with_vector=True) for o in response.objects)}
        return [found[c] for c in chunk_ids if c in found]

    async def count(self, document_id: str | None = None) -> int:
        """Chunks in the collection (or of one document)."""
        from weaviate.classes.query import Filter

        coll = await self._coll()
        filters = Filter.by_property("document_id").equal(document_id) if document_id else None
        result = await coll.aggregate.over_all(filters=filters, total_count=True)
        return int(result.total_count or 0)

    async def document_counts(self) -> Mapping[str, int]:
        """Chunks per document."""
        from weaviate.classes.aggregate import GroupByAggregate

        coll = await self._coll()
        result = await coll.aggregate.over_all(group_by=GroupByAggregate(prop="document_id"), total_count=True)
        return {str(g.grouped_by.value): int(g.total_count or 0) for g in result.groups}

    async def vector_search(self, vector: npt.NDArray[np.float32], *, top_k: int) -> list[Hit]:
        """Nearest chunks (cosine = 1 - distance)."""
        from weaviate.classes.query import MetadataQuery

        coll = await self._coll()
        response = await coll.query.near_vector(
            near_vector=[float(x) for x in vector], limit=top_k, return_metadata=MetadataQuery(distance=True)
        )
        hits = []
        for obj in response.objects:
            cosine = 1.0 - float(obj.metadata.distance or 0.0)
            hits.append(Hit(chunk=self._chunk(obj), score=cosine, vector_score=cosine))
        return hits

    async def keyword_search(self, text: str, *, top_k: int) -> list[Hit]:
        """BM25 over chunk text and headings."""
        from weaviate.classes.query import MetadataQuery

        coll = await self._coll()
        response = await coll.query.bm25(
            query=text,
            query_properties=["text", "title", "heading"],
            limit=top_k,
            return_metadata=MetadataQuery(score=True),
        )
        return [Hit(chunk=self._chunk(o), score=float(o.metadata.score or 0.0)) for o in response.objects]

    async def clear(self) -> None:
        """Drop and recreate the collection."""
        coll = await self._coll()
        del coll
        await self._client.collections.delete(self.collection_name)
        self._collection = None
        await self._coll()

    async def close(self) -> None:
        """Close the client."""
        if self._client is not None:
            await self._client.close()
            self._client = None
            self._collection = None


def _by_ids(chunk_ids: Sequence[str]) -> Any:
    from weaviate.classes.query import Filter

    return Filter.by_property("chunk_id").contains_any(list(chunk_ids))
