"""The embedder interface: texts in, unit-normalised float32 vectors out.

Other rooms rely on :meth:`Embedder.embed` (``async embed(texts) -> list[list[float]]``, unit-normalised),
which satisfies ``pipelines.contracts.TextEmbedder`` for matching caller requests to tools.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from knowledge.chunking import approx_tokens

Vectors = npt.NDArray[np.float32]


def normalise_rows(matrix: npt.ArrayLike) -> Vectors:
    """Return ``matrix`` as float32 with every row scaled to unit length (zero rows stay zero)."""
    array = np.asarray(matrix, dtype=np.float32)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: Vectors = (array / norms).astype(np.float32, copy=False)
    return result


class Embedder(ABC):
    """Turns texts into unit-normalised vectors.

    Implementations load their model once per process (a module-level cache keyed by the model), never per
    app or per request, and keep CPU work off the event loop.

    Attributes:
        name: Backend name (``minilm``, ``openai``, ``ollama``).
        model_id: Identifies the model; vectors from different ``model_id`` values are not comparable.

    """

    name: str = "base"
    model_id: str = ""

    @classmethod
    @abstractmethod
    def from_options(
        cls, *, model: str | None, base_url: str | None, api_key: str | None, cache_dir: Path | None
    ) -> Embedder:
        """Build from the knowledge settings' values (the ones a backend does not use are ignored)."""

    @property
    @abstractmethod
    def dimension(self) -> int:
        """Length of every vector (known after :meth:`warm` for remote backends)."""

    @abstractmethod
    async def embed_array(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` into an ``(n, dimension)`` float32 array of unit rows."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` into unit-normalised vectors (the ``TextEmbedder`` protocol)."""
        if not texts:
            return []
        return [[float(x) for x in row] for row in await self.embed_array(texts)]

    async def embed_query(self, text: str) -> Vectors:
        """Embed one query; returns a ``(dimension,)`` vector."""
        vectors = await self.embed_array([text])
        first: Vectors = vectors[0]
        return first

    async def warm(self) -> None:
        """Load the model (or check the server) so the first real request is fast."""
        await self.embed_array(["warm up"])

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` as this model counts them (used to bound chunks)."""
        return approx_tokens(text)

    @property
    def max_tokens(self) -> int:
        """Longest input the model reads; longer text is truncated."""
        return 512

    async def close(self) -> None:  # noqa: B027 - optional hook, most embedders hold nothing to close
        """Release clients (the model cache itself lives as long as the process)."""
