"""The vector index restored from the database, the one record of every chunk.

On start, :func:`restore_index` hands the store the chunks of every ``ready`` document (text, citation fields,
embedding) and the store makes itself hold exactly those: what the index lacks is added from the stored
embeddings (no re-embedding), what the database no longer has is removed. A document whose chunks cannot be
restored (embedded by another model, embeddings missing, count not matching) is queued for processing again
from its stored original.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_api.db.models import KnowledgeChunk, KnowledgeDocument
from control_api.services.ingestion_jobs import requeue
from control_api.services.ingestion_pipeline import citation_title, index_title
from knowledge.kb import KnowledgeBase
from knowledge.types import StoredChunk

log = structlog.get_logger(__name__)


async def indexable_chunks(
    session: AsyncSession, *, dimension: int, model_id: str
) -> tuple[list[StoredChunk], list[str]]:
    """The chunks of every ready document, ready to index, and the ids of ready documents that need processing.

    A document embedded by another model needs processing again; one with no recorded model (written before
    the model was recorded) is trusted when its embeddings have the right dimension.
    """
    documents = {
        row.id: row
        for row in await session.execute(
            select(
                KnowledgeDocument.id,
                KnowledgeDocument.title,
                KnowledgeDocument.filename,
                KnowledgeDocument.chunk_count,
                KnowledgeDocument.embedding_model,
            ).where(KnowledgeDocument.status == "ready")
        )
    }
    rows = await session.execute(
        select(
            KnowledgeChunk.id,
            KnowledgeChunk.document_id,
            KnowledgeChunk.seq,
            KnowledgeChunk.text,
            KnowledgeChunk.heading,
            KnowledgeChunk.page,
            KnowledgeChunk.embedding,
        )
        .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
        .where(KnowledgeDocument.status == "ready")
        .order_by(KnowledgeChunk.document_id, KnowledgeChunk.seq)
    )
    width = dimension * 4
    grouped: dict[str, list[StoredChunk]] = {}
    broken: set[str] = set()
    for cid, document_id, seq, text, heading, page, embedding in rows:
        if embedding is None or len(embedding) != width:
            broken.add(document_id)
            continue
        document = documents[document_id]
        grouped.setdefault(document_id, []).append(
            StoredChunk(
                id=cid,
                document_id=document_id,
                seq=seq,
                text=text,
                vector=np.frombuffer(embedding, dtype=np.float32),
                title=index_title(document.title, document.filename),
                heading=heading,
                page=page,
                display_title=citation_title(document.title, document.filename),
            )
        )
    stale = [
        doc_id
        for doc_id, document in documents.items()
        if doc_id in broken
        or (document.embedding_model is not None and document.embedding_model != model_id[:200])
        or len(grouped.get(doc_id, ())) != document.chunk_count
    ]
    for doc_id in stale:
        grouped.pop(doc_id, None)
    return [chunk for group in grouped.values() for chunk in group], stale


async def restore_index(sessions: async_sessionmaker[AsyncSession], kb: KnowledgeBase) -> Sequence[str]:
    """Make the vector store hold exactly the database's ready chunks; returns the documents queued again."""
    async with sessions() as session:
        chunks, stale = await indexable_chunks(session, dimension=kb.embedder.dimension, model_id=kb.embedder.model_id)
        in_flight = (
            await session.scalars(
                select(KnowledgeDocument.id).where(KnowledgeDocument.status.in_(("pending", "processing")))
            )
        ).all()
    # Documents in flight may be written to a shared server store by another process right now: left alone.
    report = await kb.store.restore(chunks, keep_documents=set(in_flight))
    if stale:
        async with sessions() as session:
            for document_id in stale:
                document = await session.get(KnowledgeDocument, document_id)
                if document is not None:
                    await requeue(session, document)
            await session.commit()
    log.info(
        "knowledge_index_restored", kept=report.kept, added=report.added, removed=report.removed, requeued=len(stale)
    )
    return stale
