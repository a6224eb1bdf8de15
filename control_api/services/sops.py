"""The SOP generator: a standard operating procedure drafted from how calls about one need were handled.

Offline (``generator = "offline"``): the calls are those of a knowledge gap, or those whose analysed questions
mean the same as a search topic (the knowledge base's embedder). From each call, what followed the matching
question becomes candidate steps: answers given from a knowledge passage (keyed by the passage), tools called
(``call_events`` of kind ``tool_call``, keyed by the tool), handoffs (escalation points, keyed by reason),
what a human agent said, and questions the base could not answer. Steps seen in the most calls are kept, in the
order they usually came, each citing the calls and turns it was seen in. Nothing here writes prose: the draft
is assembled and labelled as such; a supervisor edits it and approves it into a knowledge document.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import (
    CallAnalysis,
    CallEvent,
    CallTurn,
    GapQuestion,
    Handoff,
    KnowledgeChunk,
    KnowledgeDocument,
    KnowledgeGap,
    Sop,
    User,
    utcnow,
)
from control_api.problems import ProblemError
from control_api.services import analysis, audit, learning
from knowledge.embedders.base import Embedder
from knowledge.titles import display_title

MAX_STEPS = 12
TOPIC_SCAN = 2000  # analysed calls a topic search compares (newest first)
EXCERPT = 220


@dataclass
class _Step:
    kind: str
    text: str
    chunk_id: str | None = None
    calls: list[str] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    positions: list[float] = field(default_factory=list)


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    cut = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return cut if len(cut) <= EXCERPT else cut[:EXCERPT].rsplit(" ", 1)[0] + "…"


async def _calls_of_gap(session: AsyncSession, gap_id: str, limit: int) -> tuple[str, dict[str, str]]:
    gap = await session.get(KnowledgeGap, gap_id)
    if gap is None:
        raise ProblemError(404, "No knowledge gap with this id.", type_="not-found")
    rows = (
        await session.execute(
            select(GapQuestion.call_id, GapQuestion.question)
            .where(GapQuestion.gap_id == gap_id, GapQuestion.call_id.is_not(None))
            .order_by(GapQuestion.asked_at.desc())
        )
    ).all()
    matched: dict[str, str] = {}
    for call_id, question in rows:
        if call_id and call_id not in matched and len(matched) < limit:
            matched[str(call_id)] = question
    view = await learning.get_gap(session, gap_id)
    return gap.final_question or view.question, matched


async def _calls_of_topic(
    session: AsyncSession, topic: str, embedder: Embedder, similarity: float, limit: int
) -> dict[str, str]:
    rows = (
        await session.execute(
            select(CallAnalysis.call_id, CallAnalysis.exchanges)
            .where(CallAnalysis.status == "done")
            .order_by(CallAnalysis.analysed_at.desc())
            .limit(TOPIC_SCAN)
        )
    ).all()
    pairs = [(str(cid), str(e["question"])) for cid, exchanges in rows for e in exchanges or [] if e.get("question")]
    if not pairs:
        return {}
    vectors = await embedder.embed_array([topic, *[q for _, q in pairs]])
    sims = vectors[1:] @ vectors[0]
    best: dict[str, tuple[float, str]] = {}
    for (call_id, question), score in zip(pairs, sims.tolist(), strict=True):
        if score >= similarity and score > best.get(call_id, (-1.0, ""))[0]:
            best[call_id] = (score, question)
    ranked = sorted(best.items(), key=lambda item: -item[1][0])[:limit]
    return {call_id: question for call_id, (_, question) in ranked}


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


async def _steps_of_call(session: AsyncSession, call_id: str, question: str, found: dict[str, _Step]) -> None:
    """Add what followed ``question`` in one call to the candidate steps ``found``."""
    turns = list(await session.scalars(select(CallTurn).where(CallTurn.call_id == call_id).order_by(CallTurn.seq)))
    wanted = _norm(question)
    start = next(
        (t.seq for t in turns if t.role == "caller" and _norm(t.text) and _norm(t.text) in wanted),
        turns[0].seq if turns else 0,
    )
    # The resolution runs from the question to the caller's next need: once an agent turn answered from the base,
    # the caller's next turn starts something else (an unanswered question may be rephrased or handed off).
    after: list[CallTurn] = []
    answered = False
    for turn in (t for t in turns if t.seq >= start):
        if answered and turn.role == "caller":
            break
        after.append(turn)
        answered = answered or (turn.role == "agent" and bool(turn.citations))
    end = after[-1].seq if after else start
    last = end or 1
    events = list(
        await session.scalars(
            select(CallEvent)
            .where(CallEvent.call_id == call_id, CallEvent.kind.in_(("tool_call", "handoff")))
            .order_by(CallEvent.id)
        )
    )
    handoffs = list(await session.scalars(select(Handoff).where(Handoff.call_id == call_id)))

    def add(key: str, kind: str, text: str, seq: int | None, chunk_id: str | None = None) -> None:
        step = found.setdefault(key, _Step(kind=kind, text=text, chunk_id=chunk_id))
        if call_id not in step.calls:
            step.calls.append(call_id)
            step.positions.append(((seq if seq is not None else last) - start) / max(last - start, 1))
        step.turns.append({"call_id": call_id, "seq": seq})

    resolved = await analysis.resolve_citations(session, [c for t in after for c in (t.citations or [])[:1]])
    for turn in after:
        if turn.role == "agent" and turn.citations:
            chunk_id = resolved[turn.citations[0]][0] if turn.citations[0] in resolved else turn.citations[0]
            add(f"answer:{chunk_id}", "answer", "", turn.seq, chunk_id=chunk_id)
        elif turn.role == "agent" and turn.seq > start and any(t.role == "caller" for t in after if t.seq < turn.seq):
            previous = [t for t in after if t.seq < turn.seq]
            if previous and previous[-1].role == "caller":
                add("unanswered", "escalation", "The knowledge base had no answer to the caller's question.", turn.seq)
        elif turn.role == "human":
            add(
                f"human:{_norm(turn.text)[:60]}",
                "answer",
                f"A human agent said: {_first_sentence(turn.text)}",
                turn.seq,
            )
    for event in events:
        if event.turn_seq is not None and not start <= event.turn_seq <= end + 1:
            continue
        if event.kind == "tool_call":
            tool = str((event.data or {}).get("tool") or "tool")
            add(f"tool:{tool}", "tool", f"Use the {tool} tool.", event.turn_seq)
        else:
            add("handoff", "escalation", "Hand the call to a person.", event.turn_seq)
    for handoff in handoffs:
        reason = (handoff.source or handoff.reason or "requested")[:60]
        add(f"handoff:{reason}", "escalation", f"Hand the call to a person (trigger: {reason}).", None)


async def _describe_passages(session: AsyncSession, steps: Sequence[_Step]) -> list[dict[str, Any]]:
    ids = [s.chunk_id for s in steps if s.chunk_id]
    if not ids:
        return []
    rows = (
        await session.execute(
            select(
                KnowledgeChunk.id,
                KnowledgeChunk.text,
                KnowledgeChunk.heading,
                KnowledgeChunk.document_id,
                KnowledgeDocument.title,
                KnowledgeDocument.filename,
            )
            .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
            .where(KnowledgeChunk.id.in_(ids))
        )
    ).all()
    # A document is named as a person reads it (knowledge.titles.display_title), as citations name it.
    known = {
        cid: (text, heading, doc, display_title(title, filename) or filename)
        for cid, text, heading, doc, title, filename in rows
    }
    passages: list[dict[str, Any]] = []
    for step in steps:
        if step.chunk_id is None:
            continue
        text, heading, doc, title = known.get(step.chunk_id, ("", None, None, None))
        if heading and text.startswith(heading):
            text = text[len(heading) :].lstrip(" :\n")  # chunks carry their heading path first
        where = f"“{heading}”" if heading else "the knowledge base"
        step.text = f"Answer from {where}: {_first_sentence(text)}" if text else f"Answer from passage {step.chunk_id}."
        passages.append(
            {
                "chunk_id": step.chunk_id,
                "document_id": doc,
                "title": title,
                "heading": heading,
                "excerpt": _first_sentence(text) if text else None,
                "calls": list(step.calls),
            }
        )
    return passages


def _public_step(step: _Step) -> dict[str, Any]:
    return {
        "text": step.text,
        "kind": step.kind,
        "calls": list(step.calls),
        "turns": step.turns[:50],
        "chunk_id": step.chunk_id,
        "count": len(step.calls),
    }


async def generate(
    session: AsyncSession,
    *,
    user: User,
    embedder: Embedder | None,
    similarity: float,
    gap_id: str | None = None,
    topic: str | None = None,
    title: str | None = None,
    max_calls: int = 50,
) -> Sop:
    """Draft a procedure from the calls of a gap or a topic (422 problem when no call matches). Commits."""
    if gap_id is not None:
        topic, matched = await _calls_of_gap(session, gap_id, max_calls)
    elif topic is not None:
        if embedder is None:
            raise ProblemError(503, "The knowledge base's embedder is not running here.", type_="knowledge-unavailable")
        matched = await _calls_of_topic(session, topic, embedder, similarity, max_calls)
    else:
        raise ProblemError(422, "Give a gap or a topic.", type_="validation")
    if not matched:
        raise ProblemError(422, "No analysed call matches this topic yet.", type_="no-calls")
    found: dict[str, _Step] = {}
    for call_id, question in matched.items():
        await _steps_of_call(session, call_id, question, found)
    # "Most common": seen in at least a fifth of the calls (every step when there are few calls).
    floor = max(1, math.ceil(len(matched) / 5)) if len(matched) >= 5 else 1
    common = [s for s in found.values() if len(s.calls) >= floor]
    common.sort(key=lambda s: (float(np.mean(s.positions)) if s.positions else 1.0, -len(s.calls)))
    common = sorted(sorted(common, key=lambda s: -len(s.calls))[:MAX_STEPS], key=common.index)
    passages = await _describe_passages(session, common)
    sop = Sop(
        title=(title or f"Handling: {topic}")[:200],
        topic=str(topic),
        gap_id=gap_id,
        status="draft",
        generator="offline",
        steps=[_public_step(s) for s in common],
        passages=passages,
        tools=[
            {"tool": s.text.removeprefix("Use the ").removesuffix(" tool."), "count": len(s.calls), "calls": s.calls}
            for s in common
            if s.kind == "tool"
        ],
        escalations=[
            {"text": s.text, "count": len(s.calls), "calls": s.calls} for s in common if s.kind == "escalation"
        ],
        call_ids=list(matched),
        version=1,
        created_by=user.id,
    )
    session.add(sop)
    await session.commit()
    return sop


async def get(session: AsyncSession, sop_id: str) -> Sop:
    """One procedure; 404 problem when absent."""
    sop = await session.get(Sop, sop_id)
    if sop is None:
        raise ProblemError(404, "No SOP with this id.", type_="not-found")
    return sop


async def list_all(session: AsyncSession, *, limit: int = 100) -> list[Sop]:
    """Procedures, newest first."""
    return list(await session.scalars(select(Sop).order_by(Sop.created_at.desc(), Sop.id).limit(limit)))


async def update(session: AsyncSession, sop_id: str, *, title: str | None, steps: list[dict[str, Any]] | None) -> Sop:
    """Edit a procedure: a new version, back to ``draft`` until approved again. Commits."""
    sop = await get(session, sop_id)
    if title is not None:
        sop.title = title
    if steps is not None:
        sop.steps = steps
    sop.version += 1
    sop.status = "draft"
    await session.commit()
    return sop


def markdown(sop: Sop) -> str:
    """The document an approved procedure becomes."""
    lines = [f"# {sop.title}", "", f"Standard operating procedure for: {sop.topic}.", "", "## Steps", ""]
    for number, step in enumerate(sop.steps, start=1):
        lines.append(f"{number}. {step['text']}")
    if sop.escalations:
        lines += ["", "## When to escalate", ""]
        lines += [f"- {e['text']}" for e in sop.escalations]
    return "\n".join(lines) + "\n"


async def approve(
    session: AsyncSession, sop_id: str, *, user: User, actor: audit.Actor, ingest: learning.Ingest
) -> Sop:
    """Ingest the procedure as a knowledge document (versioned, with the approver); audit it. Commits."""
    sop = await get(session, sop_id)
    if not sop.steps:
        raise ProblemError(422, "A procedure needs at least one step.", type_="validation")
    document = await learning.ingest_text(
        session,
        ingest,
        filename=f"sop-{learning.slug(sop.title)}-v{sop.version}.md",
        text=markdown(sop),
        user=user,
    )
    sop = await session.get(Sop, sop_id, populate_existing=True) or sop
    sop.status = "approved"
    sop.document_id = document.id
    sop.approved_by = user.id
    sop.approved_at = utcnow()
    await audit.record(
        session,
        actor,
        "sops.approve",
        target_type="sop",
        target_id=sop_id,
        detail={"document_id": document.id, "version": sop.version, "calls": len(sop.call_ids)},
        commit=False,
    )
    await session.commit()
    return sop
