"""Embeddings from an OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, vLLM, LiteLLM, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np

from knowledge.embedders._http import post_json
from knowledge.embedders.base import Embedder, Vectors, normalise_rows
from knowledge.errors import EmbeddingError

BATCH = 128


class OpenAIEmbedder(Embedder):
    """OpenAI-compatible embeddings.

    Args:
        model: Model name (e.g. ``text-embedding-3-small``).
        base_url: API base including ``/v1`` (default ``https://api.openai.com/v1``).
        api_key: Bearer token (optional for self-hosted servers).
        timeout_s: Per-request timeout.
        transport: An httpx transport (tests pass a mock that checks the documented request shape).

    """

    name = "openai"

    def __init__(
        self,
        *,
        model: str = "text-embedding-3-small",
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=(base_url or "https://api.openai.com/v1").rstrip("/") + "/",
            headers=headers,
            timeout=timeout_s,
            transport=transport,
        )
        self.model_id = f"openai:{model}"
        self._model = model
        self._dimension: int | None = None

    @classmethod
    def from_options(
        cls, *, model: str | None, base_url: str | None, api_key: str | None, cache_dir: Path | None
    ) -> OpenAIEmbedder:
        """Build from settings values."""
        return cls(model=model or "text-embedding-3-small", base_url=base_url, api_key=api_key)

    @property
    def dimension(self) -> int:
        """Known after the first call (:meth:`warm`)."""
        if self._dimension is None:
            raise EmbeddingError("The embedding dimension is not known yet; call warm() first.", retryable=False)
        return self._dimension

    async def embed_array(self, texts: Sequence[str]) -> Vectors:
        """Embed in batches of 128 inputs."""
        rows: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            batch = list(texts[start : start + BATCH])
            body = await post_json(
                self._client, "embeddings", {"model": self._model, "input": batch}, vendor="OpenAI-compatible"
            )
            try:
                data = sorted(body["data"], key=lambda item: item["index"])
                vectors = [item["embedding"] for item in data]
            except (KeyError, TypeError) as exc:
                raise EmbeddingError("The embedding server's response has no data[].embedding.") from exc
            if len(vectors) != len(batch):
                raise EmbeddingError("The embedding server returned a different number of vectors than inputs.")
            rows.extend(vectors)
        if not rows:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        array = normalise_rows(rows)
        self._dimension = int(array.shape[1])
        return array

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
