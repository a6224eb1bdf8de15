"""Post-call analysis: summary, outcome, topics, sentiment, unanswered questions and operator-defined fields.

Offline and extractive: everything is read from the stored call (turns with their citations and VADER scores,
events, handoffs, callback requests, the logged knowledge-base queries) and the knowledge base's headings, so
it runs as a job after the call (``control_api.services.analysis_jobs``), never on the audio path, and can be
run again on any past call. The summary is the one extractive summary (``services.summary.summarize``).

Outcomes:

- ``callback_requested``: a callback request exists for the call;
- ``handed_off``: a handoff was asked for (whatever came of it), or the voice side stored ``handed_off``;
- ``failed``: the call broke (stored ``failed``/``not_connected``, or the call record ended ``failed``);
- ``resolved_by_ai``: the caller asked at least one question and every one was answered from the base;
- ``abandoned``: the caller left with a question unanswered and no person involved, or never spoke.

The rule is the analytics' one (``services.analytics.classify``), named in the vocabulary above.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api import user_patterns
from control_api.db.models import (
    AnalysisField,
    Call,
    CallAnalysis,
    CallbackRequest,
    CallEvent,
    CallTurn,
    Handoff,
    KnowledgeChunk,
    KnowledgeDocument,
    Persona,
    RagQuery,
    utcnow,
)
from control_api.integrations import outbox
from control_api.problems import ProblemError
from control_api.services import analytics
from control_api.services import sentiment as sentiment_analysis
from control_api.services.ingestion_pipeline import citation_title, index_title
from control_api.services.summary import Exchange, summarize
from knowledge.titles import display_title
from knowledge.types import Retrieval

log = structlog.get_logger(__name__)
OUTCOMES = ("resolved_by_ai", "handed_off", "callback_requested", "abandoned", "failed")
FIELD_KINDS = ("text", "number", "boolean", "choice")
# The analytics rule's outcomes (``services.analytics.classify``) named as the analysis reports them.
_OUTCOME = {
    analytics.RESOLVED: "resolved_by_ai",
    analytics.UNANSWERED: "abandoned",
    analytics.CALLBACK: "callback_requested",
    analytics.HANDED_OFF: "handed_off",
    "failed": "failed",
    "not_connected": "failed",
    "abandoned": "abandoned",
}
DEFAULT_PERSONA = "default"
# A field's own words must appear within this many characters before the value it names ("order number 123").
_NEAR = 40
_WORD = re.compile(r"[a-z0-9']+")
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "to",
        "of",
        "and",
        "or",
        "for",
        "in",
        "on",
        "at",
        "is",
        "are",
        "be",
        "was",
        "do",
        "does",
        "did",
        "i",
        "you",
        "my",
        "your",
        "we",
        "our",
        "it",
        "this",
        "that",
        "with",
        "wants",
        "want",
        "can",
        "could",
        "would",
        "should",
        "will",
    ]
)


# What the analysis needs of the knowledge base: a retrieval that is not logged as a caller's query.
Retrieve = Callable[[str], Awaitable[Retrieval]]


def call_outcome(*, call: Call, asked: Sequence[Exchange], handed_off: bool, callback: bool) -> str:
    """The outcome of an ended call by the analytics' one containment rule, in the console's vocabulary."""
    stored = analytics.stored_outcome(call.outcome, call.status)
    return analytics.classify(stored=stored, asked=asked, handed_off=handed_off, callback=callback)


def outcome_of(*, call: Call, asked: Sequence[Exchange], handed_off: bool, callback: bool) -> str:
    """The outcome of an ended call: the analytics' one containment rule, in this module's vocabulary."""
    return _OUTCOME[call_outcome(call=call, asked=asked, handed_off=handed_off, callback=callback)]


def sentiment_of(turns: Sequence[CallTurn]) -> dict[str, Any]:
    """The caller's sentiment over the call from the per-turn VADER compound scores."""
    scores = [(t.seq, float(t.sentiment)) for t in turns if t.role == "caller" and t.sentiment is not None]
    if not scores:
        return {"mean": None, "label": None, "first": None, "last": None, "trend": None, "turns": []}
    values = [s for _, s in scores]
    mean = sum(values) / len(values)
    trend = values[-1] - values[0]
    return {
        "mean": round(mean, 4),
        "label": sentiment_analysis.label(mean),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "first": round(values[0], 4),
        "last": round(values[-1], 4),
        "trend": "improving" if trend > 0.2 else "worsening" if trend < -0.2 else "steady",
        "turns": [{"seq": seq, "score": round(s, 4)} for seq, s in scores],
    }


def words(text: str) -> list[str]:
    """Lower-case content words of ``text`` (no stop words)."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def _named(field: AnalysisField) -> list[str]:
    return words(field.name.replace("_", " ")) or [field.name.lower()]


def extract_field(field: AnalysisField, text: str, vocabulary: Sequence[str]) -> Any:
    """One operator-defined field from the caller's words.

    Patterns (regular expressions, first group if any) win; otherwise ``number`` takes the digits that follow
    the field's own words, ``boolean`` is true when the field's content words all occur, ``choice`` picks the
    choice (or, with no choices set, the knowledge base's section heading) sharing most words with the text,
    and ``text`` the sentence that names the field. None when nothing fits.
    """
    for pattern in field.patterns or ():
        try:
            found = user_patterns.search(pattern, text)
        except ValueError:
            continue  # validated on save; an old bad pattern is skipped, not fatal
        except TimeoutError:
            # Catastrophic backtracking: this field is skipped for this call (the field, never the caller's words).
            log.warning("analysis_pattern_timeout", field=field.name, persona=field.persona_name)
            continue
        if found:
            value = found.group(1) if found.groups() else found.group(0)
            return _coerce(field.kind, value)
    lowered = text.lower()
    own = _named(field)
    if field.kind == "number":
        for word in own:
            for match in re.finditer(rf"\b{re.escape(word)}\b", lowered):
                tail = lowered[match.end() : match.end() + _NEAR]
                digits = re.search(r"\d[\d\- ]*\d|\d", tail)
                if digits:
                    return _coerce("number", digits.group(0))
        return None
    if field.kind == "boolean":
        present = set(words(text))
        return all(w in present for w in own)
    if field.kind == "choice":
        options = list(field.choices or ()) or list(vocabulary)
        present = set(words(text))
        best, best_overlap = None, 0
        for option in options:
            overlap = len(present & set(words(option)))
            if overlap > best_overlap:
                best, best_overlap = option, overlap
        return best
    for sentence in re.split(r"(?<=[.?!])\s+", text):
        if any(re.search(rf"\b{re.escape(w)}\b", sentence.lower()) for w in own):
            return sentence.strip()[:300]
    return None


def _coerce(kind: str, value: str) -> Any:
    if kind == "number":
        digits = re.sub(r"[^\d.]", "", value)
        if not digits:
            return None
        return float(digits) if "." in digits else int(digits)
    if kind == "boolean":
        return value.strip().lower() not in ("", "no", "false", "0")
    return value.strip()[:300]


async def _vocabulary(session: AsyncSession) -> list[str]:
    rows = await session.scalars(
        select(KnowledgeChunk.heading)
        .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
        .where(KnowledgeDocument.status == "ready", KnowledgeChunk.heading.is_not(None))
        .distinct()
        .limit(2000)
    )
    return [h for h in rows if h]


async def persona_name(session: AsyncSession, call: Call) -> str:
    """The persona a call ran with (the default persona's name when unknown)."""
    if call.persona_id:
        persona = await session.get(Persona, call.persona_id)
        if persona is not None:
            return persona.name
    return DEFAULT_PERSONA


_CITATION = re.compile(r"^(?P<title>.*?)(?:, section \"(?P<section>.*)\")?(?:, page \d+)?, chunk (?P<n>\d+)$")


async def resolve_citations(
    session: AsyncSession, citations: Sequence[str]
) -> dict[str, tuple[str, str | None, str, str | None, str]]:
    """Map turn citations to ``(chunk_id, heading, document_id, document title, text)``.

    The document title is the one a person reads (``knowledge.titles.display_title``), as citations and the
    documents list name it.

    A turn cites either a chunk id or the retriever's readable citation (``Title, section "S", chunk N``, see
    ``knowledge.retrieval.citation``); the latter is resolved by the document's title and the chunk's number.
    """
    wanted = set(citations)
    if not wanted:
        return {}
    columns = (
        KnowledgeChunk.id,
        KnowledgeChunk.heading,
        KnowledgeChunk.document_id,
        KnowledgeDocument.title,
        KnowledgeDocument.filename,
        KnowledgeChunk.text,
        KnowledgeChunk.seq,
    )
    joined = select(*columns).join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
    found: dict[str, tuple[str, str | None, str, str | None, str]] = {}
    rows = (await session.execute(joined.where(KnowledgeChunk.id.in_(wanted)))).all()
    for cid, heading, doc, title, filename, text, _ in rows:
        found[cid] = (cid, heading, doc, display_title(title, filename) or filename, text)
    parsed = {c: m for c in wanted - found.keys() if (m := _CITATION.match(c))}
    if parsed:
        documents: dict[str, str] = {}
        for doc_id, title, filename in (
            await session.execute(
                select(KnowledgeDocument.id, KnowledgeDocument.title, KnowledgeDocument.filename)
                .where(KnowledgeDocument.status == "ready")
                .order_by(KnowledgeDocument.created_at)
            )
        ).all():
            # Citations name a document as it reads (citation_title); those recorded before titles were made
            # readable named it as the index does (index_title). The newest document of a name wins.
            for name in (index_title(title, filename), citation_title(title, filename)):
                documents[name] = doc_id
        keys = {c: (documents.get(m["title"]), int(m["n"]) - 1) for c, m in parsed.items()}
        doc_ids = {doc for doc, _ in keys.values() if doc}
        by_key: dict[tuple[str, int], tuple[str, str | None, str, str | None, str]] = {}
        if doc_ids:
            for cid, heading, doc, title, filename, text, seq in (
                await session.execute(joined.where(KnowledgeChunk.document_id.in_(doc_ids)))
            ).all():
                by_key[(str(doc), int(seq))] = (cid, heading, doc, display_title(title, filename) or filename, text)
        for citation, (owner, number) in keys.items():
            if owner is not None and (owner, number) in by_key:
                found[citation] = by_key[(owner, number)]
    return found


async def _topics(session: AsyncSession, asked: Sequence[Exchange], retrieve: Retrieve | None) -> list[dict[str, Any]]:
    """Each question mapped to the knowledge-base section it was answered from (citation) or came nearest."""
    chunks = await resolve_citations(session, [c for e in asked for c in e.citations])
    topics: list[dict[str, Any]] = []
    for exchange in asked:
        topic: dict[str, Any] = {"question": exchange.question, "answered": exchange.answered}
        known = [chunks[c] for c in exchange.citations if c in chunks]
        if known:
            chunk_id, heading, doc, title, _ = known[0]
            topic.update(heading=heading, document_id=doc, title=title, chunk_id=chunk_id, via="citation", score=None)
        elif retrieve is not None:
            found = await retrieve(exchange.question)
            top = found.passages[0] if found.passages else None
            topic.update(
                heading=top.heading if top else None,
                document_id=top.document_id if top else None,
                title=top.title if top else None,
                chunk_id=top.chunk_id if top else None,
                via="retrieval" if top else None,
                score=round(top.score, 4) if top else None,
            )
        topics.append(topic)
    return topics


def _norm(text: str) -> str:
    return " ".join(words(text))


async def gap_candidates(
    session: AsyncSession, call: Call, asked: Sequence[Exchange], *, handed_off: bool, low_confidence: float
) -> list[tuple[str, str, float | None]]:
    """The call's questions that autonomous learning should see: ``(question, reason, score)``.

    Unanswered questions; answered ones whose logged retrieval scored below ``low_confidence``; and, on a
    handed-off call, its last question (what the caller needed a person for).
    """
    scores: dict[str, float | None] = {}
    for question, top in (
        await session.execute(select(RagQuery.question, RagQuery.top_score).where(RagQuery.call_id == call.id))
    ).all():
        scores.setdefault(_norm(question), top)
    found: list[tuple[str, str, float | None]] = []
    for exchange in asked:
        score = scores.get(_norm(exchange.question))
        if not exchange.answered:
            found.append((exchange.question, "unanswered", score))
        elif score is not None and score < low_confidence:
            found.append((exchange.question, "low_confidence", score))
    if handed_off and asked and all(q != asked[-1].question for q, _, _ in found):
        found.append((asked[-1].question, "handed_off", scores.get(_norm(asked[-1].question))))
    return found


def public_payload(row: CallAnalysis, *, console_outcome: str) -> dict[str, Any]:
    """What ``call.analysed`` tells integrations (no transcript; questions are PII-redacted transcript text).

    ``outcome`` is in this module's vocabulary; ``call_outcome`` is the same rule's finer word, the one the
    console and ``GET /api/calls?outcome=`` use (``unanswered`` and ``abandoned`` told apart).
    """
    return {
        "call_id": row.call_id,
        "outcome": row.outcome,
        "call_outcome": console_outcome,
        "summary": row.summary,
        "topics": sorted({t["heading"] for t in row.topics if t.get("heading")}),
        "unanswered": len(row.unanswered),
        "sentiment": row.sentiment.get("label"),
        "fields": row.fields,
        "analysed_at": row.analysed_at.isoformat() if row.analysed_at else None,
    }


class GapRecorder(Protocol):
    """Autonomous learning's intake: the questions of one analysed call (``services.learning.record``)."""

    async def __call__(self, session: AsyncSession, call: Call, items: Sequence[tuple[str, str, float | None]]) -> None:
        """Record ``(question, reason, score)`` items of ``call`` in the session (not committed)."""
        ...


async def analyse(
    session: AsyncSession,
    call_id: str,
    *,
    retrieve: Retrieve | None,
    record_gaps: GapRecorder | None,
    low_confidence: float,
) -> CallAnalysis:
    """Analyse one call and store the result with its ``call.analysed`` event, in one transaction (commits)."""
    call = await session.get(Call, call_id)
    if call is None:
        raise ProblemError(404, "No call with this id.", type_="not-found")
    turns = list(await session.scalars(select(CallTurn).where(CallTurn.call_id == call_id).order_by(CallTurn.seq)))
    requests = (await analytics.request_turns(session, [call_id])).get(call_id, set())
    summary = summarize(turns, requests=requests)
    asked = list(summary.exchanges)
    handed_off = (await session.scalar(select(Handoff.id).where(Handoff.call_id == call_id).limit(1))) is not None
    handed_off = (
        handed_off
        or (
            await session.scalar(
                select(CallEvent.id).where(CallEvent.call_id == call_id, CallEvent.kind == "handoff").limit(1)
            )
        )
        is not None
    )
    callback = (
        await session.scalar(select(CallbackRequest.id).where(CallbackRequest.call_id == call_id).limit(1))
    ) is not None
    persona = await persona_name(session, call)
    definitions = list(await session.scalars(select(AnalysisField).where(AnalysisField.persona_name == persona)))
    caller_text = " ".join(t.text for t in turns if t.role == "caller")
    vocabulary = await _vocabulary(session) if any(d.kind == "choice" and not d.choices for d in definitions) else []
    row = await session.get(CallAnalysis, call_id)
    if row is None:
        row = CallAnalysis(call_id=call_id, status="running", attempts=0, runs=0)
        session.add(row)
    row.summary = summary.text
    console_outcome = call_outcome(call=call, asked=asked, handed_off=handed_off, callback=callback)
    row.outcome = _OUTCOME[console_outcome]
    row.exchanges = [
        {"question": e.question, "answered": e.answered, "answer": e.answer, "citations": list(e.citations)}
        for e in asked
    ]
    row.topics = await _topics(session, asked, retrieve)
    row.unanswered = summary.unanswered
    row.sentiment = sentiment_of(turns)
    row.fields = {d.name: extract_field(d, caller_text, vocabulary) for d in definitions}
    row.generator = "extractive"
    row.status = "done"
    row.error = None
    row.runs = (row.runs or 0) + 1
    row.analysed_at = utcnow()
    if record_gaps is not None:
        items = await gap_candidates(session, call, asked, handed_off=handed_off, low_confidence=low_confidence)
        await record_gaps(session, call, items)
    await outbox.emit(
        session,
        "call.analysed",
        public_payload(row, console_outcome=console_outcome),
        call_id=call_id,
        key=f"{call_id}:{row.runs}",
    )
    await session.commit()
    return row


async def enqueue(session: AsyncSession, call_id: str) -> None:
    """Queue a call's analysis in the transaction that ends the call (not committed).

    ``due_at`` is the call's end; the worker takes it ``analysis.delay_secs`` later, once the last turns are in.
    """
    now = utcnow()
    row = await session.get(CallAnalysis, call_id)
    if row is None:
        session.add(CallAnalysis(call_id=call_id, status="queued", attempts=0, runs=0, due_at=now, requested_at=now))
    else:
        row.status, row.attempts, row.due_at, row.requested_at = "queued", 0, now, now


async def request(session: AsyncSession, call_id: str, *, settle: timedelta) -> CallAnalysis:
    """Queue (again) the analysis of a call, due at once; the last result is kept until replaced. Commits."""
    row = await session.get(CallAnalysis, call_id)
    now = utcnow()
    if row is None:
        row = CallAnalysis(call_id=call_id, status="queued", attempts=0, runs=0, due_at=now - settle, requested_at=now)
        session.add(row)
    else:
        row.status = "queued"
        row.attempts = 0
        row.error = None
        row.due_at = now - settle
        row.requested_at = now
    await session.commit()
    return row


async def get(session: AsyncSession, call_id: str) -> CallAnalysis | None:
    """The stored analysis (or queued job) of a call."""
    return await session.get(CallAnalysis, call_id)


# --- operator-defined fields ---


async def list_fields(session: AsyncSession, *, persona: str | None = None) -> list[AnalysisField]:
    """Field definitions, by persona then name."""
    stmt = select(AnalysisField).order_by(AnalysisField.persona_name, AnalysisField.name)
    if persona is not None:
        stmt = stmt.where(AnalysisField.persona_name == persona)
    return list(await session.scalars(stmt))


async def create_field(
    session: AsyncSession,
    *,
    persona: str,
    name: str,
    kind: str,
    description: str = "",
    patterns: Sequence[str] = (),
    choices: Sequence[str] = (),
) -> AnalysisField:
    """Define a field (409 when the persona already has one of that name). Commits."""
    exists = await session.scalar(
        select(AnalysisField.id).where(AnalysisField.persona_name == persona, AnalysisField.name == name)
    )
    if exists is not None:
        raise ProblemError(409, "This persona already has a field of that name.", type_="conflict")
    field = AnalysisField(
        persona_name=persona,
        name=name,
        kind=kind,
        description=description,
        patterns=list(patterns),
        choices=list(choices),
    )
    session.add(field)
    await session.commit()
    return field


async def delete_field(session: AsyncSession, field_id: str) -> AnalysisField:
    """Remove a field definition (stored analyses keep the values they had). Commits."""
    field = await session.get(AnalysisField, field_id)
    if field is None:
        raise ProblemError(404, "No analysis field with this id.", type_="not-found")
    await session.execute(delete(AnalysisField).where(AnalysisField.id == field_id))
    await session.commit()
    return field


def field_filter(value: str) -> tuple[str, str]:
    """Parse a calls-list ``field`` filter ``name:value`` (400 problem when malformed or over 200 characters)."""
    name, sep, wanted = value.partition(":")
    if not sep or not name.strip() or len(value) > 200:
        raise ProblemError(400, "A field filter reads name:value.", type_="invalid-filter")
    return name.strip(), wanted.strip()


_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def field_match(name: str, wanted: str) -> Select[str]:
    """The ids of calls whose analysis holds field ``name`` equal to ``wanted`` (text, case-insensitive).

    JSON values read back as text differ by database (a boolean is ``true`` on PostgreSQL, ``1`` on SQLite), so
    a boolean filter accepts both spellings.
    """
    value = wanted.lower()
    accepted = _TRUE if value in _TRUE else _FALSE if value in _FALSE else (value,)
    return select(CallAnalysis.call_id).where(func.lower(CallAnalysis.fields[name].as_string()).in_(accepted))
