"""Several views of each passage, so that a caller's own words can meet the one sentence that answers them.

A passage is embedded whole (the store's vector). A caller who never read the documents asks about one fact in
everyday words ("my mum is seventy, does she get anything knocked off"); against a whole passage of four facts
that question scores low, against the one sentence that holds the fact ("Seniors discount: customers aged 65 or
over get $5 off every month") it scores higher. :class:`ViewIndex` embeds, for every passage, each of its
sentences (and table or list lines) prefixed with the passage's section name ("Discounts: Seniors discount:
...": the section name keeps a short sentence's context), and the retriever raises a passage's cosine by a share
(:data:`VIEW_WEIGHT`) of how much its best view beats it::

    score = cosine + VIEW_WEIGHT * max(0, best view cosine - cosine) + keyword bonus

Measured on the team's own sets only (``benchmarks/kb``: the labelled questions and the plain-words development
set): taking the best view outright (weight 1) finds more of the plain-words questions first (0.60 -> 0.69) but
loses some of the team's document-worded ones (0.938 -> 0.920); a weight of 0.5 keeps the team's and still gains
on plain words. The views are built from the base's passages whenever the base changes (with the calibration,
:meth:`knowledge.retrieval.HybridRetriever.recalibrate`) and held in memory: a base of at most
:data:`MAX_CHUNKS` passages (the search over views is a brute-force matrix product, well under a millisecond
for the demo's ~500 views; a larger base keeps the plain hybrid search). Their vectors are stored beside the
calibration (``views.npz``) with the base's fingerprint, so a restart with an unchanged base does not embed
them again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from knowledge.embedders.base import Embedder
from knowledge.types import StoredChunk
from knowledge.vector_cache import load_vectors, save_vectors

__all__ = ["MAX_CHUNKS", "VIEW_WEIGHT", "ViewIndex", "passage_body", "passage_views", "sentences"]

VIEW_WEIGHT = 0.5
MAX_CHUNKS = 3000  # above this, views are not built (embedding cost; the plain hybrid search applies)
MIN_WORDS = 3  # a sentence of fewer words is not a view of its own
FILE_NAME = "views.npz"

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def sentences(text: str) -> list[str]:
    """The sentences and lines of ``text`` with at least :data:`MIN_WORDS` words (list dashes stripped)."""
    out: list[str] = []
    for line in text.splitlines():
        for part in _SENTENCE.split(line):
            sentence = part.strip().lstrip("-•*").strip()
            if len(sentence.split()) >= MIN_WORDS:
                out.append(sentence)
    return out


def section_name(heading: str | None) -> str:
    """The last part of a heading path ("Billing FAQ > How can I pay?" -> "How can I pay?")."""
    return (heading or "").split(" > ")[-1].strip()


def passage_body(chunk: StoredChunk) -> str:
    """The passage's text without its heading line."""
    text = chunk.text
    if chunk.heading and text.startswith(chunk.heading):
        return text[len(chunk.heading) :].strip()
    return text.strip()


def passage_views(chunk: StoredChunk) -> list[str]:
    """The views of one passage: each sentence of its body, prefixed with its section name when it has one."""
    return _view_sentences([chunk])[0]


def _view_sentences(chunks: Sequence[StoredChunk]) -> tuple[list[str], list[str], list[int]]:
    """Every view of ``chunks``: its embedded text, its sentence (without the section name), its passage's index."""
    texts: list[str] = []
    plain: list[str] = []
    owners: list[int] = []
    for i, chunk in enumerate(chunks):
        name = section_name(chunk.heading)
        for sentence in sentences(passage_body(chunk)):
            texts.append(f"{name}: {sentence}" if name else sentence)
            plain.append(sentence)
            owners.append(i)
    return texts, plain, owners


class ViewIndex:
    """The views of a base's passages, embedded, searchable by one matrix product.

    Args:
        chunks: The base's passages (with their vectors).
        owners: For each view, the index of its passage in ``chunks``.
        vectors: The views' unit vectors, one row per view.
        fingerprint: The base's fingerprint (:func:`knowledge.calibration.fingerprint`) the views belong to.
        sentences: For each view, its sentence without the section name (what the brain may read out).

    """

    def __init__(
        self,
        chunks: Sequence[StoredChunk],
        owners: npt.NDArray[np.int64],
        vectors: npt.NDArray[np.float32],
        fingerprint: str,
        sentences: Sequence[str] = (),
    ) -> None:
        self.chunks = list(chunks)
        self.owners = owners
        self.vectors = vectors
        self.fingerprint = fingerprint
        self.sentences = list(sentences)
        self.chunk_vectors = np.asarray([c.vector for c in self.chunks], dtype=np.float32).reshape(len(self.chunks), -1)
        self._index: dict[str, int] | None = None
        # A passage's views are consecutive rows (built in passage order): row range per passage.
        self._starts = np.searchsorted(owners, np.arange(len(self.chunks) + 1)) if len(owners) else None

    @classmethod
    async def build(
        cls, embedder: Embedder, chunks: Sequence[StoredChunk], fingerprint: str, directory: Path | None = None
    ) -> ViewIndex:
        """Embed the views of ``chunks`` (or load them from ``directory`` when stored for this fingerprint)."""
        texts, plain, owners = _view_sentences(chunks)
        owner_array = np.asarray(owners, dtype=np.int64)
        stored = load_vectors(directory / FILE_NAME, fingerprint, len(texts)) if directory is not None else None
        if stored is not None:
            return cls(chunks, owner_array, stored, fingerprint, plain)
        vectors = (
            np.asarray(await embedder.embed_array(texts), dtype=np.float32)
            if texts
            else np.zeros((0, len(chunks[0].vector) if chunks else 0), dtype=np.float32)
        )
        if directory is not None:
            save_vectors(directory / FILE_NAME, fingerprint, vectors)
        return cls(chunks, owner_array, vectors, fingerprint, plain)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def scores(self, query: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Per passage: its own cosine with ``query`` and its best view's cosine (-1 for a passage with none)."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        cosine = self.chunk_vectors @ q
        best = np.full(len(self.chunks), -1.0, dtype=np.float32)
        if len(self):
            np.maximum.at(best, self.owners, self.vectors @ q)
        return cosine, best

    def _rows(self, chunk_id: str) -> tuple[int, int, int] | None:
        """The passage's index and the row range of its views; None when the passage is not indexed."""
        if self._index is None:
            self._index = {chunk.id: i for i, chunk in enumerate(self.chunks)}
        i = self._index.get(chunk_id)
        if i is None:
            return None
        if self._starts is None:
            return i, 0, 0
        return i, int(self._starts[i]), int(self._starts[i + 1])

    def passage_score(self, chunk_id: str, query: npt.NDArray[np.float32]) -> float | None:
        """One passage's cosine with ``query`` lifted by its best view (:func:`lifted`); None if not indexed."""
        rows = self._rows(chunk_id)
        if rows is None:
            return None
        i, start, end = rows
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        cosine = float(self.chunk_vectors[i] @ q)
        return lifted(cosine, float((self.vectors[start:end] @ q).max())) if end > start else cosine

    def closeness(self, chunk_id: str, query: npt.NDArray[np.float32]) -> tuple[tuple[str, float], ...]:
        """Each of the passage's sentences with its view's cosine to ``query`` (empty if not indexed).

        How close each sentence is to the question in meaning, for the brain's choice of what to read out
        (``pipelines.brain.extractive.best_sentences``); a few rows of one matrix product.
        """
        rows = self._rows(chunk_id)
        if rows is None or not self.sentences:
            return ()
        _, start, end = rows
        cosines = self.vectors[start:end] @ np.asarray(query, dtype=np.float32).reshape(-1)
        return tuple(
            (sentence, round(float(c), 4))
            for sentence, c in zip(self.sentences[start:end], cosines.tolist(), strict=True)
        )


def lifted(cosine: float, best_view: float, weight: float = VIEW_WEIGHT) -> float:
    """A passage's cosine raised by ``weight`` of how much its best view beats it."""
    return cosine + weight * max(0.0, best_view - cosine)
