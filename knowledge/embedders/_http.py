"""Shared plumbing of the HTTP embedders: one client, bounded retries, errors translated once."""

from __future__ import annotations

from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

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
