"""Reciprocal rank fusion of a vector search and a keyword search: the one implementation every store uses.

:func:`fuse` ranks the union of the two result lists by ``sum(1 / (k + rank))`` and records each hit's rank
in either list and its cosine similarity where the vector search found it. A hit only the keyword search
found has no cosine yet; the store computes it from its vectors (it knows them; this module does not) and
passes it to :func:`with_cosines`, because the retriever calibrates "found or not" on the cosine of every
hit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from knowledge.types import Hit

RRF_K = 60


def ranks(hits: Sequence[Hit]) -> dict[str, int]:
    """Each hit's rank in a list ordered best first, equal scores sharing the best of their ranks (1, 2, 2, 4).

    A store lists tied hits in its own internal order (for the embedded store, the order of random chunk ids),
    so counting positions would rank the same passage differently in two ingestions of the same documents.
    """
    out: dict[str, int] = {}
    previous: float | None = None
    rank = 0
    for position, hit in enumerate(hits, start=1):
        if previous is None or hit.score != previous:
            rank, previous = position, hit.score
        out[hit.chunk.id] = rank
    return out


def reciprocal_rank_fusion(rankings: Sequence[Mapping[str, int]], *, k: int = RRF_K) -> dict[str, float]:
    """Fuse rankings: each id scores the sum of ``1 / (k + rank)`` over the rankings it appears in.

    Args:
        rankings: Each a map of id to rank (1 is best; see :func:`ranks`).
        k: The damping constant (60 in the original paper).

    Returns:
        The fused score of every id that appears in any ranking.

    """
    fused: dict[str, float] = {}
    for ranking in rankings:
        for item, rank in ranking.items():
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


def fuse(by_vector: Sequence[Hit], by_keyword: Sequence[Hit], *, top_k: int, k: int = RRF_K) -> list[Hit]:
    """The best ``top_k`` of both searches by reciprocal rank fusion, best first (ties broken by chunk id).

    Tied scores within one search share a rank (:func:`ranks`).

    Args:
        by_vector: Vector search hits, best first (``score`` is the cosine similarity).
        by_keyword: Keyword search hits, best first.
        top_k: How many fused hits to return.
        k: The fusion's damping constant.

    Returns:
        Hits whose ``score`` is the fused score, with ``vector_rank``/``keyword_rank`` set where that search
        ranked the chunk and ``vector_score`` set where the vector search found it (None otherwise).

    """
    vector_rank, keyword_rank = ranks(by_vector), ranks(by_keyword)
    fused = reciprocal_rank_fusion([vector_rank, keyword_rank], k=k)
    cosine = {h.chunk.id: h.score for h in by_vector}
    chunks = {h.chunk.id: h.chunk for h in (*by_keyword, *by_vector)}
    ranked = sorted(fused, key=lambda cid: (-fused[cid], cid))[:top_k]
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


def missing_cosines(hits: Sequence[Hit]) -> list[str]:
    """Ids of the fused hits that have no cosine similarity yet (only the keyword search found them)."""
    return [h.chunk.id for h in hits if h.vector_score is None]


def with_cosines(hits: Sequence[Hit], cosines: Mapping[str, float]) -> list[Hit]:
    """The hits with the cosine similarities in ``cosines`` filled in where they had none."""
    return [
        replace(h, vector_score=cosines[h.chunk.id]) if h.vector_score is None and h.chunk.id in cosines else h
        for h in hits
    ]
