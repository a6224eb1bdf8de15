"""Reciprocal rank fusion (knowledge.fusion): the one implementation every store's hybrid search uses."""

from __future__ import annotations

import pytest

from knowledge.fusion import fuse, missing_cosines, ranks, reciprocal_rank_fusion, with_cosines
from knowledge.types import Hit, StoredChunk

pytestmark = pytest.mark.unit


def hit(cid: str, score: float, *, cosine: float | None = None) -> Hit:
    return Hit(
        chunk=StoredChunk(id=cid, document_id=cid.split(":")[0], seq=0, text=cid), score=score, vector_score=cosine
    )


def test_reciprocal_rank_fusion_sums_over_rankings() -> None:
    fused = reciprocal_rank_fusion([{"a": 1, "b": 2}, {"b": 1, "c": 2}], k=60)
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["c"] == pytest.approx(1 / 62)


def test_fuse_ranks_both_searches_and_keeps_ranks_and_cosines() -> None:
    by_vector = [hit("a:0", 0.9, cosine=0.9), hit("b:0", 0.5, cosine=0.5)]
    by_keyword = [hit("c:0", 7.0), hit("b:0", 3.0)]
    fused = fuse(by_vector, by_keyword, top_k=3)
    assert [h.chunk.id for h in fused] == ["b:0", "a:0", "c:0"]  # a and c tie: broken by id
    b, a, c = fused
    assert (b.vector_rank, b.keyword_rank, b.vector_score) == (2, 2, 0.5)
    assert (a.vector_rank, a.keyword_rank) == (1, None)
    assert (c.vector_rank, c.keyword_rank, c.vector_score) == (None, 1, None)
    assert missing_cosines(fused) == ["c:0"]
    filled = with_cosines(fused, {"c:0": 0.1, "a:0": 0.0})
    assert [h.vector_score for h in filled] == [0.5, 0.9, 0.1]
    assert fuse(by_vector, by_keyword, top_k=1)[0].chunk.id == "b:0"


def test_tied_scores_share_a_rank_whatever_order_the_store_listed_them_in() -> None:
    """A store lists tied hits in its internal order (random chunk ids): the ranks must not depend on it."""
    listed = [hit("x:0", 5.0), hit("y:0", 3.0), hit("z:0", 3.0), hit("w:0", 1.0)]
    assert ranks(listed) == {"x:0": 1, "y:0": 2, "z:0": 2, "w:0": 4}
    swapped = [listed[0], listed[2], listed[1], listed[3]]
    assert ranks(swapped) == ranks(listed)
    by_vector = [hit("y:0", 0.8, cosine=0.8), hit("z:0", 0.7, cosine=0.7)]
    one, two = fuse(by_vector, listed, top_k=4), fuse(by_vector, swapped, top_k=4)
    assert [(h.chunk.id, h.score, h.keyword_rank) for h in one] == [(h.chunk.id, h.score, h.keyword_rank) for h in two]
