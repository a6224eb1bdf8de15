"""Hybrid retrieval: BM25 + vectors fused with reciprocal rank fusion, optional rerank, calibrated threshold.

The interface the agent wraps into ``pipelines.contracts.Retriever``::

    retrieval = await retriever.retrieve("what is the late fee?", top_k=5)
    retrieval.found            # False when the best passage scores below the threshold ("I don't know")
    retrieval.passages         # best first: Passage(text, score, document_id, chunk_id, citation, ...)
    retrieval.latency_ms       # query embedding included

Scores: a passage's ``score`` is its cosine similarity to the question (MiniLM: unrelated text ~0.0-0.3,
a passage that answers the question typically 0.45-0.8), raised slightly when the keyword search also ranks
it, so it means the same thing whatever the size of the knowledge base; with a reranker configured it is the
reranker's probability instead. ``found`` compares the best score with ``score_threshold``: the configured
value (``knowledge.score_threshold``, tuned on the team's labelled set, ``benchmarks/retrieval.py``) until
:meth:`HybridRetriever.enable_calibration` is called; from then on the threshold the base derives for itself
(:mod:`knowledge.calibration`), re-derived in the background whenever the base's passages change. Every search
of the base (calls, the API's typed test queries, the CLI) goes through :meth:`HybridRetriever.retrieve`, so
one threshold rules them all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import structlog

from knowledge.answerability import BAND as ANSWERABILITY_BAND
from knowledge.answerability import Answerability
from knowledge.embedders.base import Embedder
from knowledge.fusion import ranks
from knowledge.phonetic import SoundAlike
from knowledge.rerank import CrossEncoderReranker
from knowledge.stores.base import VectorStore
from knowledge.types import Hit, Passage, Retrieval, StoredChunk
from knowledge.views import MAX_CHUNKS as VIEW_MAX_CHUNKS
from knowledge.views import ViewIndex, lifted

# A best passage this far under the threshold is "borderline": the brain asks whether it is what the caller meant,
# and a caller who says no is offered a person. Chosen on the development sets only (benchmarks.notfound_dev,
# docs/measurements.md), with a caller who answers truthfully: the widest band that confirms under 12 % of the
# plain-words set's typed turns (0.05: 8 of 67, 1 of 132 on the team's set), leaving room under the 15 %
# for turns that recognition errors push into it. Each step wider answers about one more question per two asked.
CONFIRM_BAND = 0.05
# A best passage that clears the threshold by less than this is a "narrow" find: on a recogniser's transcript it is
# weak evidence (``pipelines.brain.extractive.weak_evidence``), so Whisper's second opinion is asked. A misheard
# question off the base's subject ("do you offer a home in sure ends") mostly lands just over the threshold.
# Chosen on the development sets only (team + plain-words, voices rms and espeak-ng en-us: benchmarks/weak_margin_dev,
# docs/measurements.md): the narrowest margin that raised honest "not found" (+0.05 to +0.15 in three of four cells,
# none lower) and right passages (+0.01 to +0.04), sending 4-6 % more finals to Whisper; wider margins sent more
# finals for little or no further gain until 0.13.
NARROW_MARGIN = 0.02


def is_narrow(found: bool, top: float | None, threshold: float, margin: float = NARROW_MARGIN) -> bool:
    """Whether a find clears ``threshold`` by less than ``margin`` (``Retrieval.narrow``)."""
    return found and top is not None and top < threshold + margin


if TYPE_CHECKING:
    from knowledge.calibration import Calibration

log = structlog.get_logger(__name__)
CHANGE_CHECK_S = 15.0  # how often a retrieval may look whether the base's passages changed (a cheap count)


def citation(chunk_title: str | None, heading: str | None, page: int | None, seq: int) -> str:
    """A human-readable citation: document, section or page, and chunk number."""
    parts = [chunk_title or "Untitled document"]
    if heading:
        last = heading.split(" > ")[-1]
        if last and last != chunk_title:
            parts.append(f'section "{last}"')
    if page is not None:
        parts.append(f"page {page}")
    parts.append(f"chunk {seq + 1}")
    return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class RetrievalConfig:
    """Tunable retrieval parameters (the defaults are the ones measured in ``benchmarks/retrieval.py``).

    Attributes:
        score_threshold: Below this best score the answer is "not found".
        candidates: How many hits each of the vector and keyword searches contributes to the fusion.
        keyword_bonus: Added to a passage's cosine score in proportion to its keyword (BM25) rank.
        views: Build the passages' sentence views with the calibration (:mod:`knowledge.views`) and let the
            best view raise a passage's cosine (a base of at most ``knowledge.views.MAX_CHUNKS`` passages, no
            reranker).

    """

    score_threshold: float = 0.47
    candidates: int = 50
    keyword_bonus: float = 0.1
    views: bool = True


class HybridRetriever:
    """Retrieves passages for questions from a store, with citations and a "not found" decision.

    Args:
        embedder: Embeds the question (the same model that embedded the chunks).
        store: The vector store.
        config: Threshold and fusion parameters.
        reranker: Optional cross-encoder; when set, its scores rank and threshold the passages.

    """

    def __init__(
        self,
        *,
        embedder: Embedder,
        store: VectorStore,
        config: RetrievalConfig | None = None,
        reranker: CrossEncoderReranker | None = None,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.config = config or RetrievalConfig()
        self.reranker = reranker
        self.configured_threshold = self.config.score_threshold
        self.calibration: Calibration | None = None
        self._calibration_dir: Path | None = None
        self._counts_key: tuple[tuple[str, int], ...] | None = None
        self._checked_at = 0.0
        self._calibrating: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.sound_alike: SoundAlike | None = None
        self.views: ViewIndex | None = None
        self.answerability: Answerability | None = None

    async def enable_calibration(self, directory: Path) -> Calibration:
        """Derive the threshold from the base (or load the stored one that still matches it) and keep it current.

        ``directory`` holds ``calibration.json`` beside the index. Returns the calibration now in force.
        """
        self._calibration_dir = directory
        return await self.recalibrate()

    async def recalibrate(self) -> Calibration:
        """Calibrate now: reuse the stored calibration when the base and the model are unchanged."""
        from knowledge import calibration as calib  # local: calibration imports this module

        async with self._lock:
            self._checked_at = time.monotonic()
            counts = await self.store.document_counts()
            # The base this calibration is for, recorded first: a slow calibration's own retrievals (its off-topic
            # probes) must not see a "changed" base and start another one.
            self._counts_key = tuple(sorted(counts.items()))
            chunks = await calib.all_chunks(self.store)
            self.use_vocabulary([c.text for c in chunks])
            model_id = str(getattr(self.embedder, "model_id", "unknown"))
            print_ = calib.fingerprint(chunks, model_id)
            await self.build_views(chunks, print_)
            await self.build_answerability(chunks, print_)
            stored = calib.load(self._calibration_dir) if self._calibration_dir else None
            if (
                stored is not None
                and stored.fingerprint == print_
                and stored.model_id == model_id
                and stored.rule == calib.rule(views=self.views is not None)
            ):
                result = stored
            else:
                result = await calib.calibrate(
                    self, model_id=model_id, fallback=self.configured_threshold, chunks=chunks
                )
                if self._calibration_dir is not None:
                    await asyncio.to_thread(calib.save, self._calibration_dir, result)
                log.info(
                    "knowledge_calibrated",
                    threshold=result.threshold,
                    source=result.source,
                    chunks=result.chunks,
                    seconds=result.seconds,
                )
            self.calibration = result
            self.config = replace(self.config, score_threshold=result.threshold)
            return result

    def _maybe_recalibrate(self) -> None:
        """Look (at most every ``CHANGE_CHECK_S``) whether the base changed; re-derive the threshold off the path."""
        if self._calibration_dir is None or (self._calibrating is not None and not self._calibrating.done()):
            return
        if self._lock.locked():  # a calibration is under way (its own probes retrieve)
            return
        now = time.monotonic()
        if now - self._checked_at < CHANGE_CHECK_S:
            return
        self._checked_at = now
        self._calibrating = asyncio.create_task(self._check_changed(), name="knowledge-calibration")

    async def _check_changed(self) -> None:
        try:
            counts = tuple(sorted((await self.store.document_counts()).items()))
            if counts != self._counts_key:
                self.views = None  # they may name passages that are gone: the plain search until rebuilt
                await self.recalibrate()
        except Exception:  # the previous threshold stays; retried at the next check
            log.exception("knowledge_calibration_failed")

    @property
    def recalibrating(self) -> bool:
        """Whether the threshold is being derived now (at start-up, or again for a changed base)."""
        return self._lock.locked() or (self._calibrating is not None and not self._calibrating.done())

    async def calibration_current(self) -> bool:
        """Whether the calibration in force was derived for the base as it is now; if not, re-derive it.

        A cheap count of each document's passages, no search. A changed base starts the background
        re-calibration at once (not at the next retrieval's check), so a page that shows the threshold after an
        upload sees it settle. True when calibration is off (the configured threshold is always current).
        """
        if self._calibration_dir is None:
            return True
        if self.recalibrating:
            return False
        if tuple(sorted((await self.store.document_counts()).items())) == self._counts_key:
            return True
        self._checked_at = 0.0
        self._maybe_recalibrate()
        return False

    async def calibration_settled(self) -> None:
        """Wait for a background re-calibration in progress (tests, the CLI)."""
        if self._calibrating is not None:
            await asyncio.gather(self._calibrating, return_exceptions=True)

    def _score(self, hit: Hit) -> float:
        cosine = hit.vector_score if hit.vector_score is not None else 0.0
        bonus = self.config.keyword_bonus / hit.keyword_rank if hit.keyword_rank else 0.0
        return max(0.0, min(1.0, cosine + bonus))

    async def retrieve(self, question: str, *, top_k: int = 5, sound_alike: bool = True) -> Retrieval:
        """Retrieve up to ``top_k`` passages for ``question``, best first.

        When nothing is found and the base's vocabulary is known (:meth:`use_vocabulary`), the question is
        tried once more with its sound-alikes of the base's words replaced (:mod:`knowledge.phonetic`: "caster
        all" -> "kestrel"), and the better of the two is returned (``sound_alike=False``: the question as given
        only, as the calibration scores it).
        """
        started = time.perf_counter()
        self._maybe_recalibrate()
        question = question.strip()
        if not question:
            return Retrieval(found=False, passages=(), latency_ms=0.0, top_score=None)
        scored, vector = await self._search(question, top_k)
        searched = question
        if sound_alike and self.sound_alike is not None and (not scored or scored[0][0] < self.config.score_threshold):
            heard = self.sound_alike.rewrite(question)
            if heard is not None:
                again, heard_vector = await self._search(heard, top_k)
                if again and (not scored or again[0][0] > scored[0][0]):
                    scored, vector, searched = again, heard_vector, heard
        views = self.views
        passages = tuple(
            Passage(
                text=hit.chunk.text,
                score=round(score, 4),
                document_id=hit.chunk.document_id,
                chunk_id=hit.chunk.id,
                citation=citation(
                    hit.chunk.display_title or hit.chunk.title, hit.chunk.heading, hit.chunk.page, hit.chunk.seq
                ),
                title=hit.chunk.display_title or hit.chunk.title,
                heading=hit.chunk.heading,
                page=hit.chunk.page,
                closeness=views.closeness(hit.chunk.id, vector) if views is not None else (),
            )
            for score, hit in scored[:top_k]
        )
        top = passages[0].score if passages else None
        found = top is not None and top >= self.config.score_threshold
        threshold = self.config.score_threshold
        unanswerable = False
        if found and top is not None and top < threshold + ANSWERABILITY_BAND:
            unanswerable = await self._foreign(searched, scored[0][1])
            found = not unanswerable
        borderline = False
        if not found and top is not None and threshold - CONFIRM_BAND <= top < threshold:
            borderline = not await self._foreign(searched, scored[0][1])
        return Retrieval(
            found=found,
            passages=passages,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            top_score=top,
            borderline=borderline,
            unanswerable=unanswerable,
            narrow=is_narrow(found, top, threshold),
        )

    async def build_views(self, chunks: Sequence[StoredChunk], fingerprint: str) -> ViewIndex | None:
        """Build (or load, beside the calibration) the passages' sentence views, when they apply to this base.

        They apply with ``config.views`` on, no reranker and at most ``knowledge.views.MAX_CHUNKS`` passages;
        otherwise the plain hybrid search is used. Called by :meth:`recalibrate` with the base's passages.
        """
        self.views = None
        if self.config.views and self.reranker is None and 0 < len(chunks) <= VIEW_MAX_CHUNKS:
            self.views = await ViewIndex.build(self.embedder, chunks, fingerprint, self._calibration_dir)
        return self.views

    async def build_answerability(self, chunks: Sequence[StoredChunk], fingerprint: str) -> Answerability | None:
        """Embed the base's words for the answerability check (:mod:`knowledge.answerability`).

        Stored beside the calibration; not built with a reranker (its scores are not the cosines the check compares).
        """
        self.answerability = None
        if self.reranker is None and chunks:
            self.answerability = await Answerability.build(
                self.embedder, [c.text for c in chunks], fingerprint, self._calibration_dir
            )
        return self.answerability

    async def _foreign(self, question: str, hit: Hit) -> bool:
        """Whether ``question`` turns on a word foreign to the base and to the best passage ``hit``."""
        check = self.answerability
        if check is None or self.reranker is not None:
            return False
        views = self.views
        chunk = hit.chunk
        own = np.asarray(chunk.vector, dtype=np.float32).reshape(-1)

        def passage_score(query: npt.NDArray[np.float32]) -> float:
            lifted_score = views.passage_score(chunk.id, query) if views is not None else None
            return float(own @ query) if lifted_score is None else lifted_score

        async def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
            return np.asarray(await self.embedder.embed_array(texts), dtype=np.float32)

        return await check.foreign(question, embed, passage_score) is not None

    def use_vocabulary(self, texts: Sequence[str]) -> None:
        """Match the base's own words by sound as well as by spelling (built from its passages' text)."""
        self.sound_alike = SoundAlike(texts)

    async def _search(self, question: str, top_k: int) -> tuple[list[tuple[float, Hit]], npt.NDArray[np.float32]]:
        """The passages for ``question``, best first, and the question's vector."""
        views = self.views
        if views is not None and self.reranker is None:
            if tuple(sorted((await self.store.document_counts()).items())) == self._counts_key:
                return await self._search_views(views, question, top_k)
            # A document was added or removed since the views were built: they would hide the new passages and
            # still offer removed ones. The plain search until the background calibration rebuilds them.
            self.views = None
            self._checked_at = 0.0
            self._maybe_recalibrate()
        pool = max(top_k, 10) if self.reranker else top_k * 2
        encode = getattr(self.embedder, "encode", None)
        search = getattr(self.store, "hybrid_search_sync", None)
        if callable(encode) and callable(search):
            # In-process embedder and store: embed and search in one worker-thread hop (fewer wake-ups on a
            # busy machine; onnxruntime and hnswlib release the GIL while they compute).
            def local() -> tuple[list[Hit], npt.NDArray[np.float32]]:
                query = np.asarray(encode([question])[0], dtype=np.float32)
                hits: list[Hit] = search(question, query, pool, self.config.candidates)
                return hits, query

            hits, vector = await asyncio.to_thread(local)
        else:
            vector = np.asarray(await self.embedder.embed_query(question), dtype=np.float32)
            hits = await self.store.hybrid_search(question, vector, top_k=pool, candidates=self.config.candidates)
        scored = [(self._score(hit), hit) for hit in hits]
        if self.reranker is not None and scored:
            rerank = await self.reranker.score(question, [hit.chunk.text for _, hit in scored])
            scored = [(s, hit) for s, (_, hit) in zip(rerank, scored, strict=True)]
        scored.sort(key=lambda pair: -pair[0])
        return scored, vector

    async def _search_views(
        self, views: ViewIndex, question: str, top_k: int
    ) -> tuple[list[tuple[float, Hit]], npt.NDArray[np.float32]]:
        """Every passage of a (small) base scored by cosine lifted by its best view, plus the keyword bonus."""
        encode = getattr(self.embedder, "encode", None)
        keyword = getattr(self.store, "keyword_search_sync", None)
        candidates = self.config.candidates
        if callable(encode) and callable(keyword):

            def local() -> tuple[list[tuple[float, Hit]], npt.NDArray[np.float32]]:
                ranked: list[Hit] = keyword(question, candidates)
                query = np.asarray(encode([question])[0], dtype=np.float32)
                return self._view_scores(views, query, ranked, top_k), query

            return await asyncio.to_thread(local)
        vector = np.asarray(await self.embedder.embed_query(question), dtype=np.float32)
        ranked = await self.store.keyword_search(question, top_k=candidates)
        return self._view_scores(views, vector, ranked, top_k), vector

    def _view_scores(
        self, views: ViewIndex, vector: Sequence[float] | npt.NDArray[np.float32], ranked: Sequence[Hit], top_k: int
    ) -> list[tuple[float, Hit]]:
        keyword_rank = ranks(ranked)
        cosine, best = views.scores(np.asarray(vector, dtype=np.float32))
        bonus = self.config.keyword_bonus
        scores = [
            lifted(float(c), float(b)) + (bonus / keyword_rank[chunk.id] if chunk.id in keyword_rank else 0.0)
            for chunk, c, b in zip(views.chunks, cosine.tolist(), best.tolist(), strict=True)
        ]
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], views.chunks[i].id))[: max(top_k, 1) * 2]
        return [
            (
                max(0.0, min(1.0, scores[i])),
                Hit(
                    chunk=views.chunks[i],
                    score=scores[i],
                    vector_score=float(cosine[i]),
                    keyword_rank=keyword_rank.get(views.chunks[i].id),
                ),
            )
            for i in order
        ]
