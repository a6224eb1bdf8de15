"""Optional cross-encoder rerank, with a tiny locally built model (no download; real loading code)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from knowledge.embedders.minilm import MiniLMEmbedder, default_model_dir
from knowledge.errors import KnowledgeError
from knowledge.rerank import CrossEncoderReranker
from knowledge.retrieval import HybridRetriever, RetrievalConfig
from knowledge.stores.embedded import EmbeddedStore
from knowledge.types import StoredChunk

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("cross-encoder")
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, num_labels=1
    )
    BertForSequenceClassification(config).save_pretrained(path)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(default_model_dir() / name, path / name)
    return path


async def test_reranker_scores_rank_and_threshold_passages(tiny_cross_encoder: Path) -> None:
    embedder = MiniLMEmbedder()
    store = EmbeddedStore(dimension=384)
    texts = ["The late payment fee is $7.50.", "Hold the reset pin for 15 seconds.", "Live chat opens at 7am."]
    vectors = await embedder.embed_array(texts)
    await store.add(
        [
            StoredChunk(id=f"d:{i}", document_id="d", seq=i, text=t, vector=tuple(v))
            for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
        ]
    )
    reranker = CrossEncoderReranker(model_path=tiny_cross_encoder)
    retriever = HybridRetriever(
        embedder=embedder, store=store, config=RetrievalConfig(score_threshold=0.0), reranker=reranker
    )
    retrieval = await retriever.retrieve("How much is the late fee?", top_k=3)
    scores = [p.score for p in retrieval.passages]
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    direct = reranker.score_sync("How much is the late fee?", [p.text for p in retrieval.passages])
    assert np.allclose(direct, scores, atol=1e-3)  # the passage score is the reranker's probability
    assert retrieval.found


async def test_missing_reranker_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeError, match="does not exist"):
        await CrossEncoderReranker(model_path=tmp_path / "nothing").warm()
