"""Optional cross-encoder reranking, used only when a local model directory is configured.

The model (a sentence-transformers ``CrossEncoder`` directory, e.g. ms-marco-MiniLM-L-6-v2 copied to the
machine) loads once per process. Its logits pass through a sigmoid so passage scores stay in [0, 1]; the
score threshold must then be calibrated for the reranker's scores (``benchmarks/retrieval.py --rerank``).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from knowledge.errors import KnowledgeError

_CACHE: dict[str, Any] = {}
_LOCK = threading.Lock()


def _load(path: Path) -> Any:
    key = str(path.resolve())
    with _LOCK:
        model = _CACHE.get(key)
        if model is None:
            if not path.is_dir():
                raise KnowledgeError(f"The reranker model directory {path} does not exist.", retryable=False)
            import torch
            from sentence_transformers import CrossEncoder

            torch.set_num_threads(1)
            model = CrossEncoder(str(path), device="cpu")
            _CACHE[key] = model
        return model


class CrossEncoderReranker:
    """Scores (question, passage) pairs with a local cross-encoder.

    Args:
        model_path: A local CrossEncoder model directory (no downloads happen).

    """

    def __init__(self, *, model_path: Path) -> None:
        self.model_path = model_path

    def score_sync(self, question: str, passages: Sequence[str]) -> list[float]:
        """Blocking scores in [0, 1], one per passage."""
        if not passages:
            return []
        model = _load(self.model_path)
        logits = model.predict([(question, p) for p in passages], convert_to_numpy=True, show_progress_bar=False)
        values = [float(x) for x in (logits.reshape(len(passages), -1)[:, -1])]
        return [1.0 / (1.0 + math.exp(-v)) for v in values]

    async def score(self, question: str, passages: Sequence[str]) -> list[float]:
        """Scores in a worker thread."""
        return await asyncio.to_thread(self.score_sync, question, passages)

    async def warm(self) -> None:
        """Load the model."""
        await asyncio.to_thread(_load, self.model_path)
