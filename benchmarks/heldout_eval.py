"""Held-out evaluation beside the team's own: right answers through the whole audio path, per set and per voice.

Prints one JSON object. Run::

    .venv/bin/python -m benchmarks.heldout_eval                        # everything (see docs/measurements.md)
    .venv/bin/python -m benchmarks.heldout_eval --typed-only           # typed questions only (a minute)
    .venv/bin/python -m benchmarks.heldout_eval --sets riverbend --voices kal --limit 2

Question sets (``sets`` in the report says where each comes from and which knowledge base answers it):

- ``team``: the team's own spoken questions (``benchmarks/asr_eval/questions.json``) and unanswerable questions
  (``benchmarks/kb/unanswerable.jsonl``) over the demo knowledge base; the defaults were tuned on these;
- ``riverbend``: held out, a water utility the team never saw (``benchmarks/heldout/riverbend``), its own
  knowledge base ingested from ``docs/``;
- ``demo_callers``: held out, plain-words caller questions about the demo company
  (``benchmarks/heldout/demo_callers``), over the demo knowledge base.

For each set:

- ``typed``: the question as text through the server's retriever (the shipped knowledge service on the data
  directory the server used): right passage first (top passage from the keyed document, holding the key phrase,
  and above the threshold), right passage in the top 3, and honest "not found" (``found`` false) on the
  unanswerable ones;
- ``spoken``, per voice: each question rendered by that voice (``benchmarks.asr_eval.render``), spoken as one
  call over ``WS /api/voice/stream`` to ``python -m agent serve`` (``benchmarks.voice.server``) in real time, the
  caller's final transcript and the agent's first answer taken from the socket's events, the citation from the
  call's ``tool_result`` event in the server's database. Right answer: the cited document is the keyed one and
  the spoken answer holds the key phrase (``benchmarks.asr_eval.scoring.correct``, the spoken benchmark's own
  rule). Honest "not found": an unanswerable question answered with the brain's not-found sentence. WER of the
  caller transcripts (``scoring.edit_distance`` over ``transcript_words``). Confirmation rate: the share of
  turns where the agent asked a confirming question instead of answering (see ``CONFIRMATION``). The scripted
  caller answers it as a real one would, knowing what they asked: "yes" when the passage the agent asked about
  (the call's ``confirm`` event) is from the question's keyed document, "no" otherwise (every unanswerable
  question); the answer after it is scored. A denied confirmation ends in the brain's apology and offer of a
  person (``DENIED``), which counts as "not found".

Voices: ``used_in_development`` in the report says which were used while the defaults were built
(``benchmarks/asr_eval`` measured slt, rms, awb, kal16, espeak-ng en-us and en-us+f3; the server's own voice and
the tests' is slt).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import websockets  # noqa: E402
from loguru import logger  # noqa: E402

from benchmarks.asr_eval.harness import read_pcm  # noqa: E402
from benchmarks.asr_eval.render import render  # noqa: E402
from benchmarks.asr_eval.scoring import correct, edit_distance, share  # noqa: E402
from benchmarks.operator_token import operator_token  # noqa: E402
from benchmarks.product_kb import DemoKnowledge, cites, demo_data_dir, demo_settings, open_knowledge  # noqa: E402
from benchmarks.voice.client import VOICED_RMS, rms  # noqa: E402
from benchmarks.voice.cpu import tree_cpu_by_command, tree_usage  # noqa: E402
from benchmarks.voice.server import DEMO_KB, RunningServer, start  # noqa: E402
from control_api.logging_setup import configure_logging  # noqa: E402
from pipelines.asr.acoustic_adaptation import transcript_words  # noqa: E402
from pipelines.brain.extractive import CONFIRM, CONFIRM_PREFIX, DENIED, NOT_FOUND, best_sentences  # noqa: E402
from pipelines.tools import SEARCH  # noqa: E402

HELDOUT = ROOT / "benchmarks" / "heldout"
RIVERBEND_KB = HELDOUT / "riverbend" / "docs"
OUT = ROOT / "benchmarks" / "out" / "heldout"
FRAME = 640  # 20 ms of 16 kHz 16-bit mono, both ways on the socket
# The brain's "not found" answers all begin with this sentence (with or without the offer of a person); after a
# denied confirmation it apologises with DENIED's first sentence instead.
NOT_FOUND_LEAD = NOT_FOUND.split(".")[0]
DENIED_LEAD = DENIED.split(".")[0]
# A confirming question is the extractive brain's marked turn: its spoken text starts with CONFIRM_PREFIX
# ("Do you mean: ...?"); a call event of kind or tool CONFIRM counts as well. Code before 015d9ff never asks one.
CONFIRMATION = (CONFIRM,)
# Voices: the engine and whether the defaults were developed with it.
VOICES: dict[str, bool] = {
    "slt": True,
    "rms": True,
    "awb": True,
    "kal16": True,
    "kal": False,
    "espeak-en-us": True,
    "espeak-en-us+f3": True,
    "espeak-en-us+m3": False,
    "espeak-en-us-nyc": False,
    "espeak-en-gb-scotland": False,
}
DEFAULT_VOICES = "kal,awb,espeak-en-us+m3"


@dataclass(frozen=True)
class Question:
    """One question of a set: what the caller says, and the keys a right answer matches (none: unanswerable)."""

    id: str
    text: str
    keys: tuple[dict[str, Any], ...]  # {"document", "heading" (or None), "expect"}

    @property
    def answerable(self) -> bool:
        """Whether the knowledge base answers it."""
        return bool(self.keys)


@dataclass(frozen=True)
class QuestionSet:
    """A named set of questions, where it comes from, and the knowledge base that answers it."""

    name: str
    source: str
    knowledge: Path
    held_out: bool
    questions: tuple[Question, ...]


def _heldout_questions(path: Path) -> list[Question]:
    rows = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for r in rows:
        keys = (
            [{"document": r["document"], "heading": r.get("heading"), "expect": r["expect"]}] if r["answerable"] else []
        )
        keys += [{"document": a["document"], "heading": None, "expect": a["expect"]} for a in r.get("also", ())]
        out.append(Question(r["id"], r["text"], tuple(keys)))
    return out


def _limited(questions: Sequence[Question], answerable: int, unanswerable: int) -> tuple[Question, ...]:
    yes = [q for q in questions if q.answerable]
    no = [q for q in questions if not q.answerable]
    return tuple(yes[: answerable or None] + no[: unanswerable or None])


def question_sets(names: Sequence[str], *, limit: int = 0, team_limit: tuple[int, int] = (0, 0)) -> list[QuestionSet]:
    """The question sets named (``limit``: the first N answerable and N // 3 (at least 1) unanswerable of each)."""
    lim = (limit, max(1, limit // 3)) if limit else (0, 0)
    sets = []
    for name in names:
        if name == "team":
            spoken = json.loads((ROOT / "benchmarks" / "asr_eval" / "questions.json").read_text(encoding="utf-8"))
            unanswerable = (ROOT / "benchmarks" / "kb" / "unanswerable.jsonl").read_text(encoding="utf-8")
            qs = [Question(q["id"], q["text"], ({k: q[k] for k in ("document", "heading", "expect")},)) for q in spoken]
            qs += [Question(r["id"], r["question"], ()) for r in map(json.loads, unanswerable.splitlines()) if r]
            team = _limited(qs, *(lim if limit else team_limit))
            src = "benchmarks/asr_eval/questions.json + benchmarks/kb/unanswerable.jsonl (tuned on)"
            sets.append(QuestionSet("team", src, DEMO_KB, False, team))
        elif name == "riverbend":
            qs = _heldout_questions(HELDOUT / "riverbend" / "questions.json")
            src = "benchmarks/heldout/riverbend/questions.json (held out)"
            sets.append(QuestionSet("riverbend", src, RIVERBEND_KB, True, _limited(qs, *lim)))
        elif name == "demo_callers":
            qs = _heldout_questions(HELDOUT / "demo_callers" / "questions.json")
            src = "benchmarks/heldout/demo_callers/questions.json (held out)"
            sets.append(QuestionSet("demo_callers", src, DEMO_KB, True, _limited(qs, *lim)))
        else:
            raise SystemExit(f"unknown question set {name!r} (team, riverbend, demo_callers)")
    return sets


def right(q: Question, citation: str | None, answer: str) -> bool:
    """Whether ``answer`` (citing ``citation``) is a right answer to ``q`` under any of its keys."""
    return any(correct(key, citation, answer)["right_answer"] for key in q.keys)


def not_found(answer: str) -> bool:
    """Whether ``answer`` is the brain's "not found" answer (or its apology after a denied confirmation)."""
    return NOT_FOUND_LEAD.lower() in answer.lower() or DENIED_LEAD.lower() in answer.lower()


# ---------------------------------------------------------------------------------------------- typed questions


async def typed(kb: DemoKnowledge, qs: Sequence[Question]) -> dict[str, Any]:
    """Typed questions through the server's retriever: right passage first / in the top 3, honest not found."""
    rows = []
    said_words: list[int] = []
    for q in qs:
        retrieval = await kb.retriever.retrieve(q.text, top_k=3, log=False)
        hits = [
            any(cites(p.citation, k["document"]) and k["expect"].lower() in p.body.lower() for k in q.keys)
            for p in retrieval.passages[:3]
        ]
        top = retrieval.passages[0] if retrieval.passages else None
        # What the extractive brain would say from the top passage (its sentence choice), when it answers.
        said = best_sentences(q.text, top.body, closeness=top.closeness) if top is not None and retrieval.found else ""
        if q.answerable and said:
            said_words.append(len(said.split()))
        rows.append(
            {
                "id": q.id,
                "answerable": q.answerable,
                "first": retrieval.found and bool(hits) and hits[0],
                "answer": bool(said) and right(q, top.citation if top is not None else None, said),
                "top3": any(hits),
                "found": retrieval.found,
                "borderline": retrieval.borderline,
                # Asked "Do you mean …?" about the right passage: the caller's yes gets the answer.
                "confirmed_right": retrieval.borderline and bool(hits) and hits[0],
            }
        )
    yes = [r for r in rows if r["answerable"]]
    no = [r for r in rows if not r["answerable"]]
    return {
        "answerable": len(yes),
        "unanswerable": len(no),
        "right_passage_first": share(yes, "first"),
        "right_passage_top3": share(yes, "top3"),
        # The fact asked for in the brain's sentences from the top passage (right passage and right sentence).
        "right_answer": share(yes, "answer"),
        "answer_words_mean": round(statistics.fmean(said_words or [0]), 1),  # answerable questions answered
        "honest_not_found": round(sum(not r["found"] for r in no) / max(1, len(no)), 3),
        # With the confirming question answered truthfully: a borderline find of the right passage is answered
        # after the caller's yes; any other borderline find is denied (still "not found").
        "right_after_confirming": round(
            sum(bool(r["first"] or r["confirmed_right"]) for r in yes) / max(1, len(yes)), 3
        ),
        "confirmation_rate": share(rows, "borderline"),
        "missed": [r["id"] for r in yes if not r["first"]],
        "false_found": [r["id"] for r in no if r["found"]],
    }


# ----------------------------------------------------------------------------------------------- spoken questions


def audio(voice: str, set_name: str, q_id: str, text: str) -> bytes:
    """``text`` spoken by ``voice`` (16 kHz mono PCM), rendered once into ``benchmarks/out/heldout``."""
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]  # a cache key
    path = OUT / voice / f"{set_name}-{q_id}-{digest}.wav"
    if not path.exists():
        render(voice, text, path)
    return read_pcm(path)


@dataclass
class Turn:
    """What one call over the socket gave: the caller's words, the agent's answer, what the server recorded."""

    call_id: str = ""
    transcript: str = ""
    answer: str = ""
    confirmations: int = 0
    latency_ms: float | None = None
    # The server's split of latency_ms (vad, asr, retrieval, llm, tts: ``pipelines.processors.latency``).
    stages_ms: dict[str, float] = field(default_factory=dict)
    # As the caller hears it: the question's last voiced frame sent → the answer's first voiced frame received.
    heard_ms: float | None = None
    # The same start → the answer's first audio frame received, voiced or not (the rest of heard_ms is its onset).
    first_audio_ms: float | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


STAGES = ("vad", "asr", "retrieval", "llm", "tts")  # the latency event's split, in the order the time is spent


def _is_confirmation(event: dict[str, Any]) -> bool:
    return event.get("type") == "event" and event.get("kind") in CONFIRMATION


async def ws_call(
    base_url: str,
    token: str,
    question: bytes,
    reply: Callable[[str], Awaitable[bytes]],
    *,
    within_s: float = 40.0,
) -> Turn:
    """One call: wait for the greeting, say ``question`` in real time, and take the agent's first answer.

    A confirming question from the agent is answered with ``await reply(call_id)`` (the caller's yes or no) and
    the answer after it is taken.
    """
    turn = Turn()
    url = base_url.replace("http://", "ws://") + "/api/voice/stream"
    outbox: asyncio.Queue[bytes] = asyncio.Queue()
    question_left = 0  # the question's frames not sent yet
    last_voiced_at: float | None = None  # when the question's last voiced frame went out
    done = asyncio.Event()
    caller: list[str] = []
    greeted = asyncio.Event()
    asked = replied = False
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:

        async def speak() -> None:
            # A live caller: 20 ms frames in real time, silence when there is nothing to say.
            nonlocal question_left, last_voiced_at
            next_at = time.monotonic()
            while not done.is_set():
                frame = outbox.get_nowait() if not outbox.empty() else bytes(FRAME)
                await ws.send(frame)
                if question_left > 0:
                    question_left -= 1
                    if rms(frame) >= VOICED_RMS:
                        last_voiced_at = time.monotonic()
                next_at += 0.02
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        def say(pcm: bytes) -> None:
            for i in range(0, len(pcm), FRAME):
                outbox.put_nowait(pcm[i : i + FRAME].ljust(FRAME, b"\0"))

        async def greeting_then_question() -> None:
            nonlocal asked
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(greeted.wait(), 20.0)
            await asyncio.sleep(0.3)
            nonlocal question_left
            asked = True
            question_left = -(-len(question) // FRAME)
            say(question)

        speaker = asyncio.create_task(speak())
        asking = asyncio.create_task(greeting_then_question())
        try:
            async with asyncio.timeout(within_s):
                async for message in ws:
                    if isinstance(message, bytes):
                        spoken_at = last_voiced_at if asked and question_left == 0 else None
                        if spoken_at is not None and turn.first_audio_ms is None:
                            turn.first_audio_ms = (time.monotonic() - spoken_at) * 1000
                        if spoken_at is not None and turn.heard_ms is None and rms(message) >= VOICED_RMS:
                            turn.heard_ms = (time.monotonic() - spoken_at) * 1000
                        continue
                    event = json.loads(message)
                    turn.events.append(event)
                    kind = event.get("type")
                    if kind == "call":
                        turn.call_id = event["call_id"]
                    elif _is_confirmation(event):
                        turn.confirmations += 1
                    elif kind == "latency" and asked and turn.latency_ms is None and caller:
                        turn.latency_ms = float(event["total_ms"])
                        split = {stage: event.get(f"{stage}_ms") for stage in STAGES}
                        turn.stages_ms = {stage: float(v) for stage, v in split.items() if v is not None}
                    elif kind == "transcript" and event.get("final"):
                        if event["role"] == "agent" and not asked:
                            greeted.set()
                        elif event["role"] == "caller" and asked and not replied:
                            caller.append(event["text"])  # the question's words (not the "yes" after it)
                        elif event["role"] == "agent" and caller and event["text"].strip():
                            asking_back = event["text"].lstrip().startswith(CONFIRM_PREFIX)
                            if asking_back and not replied:
                                turn.confirmations += 1  # the confirming question: reply, take the next answer
                                replied = True
                                say(await reply(turn.call_id))
                                continue
                            turn.answer = event["text"]
                            break
        except TimeoutError:
            pass
        finally:
            done.set()
            asking.cancel()
            with contextlib.suppress(Exception):
                await ws.send(json.dumps({"type": "hangup"}))
            speaker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await speaker
    turn.transcript = " ".join(caller)
    turn.answer = turn.answer.strip()
    return turn


def confirmed_citation(data_dir: Path, call_id: str) -> str | None:
    """The passage the call's last confirming question asked about (its ``confirm`` event), if recorded yet."""
    with sqlite3.connect(data_dir / "voxdesk.db") as db:
        rows = db.execute(
            "SELECT data FROM call_events WHERE call_id = ? AND kind = ? ORDER BY id DESC LIMIT 1", (call_id, CONFIRM)
        ).fetchall()
    for (data,) in rows:
        payload = json.loads(data) if isinstance(data, str) else (data or {})
        return str(payload.get("citation") or "") or None
    return None


def recorded(data_dir: Path, call_id: str) -> tuple[str | None, int]:
    """The citation of the call's search that found something (its last), and its confirmation events."""
    citation: str | None = None
    confirmations = 0
    with sqlite3.connect(data_dir / "voxdesk.db") as db:
        rows = db.execute("SELECT kind, data FROM call_events WHERE call_id = ? ORDER BY id", (call_id,)).fetchall()
    for kind, data in rows:
        payload = json.loads(data) if isinstance(data, str) else (data or {})
        if kind in CONFIRMATION or payload.get("tool") in CONFIRMATION:
            confirmations += 1
        if kind == "tool_result" and payload.get("tool") == SEARCH and payload.get("found"):
            citation = (payload.get("citations") or [None])[0]
    return citation, confirmations


def token(server: RunningServer) -> str:
    """A bearer token for a new admin account on ``server`` (``voxdesk create-admin``, then its login route)."""
    env = {**os.environ, "VOXDESK_ENV": "test", "VOXDESK_DATA_DIR": str(server.data_dir), "HF_HUB_OFFLINE": "1"}
    env.pop("VOXDESK_DATABASE__URL", None)
    return operator_token(server.base_url, env)


WHISPER_WORKER = "pipelines.asr.whisper_worker"  # the second opinion's worker processes, by command line


def whisper_metrics(server: RunningServer) -> dict[str, float]:
    """The server's Whisper second-opinion counters (``/metrics``): decodes, fallbacks, skipped finals, time."""
    text = httpx.get(server.base_url + "/metrics", timeout=30).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("voxdesk_asr_whisper_") and not line.startswith("voxdesk_asr_whisper_seconds_bucket"):
            name, _, value = line.rpartition(" ")
            if not name.endswith("_created"):
                out[name] = float(value)
    return out


async def spoken(
    server: RunningServer, bearer: str, qset: QuestionSet, voice: str, concurrency: int
) -> tuple[dict[str, Any], tuple[int, int]]:
    """Every question of ``qset`` spoken by ``voice``, ``concurrency`` calls at a time; returns the figures and
    (word errors, reference words)."""
    sem = asyncio.Semaphore(concurrency)
    yes = audio(voice, "reply", "yes", "Yes, that's right.")
    no = audio(voice, "reply", "no", "No, that's not it.")

    async def one(q: Question) -> dict[str, Any]:
        pcm = audio(voice, qset.name, q.id, q.text)
        replies: list[bool] = []

        async def reply(call_id: str) -> bytes:
            # The caller knows what they asked: yes when the passage asked about is from the keyed document.
            citation = None
            for _ in range(20):  # the confirm event is written off the audio path, before the question is spoken
                citation = confirmed_citation(server.data_dir, call_id)
                if citation:
                    break
                await asyncio.sleep(0.1)
            agreed = citation is not None and any(cites(citation, k["document"]) for k in q.keys)
            replies.append(agreed)
            return yes if agreed else no

        async with sem:
            try:
                turn = await ws_call(server.base_url, bearer, pcm, reply)
            except (OSError, websockets.WebSocketException) as exc:  # a failed call counts as unanswered
                print(f"heldout_eval: {voice} {q.id}: {exc!r}", file=sys.stderr)
                turn = Turn()
        citation, confirmations = None, 0
        for _ in range(20):  # the server writes call events after the turn, off the audio path
            citation, confirmations = recorded(server.data_dir, turn.call_id)
            if citation or not turn.answer or not_found(turn.answer):
                break
            await asyncio.sleep(0.25)
        ref = transcript_words(q.text)
        return {
            "id": q.id,
            "answerable": q.answerable,
            "transcript": turn.transcript,
            "answer": turn.answer,
            "errors": edit_distance(ref, transcript_words(turn.transcript)),
            "ref_words": len(ref),
            "right": q.answerable and right(q, citation, turn.answer),
            "not_found": not_found(turn.answer),
            "confirmed": max(turn.confirmations, confirmations) > 0,
            "confirmed_yes": any(replies),
            "no_answer": not turn.answer,
            "uncited": bool(turn.answer) and not not_found(turn.answer) and citation is None,
            "latency_ms": turn.latency_ms,
            "stages_ms": turn.stages_ms,
            "heard_ms": turn.heard_ms,
            "first_audio_ms": turn.first_audio_ms,
        }

    rows = list(await asyncio.gather(*(one(q) for q in qset.questions)))
    yes_rows = [r for r in rows if r["answerable"]]
    no_rows = [r for r in rows if not r["answerable"]]
    errors, words = sum(r["errors"] for r in rows), sum(r["ref_words"] for r in rows)
    latencies = [r["latency_ms"] for r in rows if r["latency_ms"] is not None]
    heard = [r["heard_ms"] for r in rows if r["heard_ms"] is not None]
    first_audio = [r["first_audio_ms"] for r in rows if r["first_audio_ms"] is not None]
    return {
        "questions": len(rows),
        "right_answers": share(yes_rows, "right"),
        "honest_not_found": share(no_rows, "not_found"),
        "not_found_on_answerable": share(yes_rows, "not_found"),
        "confirmation_rate": share(rows, "confirmed"),
        "confirmations_answered_yes": sum(r["confirmed_yes"] for r in rows),
        "wer": round(errors / max(1, words), 3),
        "latency_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "latency_p95_ms": round(statistics.quantiles(latencies, n=20)[-1], 1) if len(latencies) > 1 else None,
        "latencies_ms": [round(x, 1) for x in latencies],
        # Where the p50 goes: each stage's median over the same turns (they need not add up to the total's).
        "stage_p50_ms": {
            stage: round(statistics.median(values), 1)
            for stage in STAGES
            if (values := [r["stages_ms"][stage] for r in rows if stage in r["stages_ms"]])
        },
        # The same turns as the caller hears them (loopback socket; includes the answer's leading quiet).
        "heard_p50_ms": round(statistics.median(heard), 1) if heard else None,
        "heard_p95_ms": round(statistics.quantiles(heard, n=20)[-1], 1) if len(heard) > 1 else None,
        # ... to the answer's first audio frame, voiced or not: heard_p50_ms less this is the answer's quiet onset.
        "first_audio_p50_ms": round(statistics.median(first_audio), 1) if first_audio else None,
        "no_answer": [r["id"] for r in rows if r["no_answer"]],
        # An answer from the knowledge base whose search the server did not record as found: a broken check.
        "answered_without_citation": [r["id"] for r in rows if r["uncited"]],
        "wrong": [
            {"id": r["id"], "heard": r["transcript"], "answer": r["answer"][:160]}
            for r in rows
            if (r["answerable"] and not r["right"]) or (not r["answerable"] and not r["not_found"])
        ],
    }, (errors, words)


# --------------------------------------------------------------------------------------------------------- main


async def run_base(
    knowledge: Path, sets: list[QuestionSet], voices: list[str], args: argparse.Namespace, workdir: Path
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, tuple[int, int]]]:
    """One server on ``knowledge``: the spoken sets per voice, then the typed questions on its data directory."""
    data_dir = workdir / knowledge.parent.name / "data"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    spoken_out: dict[str, dict[str, Any]] = {}
    wer_totals: dict[str, tuple[int, int]] = {}
    if args.typed_only:
        if knowledge == DEMO_KB:
            await demo_data_dir(data_dir)  # the ingested demo, cached (benchmarks.product_kb)
        else:
            from agent.cli.ingest import run_ingest

            if await run_ingest(demo_settings(data_dir), [knowledge], out=sys.stderr) != 0:
                raise RuntimeError(f"ingesting {knowledge} failed")
    else:
        extra_env = dict(args.server_env)
        if args.whisper_mode:
            extra_env["VOXDESK_PIPELINE__ASR__WHISPER__MODE"] = args.whisper_mode
        root = Path(args.server_root) if args.server_root else ROOT
        server = start(data_dir, knowledge=knowledge, extra_env=extra_env, root=root)
        try:
            for voice in voices:
                for qset in sets:
                    bearer = token(server)  # a fresh one per batch: tokens expire after 30 minutes
                    pid = server.process.pid
                    cpu0, whisper0 = tree_usage(pid)[0], tree_cpu_by_command(pid, WHISPER_WORKER)
                    figures, (errors, words) = await spoken(server, bearer, qset, voice, args.concurrency)
                    # The server and its workers (recognisers, Whisper, synthesiser): what a call costs the box. A
                    # Whisper worker replaced during the batch loses its CPU time from the sum (none is, normally).
                    calls = max(1, figures["questions"])
                    figures["server_cpu_s_per_call"] = round((tree_usage(pid)[0] - cpu0) / calls, 3)
                    whisper_s = tree_cpu_by_command(pid, WHISPER_WORKER) - whisper0
                    figures["whisper_cpu_s_per_call"] = round(whisper_s / calls, 3)
                    # Progress on stderr, so that a long run that dies still leaves its finished batches.
                    print(json.dumps({"progress": {voice: {qset.name: figures}}}), file=sys.stderr, flush=True)
                    spoken_out.setdefault(voice, {})[qset.name] = figures
                    e0, w0 = wer_totals.get(voice, (0, 0))
                    wer_totals[voice] = (e0 + errors, w0 + words)
            spoken_out["_whisper"] = whisper_metrics(server)
        finally:
            server.stop()
    typed_out: dict[str, Any] = {}
    if args.server_root:  # another commit's server: this checkout's retriever would not be the one it ran
        typed_out["_seconds"] = round(time.monotonic() - t0, 1)
        return typed_out, spoken_out, wer_totals
    async with open_knowledge(demo_settings(data_dir)) as kb:
        for qset in sets:
            typed_out[qset.name] = await typed(kb, qset.questions)
    typed_out["_seconds"] = round(time.monotonic() - t0, 1)
    return typed_out, spoken_out, wer_totals


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


async def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the evaluation and return the report."""
    started = time.monotonic()
    team_limit = (args.team_answerable, args.team_unanswerable)
    sets = question_sets([s for s in args.sets.split(",") if s], limit=args.limit, team_limit=team_limit)
    voices = [] if args.typed_only else [v for v in args.voices.split(",") if v]
    for voice in voices:  # render everything first: the calls should not wait on the synthesiser
        for qset in sets:
            for q in qset.questions:
                audio(voice, qset.name, q.id, q.text)
    report: dict[str, Any] = {
        "benchmark": "heldout_eval",
        "commit": args.commit or _commit(),
        "sets": {
            s.name: {
                "source": s.source,
                "knowledge_base": str(s.knowledge.relative_to(ROOT)),
                "held_out": s.held_out,
                "answerable": sum(q.answerable for q in s.questions),
                "unanswerable": sum(not q.answerable for q in s.questions),
            }
            for s in sets
        },
        "voices": {
            v: {"engine": "espeak-ng" if v.startswith("espeak-") else "flite", "used_in_development": VOICES.get(v)}
            for v in voices
        },
        "whisper_mode": args.whisper_mode or "the server's default (pipeline.asr.whisper.mode)",
        "server_env": dict(args.server_env),
        "whisper_metrics": {},
        "typed": {},
        "spoken": {},
        "wer_all_sets": {},
    }
    totals: dict[str, tuple[int, int]] = {}
    with tempfile.TemporaryDirectory(prefix="heldout-eval-") as tmp:
        for knowledge in dict.fromkeys(s.knowledge for s in sets):
            on_base = [s for s in sets if s.knowledge == knowledge]
            typed_out, spoken_out, wer_totals = await run_base(knowledge, on_base, voices, args, Path(tmp))
            typed_out.pop("_seconds")
            report["typed"].update(typed_out)
            if "_whisper" in spoken_out:
                report["whisper_metrics"][knowledge.parent.name] = spoken_out.pop("_whisper")
            for voice, per_set in spoken_out.items():
                report["spoken"].setdefault(voice, {}).update(per_set)
            for voice, (e, w) in wer_totals.items():
                e0, w0 = totals.get(voice, (0, 0))
                totals[voice] = (e0 + e, w0 + w)
    report["wer_all_sets"] = {v: round(e / max(1, w), 3) for v, (e, w) in totals.items()}
    report["confirmation_marker"] = (
        f"an agent turn starting {CONFIRM_PREFIX!r} or a call event of kind/tool {CONFIRM!r}; the caller says yes "
        "when the passage asked about is from the keyed document, no otherwise"
    )
    report["targets_heldout"] = {"right_answers": 0.85, "honest_not_found": 0.9, "confirmation_rate_max": 0.15}
    report["concurrent_calls"] = args.concurrency
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["wall_s"] = round(time.monotonic() - started, 1)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, run, print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="team,riverbend,demo_callers")
    parser.add_argument("--voices", default=DEFAULT_VOICES, help=f"flite voices and espeak-<voice>; known: {VOICES}")
    parser.add_argument("--concurrency", type=int, default=4, help="Calls at once.")
    parser.add_argument("--limit", type=int, default=0, help="Per set: the first N answerable, N//3 unanswerable.")
    parser.add_argument("--team-answerable", type=int, default=0, help="The team set's first N answerable (0: all).")
    parser.add_argument("--team-unanswerable", type=int, default=0, help="... and first N unanswerable (0: all).")
    parser.add_argument("--commit", default="", help="The commit measured (default: git's HEAD here).")
    parser.add_argument("--typed-only", action="store_true", help="Typed questions only (no server, no audio).")
    parser.add_argument(
        "--server-root",
        default="",
        help="Run the server from this checkout (e.g. a git archive of the commit before a change) with this "
        "harness; its typed figures are left out. Give --commit too.",
    )
    parser.add_argument(
        "--whisper-mode",
        choices=("off", "weak", "best", "always"),
        default="",
        help="Whisper's second opinion on the server (default: the server's own default).",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="A setting for the server's environment (repeatable), e.g. VOXDESK_PIPELINE__ASR__WHISPER__DEADLINE_S=1.",
    )
    args = parser.parse_args(argv)
    if bad := [e for e in args.server_env if "=" not in e or not e.startswith("VOXDESK_")]:
        parser.error(f"--server-env takes VOXDESK_NAME=VALUE: {bad}")
    args.server_env = [tuple(e.split("=", 1)) for e in args.server_env]
    args.server_root = str(Path(args.server_root).resolve()) if args.server_root else ""
    configure_logging(level="WARNING")  # on stderr: stdout carries the report
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    report = asyncio.run(evaluate(args))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
