"""Autonomous learning: questions the desk could not answer, clustered by meaning into knowledge gaps.

Intake (:class:`GapIntake`, called by the post-call analysis in its transaction): each unanswered, weakly
answered or handed-off question is embedded with the knowledge base's own embedder and joins the open (or
dismissed) gap whose centroid is nearest, when the cosine similarity reaches ``analysis.cluster_similarity``;
otherwise it opens a new gap with a draft answer assembled from the closest passages (labelled a draft, with its
sources). Re-analysing a call replaces its questions, so nothing is counted twice.

Nothing reaches the knowledge base without a person: :func:`approve` takes the final question and answer,
ingests them as a Markdown document through the one ingestion path (``services.ingestion.add_document``),
versioned per gap, records who approved it (audit log), then asks the gap's questions again against the new
base and stores the coverage before → after.

:func:`cluster` is the batch form of the same rule (leader clustering on unit vectors, block by block with one
matrix product per block), used by the benchmark at 100 000 questions.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import Call, GapQuestion, KnowledgeDocument, KnowledgeGap, User, utcnow
from control_api.problems import ProblemError
from control_api.services import audit
from control_api.services.ingestion import add_document
from knowledge.embedders.base import Embedder
from knowledge.types import Retrieval

Vectors = npt.NDArray[np.float32]
Retriever = Callable[[str], Awaitable[Retrieval]]
DRAFT_PASSAGES = 3
DRAFT_CHARS = 1200
QUESTIONS_SHOWN = 25


def cluster(
    vectors: Vectors, similarity: float, *, centroids: Vectors | None = None, block: int = 2048
) -> tuple[npt.NDArray[np.int64], Vectors, npt.NDArray[np.int64]]:
    """Leader clustering of unit ``vectors``: each joins the nearest centroid at ``similarity`` or more, else leads.

    Args:
        vectors: ``(n, d)`` unit rows.
        similarity: Cosine similarity needed to join a cluster.
        centroids: Existing clusters' unit centroids (``(k, d)``), kept as they are.
        block: Rows compared with the centroids in one matrix product.

    Returns:
        The cluster index of each row, the centroids (existing first, then new ones) and each cluster's count
        of the given rows.

    """
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    leaders: list[Vectors] = [centroids] if centroids is not None and len(centroids) else []
    known = np.concatenate(leaders) if leaders else np.zeros((0, dim), dtype=np.float32)
    labels = np.empty(len(vectors), dtype=np.int64)
    for start in range(0, len(vectors), block):
        rows = vectors[start : start + block]
        if len(known):
            sims = rows @ known.T
            best = sims.argmax(axis=1)
            hit = sims[np.arange(len(rows)), best] >= similarity
        else:
            best = np.zeros(len(rows), dtype=np.int64)
            hit = np.zeros(len(rows), dtype=bool)
        labels[start : start + len(rows)] = np.where(hit, best, -1)
        misses = np.flatnonzero(~hit)
        fresh: list[Vectors] = []
        for i in misses:  # rows no known cluster took: lead a new one, or join one led earlier in this block
            row = rows[i]
            if fresh:
                near = np.stack(fresh) @ row
                j = int(near.argmax())
                if near[j] >= similarity:
                    labels[start + i] = len(known) + j
                    continue
            labels[start + i] = len(known) + len(fresh)
            fresh.append(row)
        if fresh:
            known = np.concatenate([known, np.stack(fresh)])
    counts = np.bincount(labels, minlength=len(known)).astype(np.int64)
    return labels, known.astype(np.float32, copy=False), counts


def _vector(blob: bytes) -> Vectors:
    return np.frombuffer(blob, dtype=np.float32)


def _blob(vector: Vectors) -> bytes:
    norm = float(np.linalg.norm(vector)) or 1.0
    return (vector / norm).astype(np.float32).tobytes()


def draft_from(retrieval: Retrieval) -> tuple[str | None, list[dict[str, Any]]]:
    """A draft answer from the closest passages, and their sources (chunk, document, citation, score)."""
    parts: list[str] = []
    sources: list[dict[str, Any]] = []
    used = 0
    for passage in list(retrieval.passages)[:DRAFT_PASSAGES]:
        text = " ".join(passage.text.split())
        if parts and used + len(text) > DRAFT_CHARS:
            break
        parts.append(text)
        used += len(text)
        sources.append(
            {
                "chunk_id": passage.chunk_id,
                "document_id": passage.document_id,
                "citation": passage.citation,
                "heading": passage.heading,
                "score": round(float(passage.score), 4),
            }
        )
    return ("\n\n".join(parts) or None), sources


@dataclass
class GapIntake:
    """Files an analysed call's questions into knowledge gaps (``analysis.GapRecorder``).

    Args:
        embedder: The knowledge base's embedder.
        retrieve: Unlogged retrieval, for the draft answer of a new gap (None: no draft).
        similarity: Cosine similarity at which a question joins a gap.

    """

    embedder: Embedder
    retrieve: Retriever | None
    similarity: float

    async def __call__(self, session: AsyncSession, call: Call, items: Sequence[tuple[str, str, float | None]]) -> None:
        """Replace ``call``'s questions in the gaps with ``items`` (not committed)."""
        await session.execute(delete(GapQuestion).where(GapQuestion.call_id == call.id))
        if not items:
            return
        vectors = await self.embedder.embed_array([q for q, _, _ in items])
        gaps = list(await session.scalars(select(KnowledgeGap).where(KnowledgeGap.status.in_(("open", "dismissed")))))
        centroids = np.stack([_vector(g.centroid) for g in gaps]) if gaps else None
        if centroids is not None and centroids.shape[1] != vectors.shape[1]:
            gaps, centroids = [], None  # another embedding model made them: not comparable
        labels, known, _ = cluster(vectors, self.similarity, centroids=centroids)
        asked_at = call.ended_at or utcnow()
        by_label: dict[int, KnowledgeGap] = dict(enumerate(gaps))
        for (question, reason, score), label, vector in zip(items, labels.tolist(), vectors, strict=True):
            gap = by_label.get(label)
            if gap is None:
                draft: str | None = None
                sources: list[dict[str, Any]] = []
                if self.retrieve is not None:
                    draft, sources = draft_from(await self.retrieve(question))
                gap = KnowledgeGap(
                    status="open", centroid=_blob(known[label]), draft_answer=draft, draft_sources=sources, version=0
                )
                session.add(gap)
                await session.flush()
                by_label[label] = gap
            else:
                # The centroid drifts towards its members (running sum of unit vectors, normalised).
                members = await session.scalar(select(func.count()).where(GapQuestion.gap_id == gap.id)) or 0
                gap.centroid = _blob(_vector(gap.centroid) * max(int(members), 1) + vector)
            session.add(
                GapQuestion(
                    gap_id=gap.id,
                    call_id=call.id,
                    question=question[:2000],
                    reason=reason,
                    score=score,
                    asked_at=asked_at,
                )
            )


# --- reading gaps ---


def _phrasing(questions: Sequence[str]) -> str:
    """The most common phrasing (by normalised text; the first asked on a tie)."""
    normal = [re.sub(r"\W+", " ", q.lower()).strip() for q in questions]
    counts = Counter(normal)
    best = max(counts.values())
    return next(q for q, n in zip(questions, normal, strict=True) if counts[n] == best)


@dataclass(frozen=True, slots=True)
class GapView:
    """A gap with what the console shows of it."""

    gap: KnowledgeGap
    question: str
    count: int
    calls: int
    last_asked_at: datetime | None
    reasons: dict[str, int]
    questions: list[GapQuestion]


async def _view(session: AsyncSession, gap: KnowledgeGap) -> GapView:
    rows = list(
        await session.scalars(
            select(GapQuestion).where(GapQuestion.gap_id == gap.id).order_by(GapQuestion.asked_at, GapQuestion.id)
        )
    )
    return GapView(
        gap=gap,
        question=_phrasing([r.question for r in rows]) if rows else (gap.final_question or ""),
        count=len(rows),
        calls=len({r.call_id for r in rows if r.call_id}),
        last_asked_at=max((r.asked_at for r in rows), default=None),
        reasons=dict(Counter(r.reason for r in rows)),
        questions=list(reversed(rows))[:QUESTIONS_SHOWN],
    )


async def list_gaps(session: AsyncSession, *, status: str | None = "open", limit: int = 50) -> list[GapView]:
    """Gaps, most asked first, then most recently asked."""
    stmt = (
        select(KnowledgeGap, func.count(GapQuestion.id).label("n"), func.max(GapQuestion.asked_at).label("last"))
        .outerjoin(GapQuestion, GapQuestion.gap_id == KnowledgeGap.id)
        .group_by(KnowledgeGap.id)
        .order_by(func.count(GapQuestion.id).desc(), func.max(GapQuestion.asked_at).desc(), KnowledgeGap.id)
        .limit(limit)
    )
    if status is not None:
        stmt = stmt.where(KnowledgeGap.status == status)
    gaps = [row[0] for row in (await session.execute(stmt)).all()]
    return [await _view(session, gap) for gap in gaps]


async def get_gap(session: AsyncSession, gap_id: str) -> GapView:
    """One gap; 404 problem when absent."""
    gap = await session.get(KnowledgeGap, gap_id)
    if gap is None:
        raise ProblemError(404, "No knowledge gap with this id.", type_="not-found")
    return await _view(session, gap)


# --- deciding ---


async def coverage(retrieve: Retriever, questions: Sequence[str]) -> dict[str, Any]:
    """How many of ``questions`` the knowledge base now answers (found above its threshold)."""
    found = 0
    detail: list[dict[str, Any]] = []
    for question in questions:
        result = await retrieve(question)
        top = result.passages[0] if result.passages else None
        found += int(result.found)
        detail.append(
            {
                "question": question,
                "found": result.found,
                "score": round(float(top.score), 4) if top else None,
                "chunk_id": top.chunk_id if top else None,
                "document_id": top.document_id if top else None,
            }
        )
    return {
        "answered": found,
        "total": len(questions),
        "rate": (found / len(questions)) if questions else None,
        "questions": detail,
    }


def faq_markdown(question: str, answer: str) -> str:
    """The knowledge document an approved gap becomes: the question as the section heading, the answer below."""
    return f"# {' '.join(question.split())}\n\n{answer.strip()}\n"


def slug(text: str, *, limit: int = 48) -> str:
    """A file-name-safe slug of ``text``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "entry"


@dataclass(frozen=True, slots=True)
class Ingest:
    """What approving needs of the knowledge side: where originals go, the size cap, and the worker hooks."""

    uploads_dir: Path
    max_bytes: int
    notify: Callable[[], None]
    wait_idle: Callable[[], Awaitable[None]]
    retrieve: Retriever


async def ingest_text(
    session: AsyncSession, ingest: Ingest, *, filename: str, text: str, user: User
) -> KnowledgeDocument:
    """Add ``text`` as a Markdown knowledge document through the one ingestion path and wait for it."""
    outcome = await add_document(
        session,
        uploads_dir=ingest.uploads_dir,
        data=text.encode(),
        filename=filename,
        max_bytes=ingest.max_bytes,
        created_by=user.id,
    )
    ingest.notify()
    document_id = outcome.document.id
    await ingest.wait_idle()
    document = await session.get(KnowledgeDocument, document_id, populate_existing=True)
    if document is None:
        raise ProblemError(409, "The document was removed while it was being ingested.", type_="conflict")
    return document


async def approve(
    session: AsyncSession,
    gap_id: str,
    *,
    question: str,
    answer: str,
    user: User,
    actor: audit.Actor,
    ingest: Ingest,
) -> GapView:
    """Publish a gap's final question and answer as a knowledge document, then measure coverage before → after."""
    view = await get_gap(session, gap_id)
    gap = view.gap
    if gap.status == "dismissed":
        raise ProblemError(409, "This gap was dismissed; it cannot be approved.", type_="conflict")
    asked = [q.question for q in await session.scalars(select(GapQuestion).where(GapQuestion.gap_id == gap_id))]
    before = await coverage(ingest.retrieve, asked)
    version = gap.version + 1
    document = await ingest_text(
        session, ingest, filename=f"faq-{slug(question)}-v{version}.md", text=faq_markdown(question, answer), user=user
    )
    after = await coverage(ingest.retrieve, asked)
    gap = await session.get(KnowledgeGap, gap_id, populate_existing=True) or gap
    gap.status = "approved"
    gap.final_question = question
    gap.final_answer = answer
    gap.document_id = document.id
    gap.version = version
    gap.decided_by = user.id
    gap.decided_at = utcnow()
    gap.coverage = {"before": before, "after": after, "document_status": document.status}
    await audit.record(
        session,
        actor,
        "learning.gap.approve",
        target_type="knowledge_gap",
        target_id=gap_id,
        detail={
            "document_id": document.id,
            "version": version,
            "questions": len(asked),
            "coverage_before": before["answered"],
            "coverage_after": after["answered"],
        },
        commit=False,
    )
    await session.commit()
    return await get_gap(session, gap_id)


async def dismiss(session: AsyncSession, gap_id: str, *, user: User, actor: audit.Actor) -> GapView:
    """Dismiss a gap: it leaves the list, and questions of the same meaning keep joining it silently."""
    view = await get_gap(session, gap_id)
    view.gap.status = "dismissed"
    view.gap.decided_by = user.id
    view.gap.decided_at = utcnow()
    await audit.record(
        session, actor, "learning.gap.dismiss", target_type="knowledge_gap", target_id=gap_id, commit=False
    )
    await session.commit()
    return await get_gap(session, gap_id)
