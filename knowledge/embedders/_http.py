"""Shared plumbing of the HTTP embedders: one client, bounded retries, errors translated once."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from knowledge.embedders.base import Embedder, Vectors, normalise_rows
from knowledge.errors import EmbeddingError


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, EmbeddingError) and exc.retryable


async def post_json(
    client: httpx.AsyncClient, path: str, payload: dict[str, Any], *, vendor: str, attempts: int = 3
) -> Any:
    """POST ``payload`` and return the decoded JSON; retries transport errors, 429 and 5xx."""

    async def once() -> Any:
        try:
            response = await client.post(path, json=payload)
        except httpx.HTTPError as exc:
            raise EmbeddingError(f"The {vendor} embedding server is unreachable ({type(exc).__name__}).") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise EmbeddingError(f"The {vendor} embedding server answered {response.status_code}.")
        if response.status_code >= 400:
            raise EmbeddingError(
                f"The {vendor} embedding server refused the request ({response.status_code}); "
                "check the model name and API key.",
                retryable=False,
            )
        try:
            return response.json()
        except ValueError as exc:
            raise EmbeddingError(f"The {vendor} embedding server sent a response that is not JSON.") from exc

    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.2, max=2.0),
        retry=retry_if_exception(_retryable),
        reraise=True,
    ):
        with attempt:
            return await once()
    raise EmbeddingError(f"The {vendor} embedding request failed.")  # pragma: no cover - reraise above


class RemoteEmbedder(Embedder):
    """An embedder behind an HTTP API: one client, batching, unit rows, dimension learnt from the first answer.

    Subclasses set ``batch_size`` and implement :meth:`_embed_batch` (one documented request per batch).

    Args:
        model: Model name sent to the server.
        base_url: Server base URL (ends with ``/`` after normalisation).
        headers: Extra request headers (e.g. ``Authorization``).
        timeout_s: Per-request timeout.
        transport: An httpx transport (tests pass a mock that checks the documented request shape).

    """

    batch_size = 64

    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        headers: dict[str, str] | None = None,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/", headers=headers or {}, timeout=timeout_s, transport=transport
        )
        self.model_id = f"{self.name}:{model}"
        self._model = model
        self._dimension: int | None = None

    @property
    def dimension(self) -> int:
        """Known after the first call (:meth:`warm`)."""
        if self._dimension is None:
            raise EmbeddingError("The embedding dimension is not known yet; call warm() first.", retryable=False)
        return self._dimension

    @abstractmethod
    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        """Embed one batch with one request; returns one vector per input, in order."""

    async def embed_array(self, texts: Sequence[str]) -> Vectors:
        """Embed in batches of ``batch_size`` inputs."""
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            vectors = await self._embed_batch(batch)
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
