"""Plain data passed between the stages of the knowledge pipeline (dataclasses: they sit on the hot path)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Section:
    """A run of text from a document with where it sits: its heading path and page.

    Attributes:
        text: The text (paragraphs separated by blank lines).
        headings: The heading path above it, outermost first (``("Billing FAQ", "Late payment")``).
        page: 1-based page number for paginated formats (PDF), else ``None``.
        atomic: True when the section must not be merged with its neighbours (one FAQ pair, one table row).

    """

    text: str
    headings: tuple[str, ...] = ()
    page: int | None = None
    atomic: bool = False


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """What a parser returns: a title, the sections in reading order, and how many pages there were."""

    title: str | None
    sections: Sequence[Section]
    pages: int | None = None
    format: str = "text"


@dataclass(frozen=True, slots=True)
class Chunk:
    """A token-bounded piece of a document, ready to embed."""

    seq: int
    text: str
    heading: str | None
    page: int | None
    token_count: int


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as the vector stores hold it.

    Attributes:
        id: Stable id (``<document_id>:<seq>``): re-adding the same chunk replaces it.
        document_id: The owning document.
        seq: Position of the chunk in its document.
        text: The chunk text (with its heading line first, so keyword search sees headings too).
        vector: Unit-normalised embedding (a float32 array where it comes from bytes, e.g. the database); may
            be empty when a store returns hits without vectors.
        title: The document's name as keyword search reads it with the text (its title with its file name, or
            the file name); citations show it when ``display_title`` is ``None``.
        heading: Heading path, for citations.
        page: Page number, for citations.
        display_title: The document's name as citations show it (the title a person reads, with the file
            name); carried, never indexed, so making it readable leaves search as it was.

    """

    id: str
    document_id: str
    seq: int
    text: str
    vector: Sequence[float] | npt.NDArray[np.float32] = ()
    title: str | None = None
    heading: str | None = None
    page: int | None = None
    display_title: str | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """A store search result.

    Attributes:
        chunk: The chunk found.
        score: The ranking score of the search that produced it (cosine similarity for vector search,
            BM25 for keyword search, fused score for hybrid search); higher is better.
        vector_score: Cosine similarity between the query vector and the chunk, when known.
        vector_rank: 1-based rank in the vector search (hybrid search), if it ranked the chunk.
        keyword_rank: 1-based rank in the keyword search (hybrid search), if it ranked the chunk.

    """

    chunk: StoredChunk
    score: float
    vector_score: float | None = None
    vector_rank: int | None = None
    keyword_rank: int | None = None


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrieved passage (the same fields as ``pipelines.contracts.Passage``)."""

    text: str
    score: float
    document_id: str
    chunk_id: str
    citation: str
    title: str | None = None
    heading: str | None = None
    page: int | None = None
    # Each of the passage's sentences with its cosine to the question (from the base's sentence views; empty when the
    # base has none): how close each is in meaning, for the brain's choice of what to read out.
    closeness: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Retrieval:
    """The answer to one retrieval (the same fields as ``pipelines.contracts.Retrieval``).

    ``found`` is False when the best passage scores below the calibrated threshold; the passages are still
    returned (best first) so a reviewer can see what came closest. ``borderline``: not found, but the best passage
    scores just under the threshold (``knowledge.retrieval.CONFIRM_BAND``) and the question holds no word foreign
    to the base: worth a confirming question rather than "not found". ``unanswerable``: not found although the best
    passage scores above the threshold, because the question turns on a word the base never talks about
    (:mod:`knowledge.answerability`). ``narrow``: found, but the best passage clears the threshold by less than
    ``knowledge.retrieval.NARROW_MARGIN`` (on a recogniser's transcript, weak evidence).
    """

    found: bool
    passages: Sequence[Passage] = field(default_factory=tuple)
    latency_ms: float = 0.0
    top_score: float | None = None
    borderline: bool = False
    unanswerable: bool = False
    narrow: bool = False
