"""Embeddings from an Ollama server (``POST /api/embed``)."""

from __future__ import annotations

from pathlib import Path

import httpx

from knowledge.embedders._http import RemoteEmbedder, post_json
from knowledge.errors import EmbeddingError


class OllamaEmbedder(RemoteEmbedder):
    """Ollama embeddings.

    Args:
        model: Model name (e.g. ``nomic-embed-text``, ``all-minilm``).
        base_url: Server URL (default ``http://127.0.0.1:11434``).
        timeout_s: Per-request timeout.
        transport: An httpx transport (tests pass a mock that checks the documented request shape).

    """

    name = "ollama"
    batch_size = 64

    def __init__(
        self,
        *,
        model: str = "nomic-embed-text",
        base_url: str | None = None,
        timeout_s: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            model=model, base_url=base_url or "http://127.0.0.1:11434", timeout_s=timeout_s, transport=transport
        )

    @classmethod
    def from_options(
        cls, *, model: str | None, base_url: str | None, api_key: str | None, cache_dir: Path | None
    ) -> OllamaEmbedder:
        """Build from settings values."""
        return cls(model=model or "nomic-embed-text", base_url=base_url)

    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        body = await post_json(self._client, "api/embed", {"model": self._model, "input": batch}, vendor="Ollama")
        vectors = body.get("embeddings") if isinstance(body, dict) else None
        if not isinstance(vectors, list) or len(vectors) != len(batch):
            raise EmbeddingError("The Ollama server's response has no matching 'embeddings' list.")
        return vectors
