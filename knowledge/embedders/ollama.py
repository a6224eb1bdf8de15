"""Embeddings from an Ollama server (``POST /api/embed``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np

from knowledge.embedders._http import post_json
from knowledge.embedders.base import Embedder, Vectors, normalise_rows
from knowledge.errors import EmbeddingError

BATCH = 64


class OllamaEmbedder(Embedder):
    """Ollama embeddings.

    Args:
        model: Model name (e.g. ``nomic-embed-text``, ``all-minilm``).
        base_url: Server URL (default ``http://127.0.0.1:11434``).
        timeout_s: Per-request timeout.
        transport: An httpx transport (tests pass a mock that checks the documented request shape).

    """

    name = "ollama"

    def __init__(
        self,
        *,
        model: str = "nomic-embed-text",
        base_url: str | None = None,
        timeout_s: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=(base_url or "http://127.0.0.1:11434").rstrip("/") + "/", timeout=timeout_s, transport=transport
        )
        self.model_id = f"ollama:{model}"
        self._model = model
        self._dimension: int | None = None

    @classmethod
    def from_options(
        cls, *, model: str | None, base_url: str | None, api_key: str | None, cache_dir: Path | None
    ) -> OllamaEmbedder:
        """Build from settings values."""
        return cls(model=model or "nomic-embed-text", base_url=base_url)

    @property
    def dimension(self) -> int:
        """Known after the first call (:meth:`warm`)."""
        if self._dimension is None:
            raise EmbeddingError("The embedding dimension is not known yet; call warm() first.", retryable=False)
        return self._dimension

    async def embed_array(self, texts: Sequence[str]) -> Vectors:
        """Embed in batches of 64 inputs."""
        rows: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            batch = list(texts[start : start + BATCH])
            body = await post_json(self._client, "api/embed", {"model": self._model, "input": batch}, vendor="Ollama")
            vectors = body.get("embeddings") if isinstance(body, dict) else None
            if not isinstance(vectors, list) or len(vectors) != len(batch):
                raise EmbeddingError("The Ollama server's response has no matching 'embeddings' list.")
            rows.extend(vectors)
        if not rows:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        array = normalise_rows(rows)
        self._dimension = int(array.shape[1])
        return array

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
