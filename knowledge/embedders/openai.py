"""Embeddings from an OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, vLLM, LiteLLM, ...)."""

from __future__ import annotations

from pathlib import Path

import httpx

from knowledge.embedders._http import RemoteEmbedder, post_json
from knowledge.errors import EmbeddingError


class OpenAIEmbedder(RemoteEmbedder):
    """OpenAI-compatible embeddings.

    Args:
        model: Model name (e.g. ``text-embedding-3-small``).
        base_url: API base including ``/v1`` (default ``https://api.openai.com/v1``).
        api_key: Bearer token (optional for self-hosted servers).
        timeout_s: Per-request timeout.
        transport: An httpx transport (tests pass a mock that checks the documented request shape).

    """

    name = "openai"
    batch_size = 128

    def __init__(
        self,
        *,
        model: str = "text-embedding-3-small",
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            model=model,
            base_url=base_url or "https://api.openai.com/v1",
            headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
            timeout_s=timeout_s,
            transport=transport,
        )

    @classmethod
    def from_options(
        cls, *, model: str | None, base_url: str | None, api_key: str | None, cache_dir: Path | None
    ) -> OpenAIEmbedder:
        """Build from settings values."""
        return cls(model=model or "text-embedding-3-small", base_url=base_url, api_key=api_key)

    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        body = await post_json(
            self._client, "embeddings", {"model": self._model, "input": batch}, vendor="OpenAI-compatible"
        )
        try:
            data = sorted(body["data"], key=lambda item: item["index"])
            return [item["embedding"] for item in data]
        except (KeyError, TypeError) as exc:
            raise EmbeddingError("The embedding server's response has no data[].embedding.") from exc
