"""The offline default brain: answers with the best sentences of the best knowledge-base passage.

Honest by construction: it never generates text. It reads the retrieval that the RAG processor made for
the caller's turn (or searches itself), speaks the 1–3 sentences of the top passage that best match the
question, says it does not know below the threshold and offers a human, and picks the other tools
(create_ticket, transfer_to_human, end_call, and the operator's custom API tools) by embedding similarity to
their descriptions and examples; a custom tool's arguments come from the caller's words
(``pipelines.brain.custom_tools``), a missing one is asked for first. On a phone line a digit-like one may be
keyed in instead: a digit collection is opened with the question, and whichever comes first, the keyed digits
(ended by ``#``) or a spoken answer, answers it (a spoken turn cancels the collection).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Coroutine, Sequence
from typing import Any

import numpy as np
import structlog
from pipecat.frames.frames import (
    EndTaskFrame,
    Frame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from knowledge.text_tokens import QUESTION_STOP_WORDS
from pipelines.asr.base import RecognitionEvidenceFrame
from pipelines.brain import custom_tools as custom
from pipelines.brain.answer_type import AnswerType, fits, question_type
from pipelines.brain.base import BrainBackend, BrainCapabilities
from pipelines.contracts import Passage, PersonaSpec, Retrieval, TextEmbedder
from pipelines.frames import AnswerMetaFrame, KnowledgeFrame
from pipelines.options import BrainOptions
from pipelines.tools import CONFIRM, END, MAX_KEYED_DIGITS, SEARCH, TICKET, TOOLS, TRANSFER, CallTools, ToolSpec

log = structlog.stdlib.get_logger(__name__)

__all__ = [
    "CONFIRM",
    "CONFIRM_PREFIX",
    "ExtractiveBackend",
    "ExtractiveBrain",
    "best_sentences",
    "pick_tool",
    "sentence_closeness",
    "split_sentences",
    "unsure",
    "weak_evidence",
]

NOT_FOUND = "I'm sorry, I couldn't find that in our help center. Would you like me to connect you with a person?"
# A confirming question is marked on its turn: ``AnswerMetaFrame.tool == CONFIRM`` (no citations: nothing was
# answered yet), its spoken text starts with CONFIRM_PREFIX (benchmarks count the confirmation rate by either), and
# a ``confirm`` call event names the passage asked about.
CONFIRM_PREFIX = "Do you mean"
DENIED = "Sorry I got that wrong. Would you like me to connect you with a person?"
# Below this mean word posterior of the recogniser's best hypothesis, a found answer is confirmed before it is
# given (pocketsphinx ``seg().prob``). Chosen on the team's spoken questions (benchmarks/asr_eval): found answers
# that were wrong had 0.36-0.77 and right ones down to 0.21, so confidence hardly separates them; at 0.35 every
# confirmation it caused (4 of 60 espeak-ng turns) was of a right answer. Kept only for the very unsure.
LOW_CONFIDENCE = 0.2


def unsure(confidence: float | None) -> bool:
    """The recogniser's mean word confidence says it was very unsure of its best hypothesis."""
    return confidence is not None and confidence < LOW_CONFIDENCE


def weak_evidence(*, found: bool, confidence: float | None, narrow: bool = False) -> bool:
    """A final transcript's evidence is weak: it finds nothing, finds it only just, or the recogniser was unsure.

    "Only just": ``narrow``, the best passage clears the threshold by less than ``knowledge.retrieval.NARROW_MARGIN``.
    The one rule for "weak": the recogniser's second opinion (``pipelines.asr.whisper_pool``, through the probe
    ``pipelines.build`` gives it) and ``benchmarks/recognition.py`` use it.
    """
    return not found or narrow or unsure(confidence)


MAX_ALTERNATIVES = 3  # other recogniser hypotheses searched when the best one finds nothing
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")
_FAQ_QUESTION = re.compile(r"^\s*Q:\s.*$", re.MULTILINE)
_FAQ_ANSWER = re.compile(r"^\s*A:\s+", re.MULTILINE)
_MARKDOWN = re.compile(r"^\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# A table row as the parsers store it (knowledge/parsers: markdown, docx, spreadsheet FAQ): "Header: value; Header:
# value." Each row is one record, answered on its own.
_RECORD = re.compile(r"^[^:;]{1,60}:\s[^;]*(?:;\s*[^:;]{1,60}:\s[^;]*)+\.?$")
# A sentence about the document it stands in ("This page explains how to check ...", "This guide covers ...") says
# nothing to a caller, who has no page in front of them; it is never spoken when the passage has another sentence.
# General English, not the words of any one base.
_ABOUT_THE_DOCUMENT = re.compile(
    r"\bthis (?:page|guide|document|article|section|leaflet|booklet|sheet|faq|help page|web page|website) "
    r"(?:explains|describes|covers|tells you|sets out|lists|shows|answers|gives|outlines|is about|will help)\b",
    re.IGNORECASE,
)
# What holding the asked-for kind of answer adds to a sentence's score, as a share of the question's rarest
# word's weight (chosen on the team's own questions, benchmarks/asr_eval and benchmarks/kb, never on held-out ones).
TYPE_BONUS = 0.5
# What closeness in meaning adds: a sentence loses MEANING_WEIGHT × (the closest sentence's cosine − its own) from
# its word score. Chosen on the team's sets only (benchmarks/kb's three sets, each right passage also merged with its
# neighbours in the document to make the longer sections other companies write; docs/measurements.md).
MEANING_WEIGHT = 6.0
_AFFIRMATIVE = frozenset(
    ["yes", "yeah", "yep", "sure", "please", "okay", "ok", "alright", "correct", "right", "absolutely"]
)
_NEGATIVE = frozenset(["no", "nope", "not", "don't", "never", "wrong"])


def split_sentences(text: str) -> list[str]:
    """Split passage text into speakable sentences (markdown markers and link targets removed).

    In a question-and-answer entry (``Q: …`` / ``A: …``, as FAQ spreadsheets are stored) the question is left
    out (the caller has just asked it) and the answer is said without its label.
    """
    text = _FAQ_QUESTION.sub("", _LINK.sub(r"\1", text))
    text = _FAQ_ANSWER.sub("", text)
    out = []
    for raw in _SENTENCE.split(text):
        sentence = _MARKDOWN.sub("", raw).replace("**", "").replace("`", "").strip()
        if sentence and re.search(r"[A-Za-z]", sentence):
            out.append(sentence)
    return out


def _stem(word: str) -> str:
    for suffix in ("ment", "ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _content(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in QUESTION_STOP_WORDS}


def _each_adds(question: set[str], contents: Sequence[set[str]]) -> bool:
    """Whether every sentence holds a word of ``question`` that none of the others does."""
    asked = [question & c for c in contents]
    return all(mine - set().union(*(o for j, o in enumerate(asked) if j != i)) for i, mine in enumerate(asked))


def _key(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def sentence_closeness(sentences: Sequence[str], closeness: Sequence[tuple[str, float]]) -> list[float] | None:
    """Each sentence's cosine to the question, looked up in the retriever's ``closeness`` pairs.

    A sentence the views split differently takes the best of the view sentences it holds or is held by; one with
    none takes the lowest known (no favour without evidence). None when no sentence is known.
    """
    known = {_key(text): value for text, value in closeness}
    if not known:
        return None
    values: list[float | None] = []
    for sentence in sentences:
        key = _key(sentence)
        value = known.get(key)
        if value is None and key:
            near = [v for k, v in known.items() if k and (k in key or key in k)]
            value = max(near) if near else None
        values.append(value)
    found = [v for v in values if v is not None]
    if not found:
        return None
    floor = min(found)
    return [floor if v is None else v for v in values]


def best_sentences(
    question: str,
    passage: str,
    *,
    max_sentences: int = 3,
    max_words: int = 55,
    closeness: Sequence[tuple[str, float]] = (),
    meaning_weight: float = MEANING_WEIGHT,
) -> str:
    """The run of up to ``max_sentences`` consecutive sentences of the passage that best answers ``question``.

    Each sentence scores by the question's content words it shares, weighted by how rare they are among the
    passage's sentences (long sentences slightly penalised); a run scores its best sentence plus a little for
    the others, plus a bonus for starting at the top of the passage, because a help-centre section usually
    answers its heading straight away. Runs stop at ``max_words`` (a run always has at least one sentence).
    Headings (short lines without final punctuation) are skipped, and so are sentences about the document itself
    ("This page explains ...") while the passage has others. A table row ("Plan: …; Monthly price: …") shares a
    run only when each of the run's sentences holds a question word the others lack: a caller asking about one
    plan hears that plan's row, not the whole table.

    The kind of answer the question asks for (:func:`pipelines.brain.answer_type.question_type`: a time for
    "when", an amount for "how much", a permission or step for "can I", a place for "where", a person or team
    for "who") adds to each sentence that holds it about what one of the question's words would, and half that
    to a sentence that shares none of its words; when no sentence holds it the choice is the usual one, which
    leans to the passage's lead.

    ``closeness`` (``Passage.closeness``: each sentence's cosine to the question, from the base's sentence views)
    adds meaning to the word counts: a caller's own words share few of the documents' ones, and in a long section
    the lead or a neighbouring rule would otherwise win. Each sentence loses ``meaning_weight`` (default
    :data:`MEANING_WEIGHT`) times how far it falls short of the closest one.
    """
    sentences = [s for s in split_sentences(passage) if s[-1] in ".!?" or len(s.split()) > 6] or split_sentences(
        passage
    )
    sentences = [s for s in sentences if not _ABOUT_THE_DOCUMENT.search(s)] or sentences
    if not sentences:
        return ""
    q = _content(question)
    contents = [_content(s) for s in sentences]
    # Words found in many of the passage's sentences say little about which one answers (inverse frequency).
    weight = {w: math.log((len(sentences) + 1) / (0.5 + sum(w in c for c in contents))) for w in q}
    scores = [
        sum(weight[w] for w in q & c) / (1.0 + 0.02 * len(s.split())) for s, c in zip(sentences, contents, strict=True)
    ]
    kind = question_type(question)
    if kind is not AnswerType.OTHER and weight:
        bonus = TYPE_BONUS * max(weight.values())
        for i, (sentence, c) in enumerate(zip(sentences, contents, strict=True)):
            if fits(sentence, kind):
                scores[i] += bonus if q & c else bonus / 2
    meaning = sentence_closeness(sentences, closeness)
    if meaning is not None:
        closest = max(meaning)
        scores = [score - meaning_weight * (closest - m) for score, m in zip(scores, meaning, strict=True)]
    start_bonus = (0.6, 0.25)
    records = [bool(_RECORD.match(s)) for s in sentences]
    best: tuple[float, int, int] = (-math.inf, 0, 1)
    for start in range(len(sentences)):
        end, words = start, 0
        while end < len(sentences) and end - start < max_sentences:
            n = len(sentences[end].split())
            if end > start and words + n > max_words:
                break
            if end > start and (records[start] or records[end]) and not _each_adds(q, contents[start : end + 1]):
                break  # table rows go together only when each holds a question word the others lack
            words += n
            end += 1
        run = scores[start:end]
        # A section's lead answers its heading; a table's first row is no likelier than its others.
        lead = start_bonus[start] if start < len(start_bonus) and not records[start] else 0.0
        total = max(run) + 0.3 * (sum(run) - max(run)) + lead
        if total > best[0]:
            best = (total, start, end)
    _, start, end = best
    return " ".join(sentences[start:end])


def _is_affirmative(text: str) -> bool:
    words = set(_WORD.findall(text.lower()))
    return bool(words & _AFFIRMATIVE) and not words & _NEGATIVE


def _is_negative(text: str) -> bool:
    words = set(_WORD.findall(text.lower()))
    return bool(words & _NEGATIVE) and not words & _AFFIRMATIVE


def pick_tool(
    scores: dict[str, float],
    available: Sequence[str],
    threshold: float,
    *,
    custom_names: Collection[str] = (),
    custom_threshold: float = custom.CUSTOM_TOOL_THRESHOLD,
) -> str:
    """The tool a turn asks for: the best-scoring available one, if it reaches its threshold and beats the search.

    Built-in tools need ``threshold``, the operator's custom tools (``custom_names``) ``custom_threshold``; below
    it, or when the knowledge-base search's own examples match better, the turn is a question for the knowledge
    base.
    """
    names = [n for n in scores if n in available]
    if not names or SEARCH not in scores:
        return SEARCH
    best = max(names, key=lambda n: scores[n])
    needed = custom_threshold if best in custom_names else threshold
    if best != SEARCH and scores[best] >= needed and scores[best] > scores[SEARCH]:
        return best
    return SEARCH


def confirming_question(passage: Passage) -> str:
    """The short question that checks what the caller meant: the passage's section, as its heading says it."""
    topic = (passage.heading or "").split(" > ")[-1].strip().rstrip("?.!:") or passage.citation.split(",")[0]
    topic = topic[0].lower() + topic[1:] if topic[:2] != topic[:2].upper() else topic
    return f"{CONFIRM_PREFIX}: {topic}?"


class ExtractiveBackend(BrainBackend):
    """Process-wide resources of the extractive brain: the tools' example embeddings."""

    name = "extractive"
    capabilities = BrainCapabilities(passages_in_context=False, offline=True, verbatim_answers=True)

    def __init__(self, options: BrainOptions, embedder: TextEmbedder | None) -> None:
        self.options = options
        self._embedder = embedder
        self._tool_matrix: np.ndarray[Any, np.dtype[np.float32]] | None = None
        self._tool_rows: list[str] = []
        # Embeddings of custom tools' texts (they change while the server runs; bounded, oldest dropped first).
        self._custom_vectors: OrderedDict[str, np.ndarray[Any, np.dtype[np.float32]]] = OrderedDict()

    @classmethod
    def prewarm(cls, options: BrainOptions, *, embedder: TextEmbedder | None) -> ExtractiveBackend:
        """Nothing heavy to load here (tool examples are embedded on first use, or by ``warm``)."""
        return cls(options, embedder)

    async def warm(self) -> None:
        """Embed the tools' descriptions and examples once per process."""
        if self._embedder is None or self._tool_matrix is not None:
            return
        # No lock: this object outlives event loops (tests), and a duplicate warm-up is only wasted work.
        rows: list[str] = []
        texts: list[str] = []
        for tool in TOOLS:
            for text in (tool.description, *tool.examples):
                rows.append(tool.name)
                texts.append(text)
        vectors = await self._embedder.embed(texts)
        self._tool_rows = rows
        self._tool_matrix = np.asarray(vectors, dtype=np.float32)

    async def tool_scores(self, text: str, extra: Sequence[ToolSpec] = ()) -> dict[str, float]:
        """Best cosine similarity of ``text`` to each tool's description and examples.

        ``extra`` are the operator's custom tools: their name in words, description and examples are embedded
        once (cached by text) and scored like the built-in ones. With custom tools, every tool is scored on the
        turn without its values (``custom_tools.without_values``: an order number says nothing of the tool).
        """
        if self._embedder is None:
            return {}
        await self.warm()
        assert self._tool_matrix is not None
        if extra:
            text = custom.without_values(text)
        texts = {t.name: (t.name.replace("_", " "), t.description, *t.examples) for t in extra}
        fresh = list(dict.fromkeys(x for row in texts.values() for x in row if x not in self._custom_vectors))
        vectors = await self._embedder.embed([text, *fresh])
        vector = np.asarray(vectors[0], dtype=np.float32)
        for phrase, embedded in zip(fresh, vectors[1:], strict=True):
            self._custom_vectors[phrase] = np.asarray(embedded, dtype=np.float32)
        sims = self._tool_matrix @ vector
        scores: dict[str, float] = {}
        for name, sim in zip(self._tool_rows, sims.tolist(), strict=True):
            scores[name] = max(scores.get(name, -1.0), float(sim))
        for name, row in texts.items():
            if name not in scores:  # a custom tool never shadows a built-in one (names are checked on save)
                scores[name] = max(float(self._custom_vectors[x] @ vector) for x in row)
        while len(self._custom_vectors) > 4096:
            self._custom_vectors.popitem(last=False)
        return scores

    def create_processor(self, *, call_id: str, persona: PersonaSpec, tools: CallTools) -> ExtractiveBrain:
        """The extractive brain of one call."""
        return ExtractiveBrain(backend=self, call_id=call_id, persona=persona, tools=tools)


class ExtractiveBrain(FrameProcessor):
    """Answers each caller turn from the knowledge base, or runs the tool the caller asks for.

    Consumes ``LLMContextFrame`` (the turn's request, like any LLM service) and pushes
    ``AnswerMetaFrame``, ``LLMFullResponseStartFrame``, ``LLMTextFrame`` s and ``LLMFullResponseEndFrame``.
    Every other frame passes through.

    Args:
        backend: The process-wide resources.
        call_id: The call.
        persona: Who the agent is.
        tools: The call's tools.
    """

    def __init__(self, *, backend: ExtractiveBackend, call_id: str, persona: PersonaSpec, tools: CallTools) -> None:
        super().__init__(name=f"ExtractiveBrain#{call_id}")
        self._backend = backend
        self._options = backend.options
        self._call_id = call_id
        self._persona = persona
        self._tools = tools
        self._knowledge: KnowledgeFrame | None = None
        self._scores: OrderedDict[str, asyncio.Task[dict[str, float]]] = OrderedDict()
        self._offered_human = False
        self._evidence: OrderedDict[str, RecognitionEvidenceFrame] = OrderedDict()
        self._confirming: tuple[str, Passage] | None = None
        # A custom tool waiting for the argument the agent just asked for.
        self._pending_tool: custom.PendingTool | None = None
        # The digit collection open for the pending tool's argument (phone lines only).
        self._keyed: asyncio.Task[None] | None = None
        self._log = log.bind(call_id=call_id)

    def hear(self, evidence: RecognitionEvidenceFrame) -> None:
        """Keep what the recogniser knew about a final transcript for the turn it belongs to (matched by text)."""
        self._evidence[" ".join(evidence.text.lower().split())] = evidence
        while len(self._evidence) > 4:
            self._evidence.popitem(last=False)

    def prefetch(self, text: str) -> None:
        """Start matching ``text`` to the tools while the caller finishes the turn."""
        self._scoring(text, lambda scores: self.create_task(scores, name="tool_scores"))

    async def acts_on(self, text: str) -> bool:
        """Whether ``text`` as a new turn picks the transfer or the ticket tool (``ActionSensing``).

        Its tool scores are kept like a prefetch's, so the turn that follows on this text does not score it again.
        """
        task = self._scoring(text, asyncio.ensure_future)  # also outside a running pipeline (no task manager)
        if task is None:
            return False
        await asyncio.wait([task])  # never raises for the task: one evicted or failed meanwhile acts on nothing
        if task.cancelled() or task.exception() is not None:
            return False
        return self._pick(task.result()) in (TRANSFER, TICKET)

    def _scoring(
        self, text: str, start: Callable[[Coroutine[Any, Any, dict[str, float]]], asyncio.Task[dict[str, float]]]
    ) -> asyncio.Task[dict[str, float]] | None:
        """The task scoring ``text`` against the tools: the one kept for it, or one begun with ``start``."""
        key = " ".join(text.lower().split())
        if not key:
            return None
        task = self._scores.get(key)
        if task is None:
            task = self._scores[key] = start(self._backend.tool_scores(text, self._tools.custom_tools))
            while len(self._scores) > 4:
                _, old = self._scores.popitem(last=False)
                old.cancel()
        return task

    def _pick(self, scores: dict[str, float]) -> str:
        """The tool this call's turn with ``scores`` asks for (``pick_tool`` with the call's tools)."""
        return pick_tool(
            scores,
            self._tools.available,
            self._options.tool_threshold,
            custom_names={t.name for t in self._tools.custom_tools},
        )

    async def _tool_scores(self, text: str) -> dict[str, float]:
        task = self._scores.pop(" ".join(text.lower().split()), None)
        for other in self._scores.values():
            other.cancel()
        self._scores.clear()
        # Tasks are only ever cancelled after leaving the cache, so one found here is live.
        if task is not None and not task.cancelled():
            return await task
        return await self._backend.tool_scores(text, self._tools.custom_tools)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Answer context frames; pass everything else on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame) and direction == FrameDirection.DOWNSTREAM:
            await self._answer(frame)
            return
        if isinstance(frame, RecognitionEvidenceFrame):
            self.hear(frame)  # it goes no further
            return
        if isinstance(frame, KnowledgeFrame):
            self._knowledge = frame
        elif isinstance(frame, InterruptionFrame):
            self._knowledge = None
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        """Close the digit collection still open when the call's pipeline stops."""
        self._stop_keypad()
        await super().cleanup()  # type: ignore[no-untyped-call]  # untyped in pipecat

    def _stop_keypad(self) -> None:
        if self._keyed is not None:
            self._keyed.cancel()
            self._keyed = None

    def _open_keypad(self, pending: custom.PendingTool) -> None:
        """Let the caller key ``pending``'s missing argument in (a collection beside the spoken answer)."""
        self._stop_keypad()
        max_digits = custom.most_digits(pending.spec, pending.missing, MAX_KEYED_DIGITS)
        self._keyed = asyncio.get_running_loop().create_task(
            self._keypad(pending, max_digits), name=f"keypad-{self._call_id}"
        )

    async def _keypad(self, pending: custom.PendingTool, max_digits: int) -> None:
        """Deliver the keyed digits as the caller's answer to ``pending`` (unless a spoken turn came first)."""
        result = await self._tools.collect_digits(max_digits=max_digits)
        if result is None or not result.digits or self._pending_tool is not pending:
            return  # nothing keyed (the spoken answer may still come), or the caller moved on
        # From here the keyed answer is this turn: a spoken turn no longer cancels it.
        self._keyed, self._pending_tool = None, None
        t0 = time.perf_counter()
        try:
            filled = custom.answer(pending.spec, pending, result.digits)
            if filled is None:
                # Digits the parameter does not accept (too few, say): asked again, keypad open again.
                text, citations, tool = await self._custom_tool(pending.spec, pending.arguments, pending.missing)
                text = "Sorry, that number doesn't look right. " + text.removeprefix("Sure. ")
            else:
                text, citations, tool = await self._custom_tool(pending.spec, *filled)
        except Exception as exc:  # noqa: BLE001 - reported, and the caller hears an apology instead of silence
            self._log.exception("extractive_brain_failed")
            await self.push_error(f"extractive brain failed: {exc}", exception=exc)
            text, citations, tool = "Sorry, something went wrong on my side. Could you say that again?", (), None
        self._log.info("keyed_answer", digits=len(result.digits), tool=pending.spec.name)
        await self._speak(text, citations, tool, t0)

    async def _speak(self, text: str, citations: Sequence[str], tool: str | None, t0: float) -> None:
        brain_ms = (time.perf_counter() - t0) * 1000
        await self.push_frame(AnswerMetaFrame(citations=tuple(citations), tool=tool, brain_ms=brain_ms))
        await self.push_frame(LLMFullResponseStartFrame())
        await self.push_frame(LLMTextFrame(text))
        await self.push_frame(LLMFullResponseEndFrame())
        if self._tools.end_requested:
            await self.push_frame(EndTaskFrame(reason="caller ended the call"), FrameDirection.UPSTREAM)

    async def _answer(self, frame: LLMContextFrame) -> None:
        t0 = time.perf_counter()
        question = ""
        for message in reversed(frame.context.get_messages()):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                question = (
                    content
                    if isinstance(content, str)
                    else " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
                    if isinstance(content, list)
                    else ""
                )
                break
        if not question.strip():
            return
        try:
            text, citations, tool = await self._decide(question)
        except Exception as exc:  # noqa: BLE001 - reported, and the caller hears an apology instead of silence
            self._log.exception("extractive_brain_failed")
            await self.push_error(f"extractive brain failed: {exc}", exception=exc)
            text, citations, tool = "Sorry, something went wrong on my side. Could you say that again?", (), None
        await self._speak(text, citations, tool, t0)

    async def _decide(self, question: str) -> tuple[str, Sequence[str], str | None]:
        offered, self._offered_human = self._offered_human, False
        if offered and _is_affirmative(question) and TRANSFER in self._tools.available:
            return await self._transfer(question)
        confirming, self._confirming = self._confirming, None
        if confirming is not None:
            asked, passage = confirming
            if _is_affirmative(question):
                answer = best_sentences(
                    asked, passage.body, max_sentences=self._options.max_sentences, closeness=passage.closeness
                )
                return answer or NOT_FOUND, (passage.citation,), SEARCH
            if _is_negative(question):
                self._offered_human = TRANSFER in self._tools.available
                if self._offered_human:
                    return DENIED, (), SEARCH
                return "Sorry I got that wrong. Could you ask it another way?", (), SEARCH
            # Neither: the caller asked something else; answer that.
        pending, self._pending_tool = self._pending_tool, None
        self._stop_keypad()  # a spoken turn answers (or moves on from) what was asked: the keypad closes
        if pending is not None:
            filled = custom.answer(pending.spec, pending, question)
            if filled is not None:
                return await self._custom_tool(pending.spec, *filled)
            # The answer does not hold what was asked: the caller moved on; this turn is handled afresh.
        scores = await self._tool_scores(question)
        action = self._pick(scores)
        chosen = next((t for t in self._tools.custom_tools if t.name == action), None)
        if chosen is not None:
            return await self._custom_tool(chosen, *custom.fill(chosen, question))
        if action == TRANSFER:
            return await self._transfer(question)
        if action == TICKET:
            ref = await self._tools.ticket(subject=question[:80], description=question)
            if ref is None:
                return "I'm sorry, I couldn't create a ticket right now. Please try again later.", (), TICKET
            spoken_ref = " ".join(ref)
            return (
                # The request is queued for the helpdesk, not yet confirmed by it: say what is true.
                f"I've passed your request on, and a ticket will be opened for you. Your reference is {spoken_ref}. "
                "Our team will follow up.",
                (),
                TICKET,
            )
        if action == END:
            await self._tools.end_call()
            return f"Thank you for calling. Goodbye from {self._persona.name}!", (), END
        return await self._search(question)

    async def _custom_tool(
        self, spec: ToolSpec, arguments: dict[str, Any], missing: str | None
    ) -> tuple[str, Sequence[str], str | None]:
        """Call the operator's custom API tool, or first ask for a required argument the caller has not given."""
        if missing is not None:
            pending = custom.PendingTool(spec=spec, arguments=arguments, missing=missing)
            self._pending_tool = pending
            keypad = self._tools.keypad and custom.keyable(spec, missing)
            if keypad:
                self._open_keypad(pending)
            return custom.ask(spec, missing, keypad=keypad), (), spec.name
        result = await self._tools.custom(spec.name, arguments)
        text = custom.spoken(spec, result)
        if not result.get("ok"):
            self._offered_human = TRANSFER in self._tools.available
            if self._offered_human:
                text += " Would you like me to connect you with a person?"
        return text, (), spec.name

    async def _transfer(self, question: str) -> tuple[str, Sequence[str], str | None]:
        ref = await self._tools.transfer(reason="caller asked for a human", summary=question)
        if ref is None:
            return (
                "I'm sorry, I can't connect you with a person right now. You can ask me something else.",
                (),
                TRANSFER,
            )
        return "Of course. I'm connecting you with a member of our team now. Please hold.", (), TRANSFER

    async def _search(self, question: str) -> tuple[str, Sequence[str], str | None]:
        knowledge = self._knowledge
        self._knowledge = None
        if knowledge is not None and knowledge.question == question:
            retrieval: Retrieval = knowledge.retrieval
            await self._tools.record_search(question, retrieval)
        else:
            retrieval, _ = await self._tools.search(question)
        evidence = self._evidence.pop(" ".join(question.lower().split()), None)
        self._evidence.clear()
        top: Passage | None = retrieval.passages[0] if retrieval.passages else None
        threshold = self._options.answer_threshold
        if self._answers(retrieval, top) and top is not None:
            if evidence is not None and unsure(evidence.confidence):
                return await self._confirm(question, top)
        elif evidence is not None and evidence.alternatives:
            # What the recogniser heard second-best may be what the caller said: an answer found that way is
            # confirmed with the caller before it is given.
            for alternative in evidence.alternatives[:MAX_ALTERNATIVES]:
                other, _ = await self._tools.search(alternative, record=False)
                other_top = other.passages[0] if other.passages else None
                if self._answers(other, other_top) and other_top is not None:
                    return await self._confirm(question, other_top)
        if retrieval.borderline and top is not None and threshold is None:
            # Just under the base's threshold, nothing foreign in the question: ask rather than say "not found".
            return await self._confirm(question, top)
        if top is None or not retrieval.found or (threshold is not None and top.score < threshold):
            self._offered_human = TRANSFER in self._tools.available
            if self._offered_human:
                return NOT_FOUND, (), SEARCH
            return "I'm sorry, I couldn't find that in our help center.", (), SEARCH
        answer = best_sentences(question, top.body, max_sentences=self._options.max_sentences, closeness=top.closeness)
        return answer or NOT_FOUND, (top.citation,), SEARCH

    def _answers(self, retrieval: Retrieval, top: Passage | None) -> bool:
        threshold = self._options.answer_threshold
        return top is not None and retrieval.found and (threshold is None or top.score >= threshold)

    async def _confirm(self, question: str, passage: Passage) -> tuple[str, Sequence[str], str | None]:
        """Ask whether ``passage`` is what the caller meant; the next turn's yes answers from it."""
        self._confirming = (question, passage)
        self._log.info("confirmation_asked", score=passage.score)
        await self._tools.record_confirm(passage.citation, passage.score)
        return confirming_question(passage), (), CONFIRM
